//! WebSocket (RFC 6455), server side: the opening handshake's answer and message framing.
//! Messages from the client are masked and may be fragmented; the server's are neither.

use std::io;

use base64::Engine;
use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Opcodes (RFC 6455 §5.2).
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// Close codes (RFC 6455 §7.4.1).
pub const NORMAL_CLOSURE: u16 = 1000;
pub const INTERNAL_ERROR: u16 = 1011;

/// The largest message accepted from a client (kubectl writes at most 32 KiB of stdin, or
/// one SPDY frame, per message).
pub const MAX_MESSAGE_BYTES: u64 = 16 << 20;

const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Whether a request asks for a WebSocket (`Upgrade: websocket`).
pub fn is_websocket(headers: &HeaderMap) -> bool {
    crate::proxy::is_upgrade(headers)
        && headers
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The subprotocols the client offers (`Sec-WebSocket-Protocol`), in its order.
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `Sec-WebSocket-Accept` for the client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{ACCEPT_GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// One message (or control frame): its opcode and payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Reads a client's messages, reassembling fragments and unmasking. A control frame is
/// returned as soon as it arrives, also between the fragments of a message (kept here
/// meanwhile).
#[derive(Debug, Default)]
pub struct MessageReader {
    partial: Option<Message>,
}

impl MessageReader {
    /// The next message or control frame; `None` at the end of the connection.
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> io::Result<Option<Message>> {
        loop {
            let mut head = [0u8; 2];
            match reader.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0F;
            let mut length = u64::from(head[1] & 0x7F);
            if length == 126 {
                length = u64::from(reader.read_u16().await?);
            } else if length == 127 {
                length = reader.read_u64().await?;
            }
            let pending = self.partial.as_ref().map_or(0, |m| m.payload.len() as u64);
            if length + pending > MAX_MESSAGE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "WebSocket message too large",
                ));
            }
            let mut mask = [0u8; 4];
            let masked = head[1] & 0x80 != 0;
            if masked {
                reader.read_exact(&mut mask).await?;
            }
            let mut payload = vec![0u8; length as usize];
            reader.read_exact(&mut payload).await?;
            if masked {
                for (i, byte) in payload.iter_mut().enumerate() {
                    *byte ^= mask[i % 4];
                }
            }
            if opcode >= CLOSE {
                return Ok(Some(Message { opcode, payload }));
            }
            match (&mut self.partial, opcode) {
                (Some(started), CONTINUATION) => started.payload.extend_from_slice(&payload),
                (None, CONTINUATION) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a continuation frame without a message",
                    ));
                }
                (partial, opcode) => *partial = Some(Message { opcode, payload }),
            }
            if fin {
                return Ok(self.partial.take());
            }
        }
    }
}

/// One unfragmented, unmasked frame (the server's).
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A close frame with this status code.
pub fn close_frame(code: u16) -> Vec<u8> {
    frame(CLOSE, &code.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [9u8, 8, 7, 6];
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn fragments_are_reassembled_around_control_frames() {
        let big = vec![7u8; 300];
        let mut wire = masked(BINARY, false, b"\x01hel");
        wire.extend(masked(PING, true, b"p"));
        wire.extend(masked(CONTINUATION, true, b"lo"));
        wire.extend(masked(BINARY, true, &big));
        let mut reader = wire.as_slice();
        let mut messages = MessageReader::default();
        let ping = messages.read(&mut reader).await.unwrap().unwrap();
        assert_eq!((ping.opcode, ping.payload.as_slice()), (PING, &b"p"[..]));
        let message = messages.read(&mut reader).await.unwrap().unwrap();
        assert_eq!(
            (message.opcode, message.payload.as_slice()),
            (BINARY, &b"\x01hello"[..])
        );
        let message = messages.read(&mut reader).await.unwrap().unwrap();
        assert_eq!(message.payload, big);
        assert_eq!(messages.read(&mut reader).await.unwrap(), None);
    }

    #[test]
    fn server_frames_use_the_short_and_long_lengths() {
        assert_eq!(frame(BINARY, b"ab"), b"\x82\x02ab");
        let long = frame(BINARY, &[0u8; 200]);
        assert_eq!(&long[..4], &[0x82, 126, 0, 200]);
    }
}
