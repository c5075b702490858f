//! SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00, with 3.1's flow-control frames),
//! client side, as far as kube's stream protocols use it: the client opens streams
//! (SYN_STREAM with a `streamtype` header), both sides send DATA, the server answers each
//! stream with SYN_REPLY, PINGs are echoed, GOAWAY ends the session.
//!
//! Header blocks are a zlib stream per direction (with the SPDY dictionary for a peer that
//! compresses). What this side sends is a zlib stream of stored (uncompressed) blocks,
//! which every inflater reads without the dictionary; what the kubelet sends is never
//! inflated, because nothing of it is needed: its SYN_REPLY headers are empty.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Control frame types.
pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;

/// The flag closing a stream's direction (DATA, SYN_STREAM).
pub const FLAG_FIN: u8 = 0x01;

const VERSION: u16 = 3;
/// The largest frame payload (24-bit length).
const MAX_PAYLOAD: usize = 0xFF_FFFF;
/// DATA frames are cut at this size when sending.
const MAX_DATA_CHUNK: usize = 32 * 1024;

/// One frame from the peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    Control {
        kind: u16,
        flags: u8,
        payload: Vec<u8>,
    },
}

impl Frame {
    /// The stream a control frame is about (SYN_REPLY, RST_STREAM…).
    pub fn control_stream(payload: &[u8]) -> Option<u32> {
        let id: [u8; 4] = payload.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(id) & 0x7FFF_FFFF)
    }
}

/// Reads the next frame; `None` at the end of the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match reader.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let flags = head[4];
    let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut payload = vec![0u8; length];
    reader.read_exact(&mut payload).await?;
    if first & 0x8000_0000 != 0 {
        Ok(Some(Frame::Control {
            kind: (first & 0xFFFF) as u16,
            flags,
            payload,
        }))
    } else {
        Ok(Some(Frame::Data {
            stream: first & 0x7FFF_FFFF,
            fin: flags & FLAG_FIN != 0,
            data: payload,
        }))
    }
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

/// DATA frames carrying `data` on `stream` (one empty frame for a bare FIN).
pub fn data(stream: u32, data: &[u8], fin: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8 * (data.len() / MAX_DATA_CHUNK + 1));
    let mut chunks: Vec<&[u8]> = data.chunks(MAX_DATA_CHUNK).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let flags = if fin && i == last { FLAG_FIN } else { 0 };
        out.extend_from_slice(&(stream & 0x7FFF_FFFF).to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(chunk);
    }
    out
}

/// A PING frame with this id (the answer to the peer's is the same frame).
pub fn ping(payload: &[u8]) -> Vec<u8> {
    control(PING, 0, payload)
}

/// GOAWAY: no more streams; `last` is the last stream the peer opened (none here).
pub fn goaway(last: u32) -> Vec<u8> {
    let mut payload = last.to_be_bytes().to_vec();
    payload.extend_from_slice(&0u32.to_be_bytes());
    control(GOAWAY, 0, &payload)
}

/// This side's header compression context: the first block opens the zlib stream.
#[derive(Debug, Default)]
pub struct HeaderWriter {
    started: bool,
}

impl HeaderWriter {
    /// The compressed name/value block of `headers` (names lower-case, as SPDY/3 wants).
    fn block(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            raw.extend_from_slice(&(name.len() as u32).to_be_bytes());
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 8);
        if !self.started {
            // CMF/FLG: deflate, 32 KiB window, no preset dictionary, (CMF*256+FLG) % 31 == 0.
            out.extend_from_slice(&[0x78, 0x01]);
            self.started = true;
        }
        for chunk in raw.chunks(usize::from(u16::MAX)) {
            // A stored block, not the last: BFINAL=0, BTYPE=00, then LEN and NLEN.
            let len = chunk.len() as u16;
            out.push(0x00);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// SYN_STREAM opening `stream` with `headers`.
    pub fn syn_stream(&mut self, stream: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut payload = (stream & 0x7FFF_FFFF).to_be_bytes().to_vec();
        payload.extend_from_slice(&0u32.to_be_bytes()); // associated-to stream
        payload.extend_from_slice(&[0, 0]); // priority, slot
        payload.extend_from_slice(&self.block(headers));
        debug_assert!(payload.len() <= MAX_PAYLOAD);
        control(SYN_STREAM, 0, &payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header blocks this side writes inflate as one zlib stream (as the kubelet reads
    /// them), block after block.
    #[test]
    fn header_blocks_are_one_zlib_stream_of_stored_blocks() {
        let mut writer = HeaderWriter::default();
        let first = writer.block(&[("streamType", "error")]);
        let second = writer.block(&[("streamtype", "stdout"), ("port", "80")]);
        let mut stream = first.clone();
        stream.extend_from_slice(&second);
        let mut inflater =
            miniz_oxide::inflate::stream::InflateState::new_boxed(miniz_oxide::DataFormat::Zlib);
        let mut out = vec![0u8; 1024];
        let result = miniz_oxide::inflate::stream::inflate(
            &mut inflater,
            &stream,
            &mut out,
            miniz_oxide::MZFlush::Sync,
        );
        assert_eq!(result.bytes_consumed, stream.len());
        let raw = &out[..result.bytes_written];
        let expected_first = b"\0\0\0\x01\0\0\0\x0astreamtype\0\0\0\x05error";
        assert_eq!(&raw[..expected_first.len()], expected_first);
        assert_eq!(
            &raw[expected_first.len()..],
            b"\0\0\0\x02\0\0\0\x0astreamtype\0\0\0\x06stdout\0\0\0\x04port\0\0\0\x0280"
        );
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut wire = data(3, b"hello", true);
        wire.extend(ping(&7u32.to_be_bytes()));
        wire.extend(HeaderWriter::default().syn_stream(5, &[("streamtype", "stdin")]));
        let mut reader = wire.as_slice();
        assert_eq!(
            read_frame(&mut reader).await.unwrap(),
            Some(Frame::Data {
                stream: 3,
                fin: true,
                data: b"hello".to_vec()
            })
        );
        let Some(Frame::Control { kind, payload, .. }) = read_frame(&mut reader).await.unwrap()
        else {
            panic!("a control frame");
        };
        assert_eq!((kind, payload), (PING, 7u32.to_be_bytes().to_vec()));
        let Some(Frame::Control { kind, payload, .. }) = read_frame(&mut reader).await.unwrap()
        else {
            panic!("a control frame");
        };
        assert_eq!(
            (kind, Frame::control_stream(&payload)),
            (SYN_STREAM, Some(5))
        );
        assert_eq!(read_frame(&mut reader).await.unwrap(), None);
    }
}
