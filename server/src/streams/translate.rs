//! kube-apiserver 1.33's translation of kubectl ≥ 1.30's WebSocket protocols to the SPDY the
//! kubelet speaks (`StreamTranslatorHandler` for exec and attach, `TunnelingHandler` for
//! port-forward):
//!
//! - **exec/attach, `v5.channel.k8s.io`**: the client's WebSocket carries channel-tagged
//!   messages (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize, 255 "close channel N").
//!   kubecache opens a SPDY/3.1 session to the kubelet with stream protocol
//!   `v4.channel.k8s.io`, one stream per channel (`streamtype` error, stdin, stdout, stderr,
//!   resize), and moves each message to its stream and back; v5's close of stdin is the
//!   stdin stream's FIN. The kubelet's error stream (a v1 Status, with the exit code of a
//!   failed command) becomes the error channel's message, and the WebSocket closes with
//!   1000 (normal closure).
//! - **port-forward, `SPDY/3.1+portforward.k8s.io`**: the client speaks SPDY itself, inside
//!   WebSocket binary messages; kubecache upgrades to the kubelet with SPDY
//!   (`portforward.k8s.io`) and copies the bytes between the messages and the kubelet.
//!
//! In both, the kubelet is asked first: a kubelet that refuses the upgrade gets the client
//! an error status instead of a 101 (kubectl then falls back to SPDY, which reaches the
//! kubelet as it is and reports its answer).

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use kubecache_core::status::ApiError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use super::spdy::{self, Frame, HeaderWriter};
use super::websocket::{self, BINARY, CLOSE, NORMAL_CLOSURE, PING, PONG, TEXT};
use crate::proxy::{self, Upstream};

/// The exec/attach WebSocket protocol kube translates (with its close-channel message).
pub const V5_CHANNEL: &str = "v5.channel.k8s.io";
/// The stream protocol asked of the kubelet over SPDY.
pub const V4_CHANNEL: &str = "v4.channel.k8s.io";
/// Port-forward's SPDY tunnelled over WebSocket (kubectl ≥ 1.30).
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// Port-forward's stream protocol with the kubelet.
pub const PORT_FORWARD: &str = "portforward.k8s.io";

/// Channels of the v4/v5 protocols.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[255, channel]` closes the client's side of a channel.
const CLOSE_CHANNEL: u8 = 255;

/// What the kubelet's error stream says when it said nothing.
const SUCCESS: &[u8] = br#"{"metadata":{},"status":"Success"}"#;

/// How much of a refusing kubelet's answer is reported.
const MAX_REFUSAL_BYTES: usize = 50_000;

/// Whether a request is a WebSocket offering `protocol`.
pub fn offers(headers: &http::HeaderMap, protocol: &str) -> bool {
    websocket::is_websocket(headers)
        && websocket::offered_protocols(headers)
            .iter()
            .any(|p| p == protocol)
}

/// Which of the exec/attach streams the client asked for (`stdin`, `stdout`, `stderr`,
/// `tty` of the query).
#[derive(Debug, Clone, Copy, Default)]
pub struct Channels {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// SPDY upgrade to the kubelet with `stream_protocol`; its refusal is an error status.
async fn spdy_to_kubelet(
    upstream: &Upstream,
    parts: &Parts,
    stream_protocol: &'static str,
) -> Result<hyper::upgrade::Upgraded, ApiError> {
    let mut headers = proxy::upstream_headers(parts, upstream, false);
    for name in [
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_VERSION,
        header::SEC_WEBSOCKET_PROTOCOL,
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    headers.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(stream_protocol),
    );
    let mut request = Request::builder()
        .method(http::Method::POST)
        .uri(&upstream.path_and_query)
        .body(Body::empty())
        .map_err(|e| ApiError::bad_request(format!("invalid kubelet request: {e}")))?;
    *request.headers_mut() = headers;
    let mut response = proxy::send(upstream, request).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let code = response.status();
        let body = axum::body::to_bytes(Body::new(response.into_body()), MAX_REFUSAL_BYTES)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        return Err(ApiError::internal(format!(
            "unable to upgrade connection: {} ({})",
            text.trim(),
            code
        )));
    }
    hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| ApiError::internal(format!("unable to upgrade connection: {e}")))
}

/// The client's WebSocket accepted with `protocol`.
fn accepted(parts: &Parts, protocol: &'static str) -> Result<Response, ApiError> {
    let key = parts
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?;
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, websocket::accept_key(key))
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// A `v5.channel.k8s.io` exec or attach, carried to the kubelet as SPDY.
pub async fn exec(
    upstream: Upstream,
    mut parts: Parts,
    channels: Channels,
) -> Result<Response, ApiError> {
    let client = proxy::client_upgrade(&mut parts)?
        .ok_or_else(|| ApiError::bad_request("Upgrade request required"))?;
    let kubelet = spdy_to_kubelet(&upstream, &parts, V4_CHANNEL).await?;
    let response = accepted(&parts, V5_CHANNEL)?;
    tokio::spawn(async move {
        match client.await {
            Ok(client) => {
                let outcome = translate_exec(TokioIo::new(client), TokioIo::new(kubelet), channels);
                if let Err(e) = outcome.await {
                    tracing::debug!("exec stream ended: {e}");
                }
            }
            Err(e) => tracing::debug!("client upgrade failed: {e}"),
        }
    });
    Ok(response)
}

/// A port-forward tunnel: the client's SPDY, inside WebSocket messages, to the kubelet.
pub async fn tunnel(upstream: Upstream, mut parts: Parts) -> Result<Response, ApiError> {
    let client = proxy::client_upgrade(&mut parts)?
        .ok_or_else(|| ApiError::bad_request("Upgrade request required"))?;
    let kubelet = spdy_to_kubelet(&upstream, &parts, PORT_FORWARD).await?;
    let response = accepted(&parts, PORT_FORWARD_TUNNEL)?;
    tokio::spawn(async move {
        match client.await {
            Ok(client) => {
                if let Err(e) = run_tunnel(TokioIo::new(client), TokioIo::new(kubelet)).await {
                    tracing::debug!("port-forward tunnel ended: {e}");
                }
            }
            Err(e) => tracing::debug!("client upgrade failed: {e}"),
        }
    });
    Ok(response)
}

type Writer<T> = Arc<Mutex<tokio::io::WriteHalf<T>>>;

async fn send<T: AsyncWrite>(writer: &Writer<T>, bytes: &[u8]) -> std::io::Result<()> {
    writer.lock().await.write_all(bytes).await
}

/// The SPDY stream ids of one exec session (the client's streams are odd).
struct Streams {
    error: u32,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

impl Streams {
    fn new(channels: Channels) -> Streams {
        let mut next = 1;
        let mut open = |wanted: bool| {
            wanted.then(|| {
                let id = next;
                next += 2;
                id
            })
        };
        Streams {
            error: open(true).unwrap_or(1),
            stdin: open(channels.stdin),
            stdout: open(channels.stdout),
            stderr: open(channels.stderr && !channels.tty),
            resize: open(channels.tty),
        }
    }

    fn opened(&self) -> impl Iterator<Item = (&'static str, u32)> {
        [
            ("error", Some(self.error)),
            ("stdin", self.stdin),
            ("stdout", self.stdout),
            ("stderr", self.stderr),
            ("resize", self.resize),
        ]
        .into_iter()
        .filter_map(|(name, id)| id.map(|id| (name, id)))
    }
}

async fn translate_exec<C, K>(client: C, kubelet: K, channels: Channels) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Send + 'static,
    K: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut client_read, client_write) = tokio::io::split(client);
    let (mut kubelet_read, kubelet_write) = tokio::io::split(kubelet);
    let client_write = Arc::new(Mutex::new(client_write));
    let kubelet_write = Arc::new(Mutex::new(kubelet_write));
    let streams = Streams::new(channels);
    let mut headers = HeaderWriter::default();
    let mut opening = Vec::new();
    for (name, id) in streams.opened() {
        opening.extend(headers.syn_stream(id, &[("streamtype", name)]));
    }
    send(&kubelet_write, &opening).await?;

    let from_client = async {
        let mut messages = websocket::MessageReader::default();
        while let Some(message) = messages.read(&mut client_read).await? {
            match message.opcode {
                CLOSE => break,
                PING => send(&client_write, &websocket::frame(PONG, &message.payload)).await?,
                BINARY | TEXT => {
                    let Some((&channel, data)) = message.payload.split_first() else {
                        continue;
                    };
                    let (stream, fin) = match channel {
                        STDIN => (streams.stdin, false),
                        RESIZE => (streams.resize, false),
                        CLOSE_CHANNEL if data.first() == Some(&STDIN) => (streams.stdin, true),
                        _ => (None, false),
                    };
                    if let Some(stream) = stream {
                        let data = if fin { &[][..] } else { data };
                        send(&kubelet_write, &spdy::data(stream, data, fin)).await?;
                    }
                }
                _ => {}
            }
        }
        std::io::Result::Ok(())
    };

    let from_kubelet = async {
        let mut status = Vec::new();
        let mut open: Vec<u32> = [Some(streams.error), streams.stdout, streams.stderr]
            .into_iter()
            .flatten()
            .collect();
        while !open.is_empty() {
            let Some(frame) = spdy::read_frame(&mut kubelet_read).await? else {
                break;
            };
            match frame {
                Frame::Data { stream, fin, data } => {
                    let channel = if stream == streams.error {
                        status.extend_from_slice(&data);
                        None
                    } else if Some(stream) == streams.stdout {
                        Some(STDOUT)
                    } else if Some(stream) == streams.stderr {
                        Some(STDERR)
                    } else {
                        None
                    };
                    if let (Some(channel), false) = (channel, data.is_empty()) {
                        let mut message = Vec::with_capacity(data.len() + 1);
                        message.push(channel);
                        message.extend_from_slice(&data);
                        send(&client_write, &websocket::frame(BINARY, &message)).await?;
                    }
                    if fin {
                        open.retain(|id| *id != stream);
                    }
                }
                Frame::Control {
                    kind: spdy::PING,
                    payload,
                    ..
                } => send(&kubelet_write, &spdy::ping(&payload)).await?,
                Frame::Control {
                    kind: spdy::GOAWAY, ..
                } => break,
                Frame::Control {
                    kind: spdy::RST_STREAM,
                    payload,
                    ..
                } => {
                    let stream = Frame::control_stream(&payload);
                    open.retain(|id| Some(*id) != stream);
                }
                Frame::Control { .. } => {}
            }
        }
        let status = if status.is_empty() {
            SUCCESS.to_vec()
        } else {
            status
        };
        let mut message = vec![ERROR];
        message.extend_from_slice(&status);
        send(&client_write, &websocket::frame(BINARY, &message)).await?;
        send(&client_write, &websocket::close_frame(NORMAL_CLOSURE)).await?;
        send(&kubelet_write, &spdy::goaway(0)).await?;
        std::io::Result::Ok(())
    };

    // The session ends when the kubelet is done (its streams closed) or the client leaves;
    // dropping both halves closes both connections.
    tokio::select! {
        done = from_kubelet => done,
        done = from_client => done,
    }
}

async fn run_tunnel<C, K>(client: C, kubelet: K) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Send + 'static,
    K: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut client_read, client_write) = tokio::io::split(client);
    let (mut kubelet_read, mut kubelet_write) = tokio::io::split(kubelet);
    let client_write = Arc::new(Mutex::new(client_write));
    let from_client = async {
        let mut messages = websocket::MessageReader::default();
        while let Some(message) = messages.read(&mut client_read).await? {
            match message.opcode {
                CLOSE => break,
                PING => send(&client_write, &websocket::frame(PONG, &message.payload)).await?,
                BINARY | TEXT => kubelet_write.write_all(&message.payload).await?,
                _ => {}
            }
        }
        kubelet_write.shutdown().await
    };
    let from_kubelet = async {
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            let n = kubelet_read.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            send(&client_write, &websocket::frame(BINARY, &buffer[..n])).await?;
        }
        send(&client_write, &websocket::close_frame(NORMAL_CLOSURE)).await
    };
    tokio::select! {
        done = from_kubelet => done,
        done = from_client => done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_opened_for_the_channels_asked_for() {
        let streams = Streams::new(Channels {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        });
        let opened: Vec<_> = streams.opened().collect();
        assert_eq!(
            opened,
            [("error", 1), ("stdin", 3), ("stdout", 5), ("stderr", 7)]
        );
        // A terminal has no separate stderr, and a resize stream.
        let streams = Streams::new(Channels {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: true,
        });
        let opened: Vec<_> = streams.opened().map(|(name, _)| name).collect();
        assert_eq!(opened, ["error", "stdin", "stdout", "resize"]);
    }

    /// A whole session against an in-memory kubelet: stdin and its close go out as SPDY,
    /// stdout and the kubelet's status come back as v5 messages, then a normal close.
    #[tokio::test]
    async fn a_v5_session_is_carried_as_spdy() {
        let (client, mut client_peer) = tokio::io::duplex(1 << 16);
        let (kubelet, mut kubelet_peer) = tokio::io::duplex(1 << 16);
        let channels = Channels {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: false,
        };
        let session = tokio::spawn(translate_exec(client, kubelet, channels));
        // The kubelet sees error (1), stdin (3), stdout (5) opened.
        for expected in [1, 3, 5] {
            let Some(Frame::Control { kind, payload, .. }) =
                spdy::read_frame(&mut kubelet_peer).await.unwrap()
            else {
                panic!("SYN_STREAM expected");
            };
            assert_eq!(
                (kind, Frame::control_stream(&payload)),
                (spdy::SYN_STREAM, Some(expected))
            );
        }
        // The client types "hi" and closes stdin (masking is the client's; unmasked is
        // accepted too).
        client_peer
            .write_all(&websocket::frame(BINARY, b"\x00hi"))
            .await
            .unwrap();
        client_peer
            .write_all(&websocket::frame(BINARY, &[255, 0]))
            .await
            .unwrap();
        assert_eq!(
            spdy::read_frame(&mut kubelet_peer).await.unwrap(),
            Some(Frame::Data {
                stream: 3,
                fin: false,
                data: b"hi".to_vec()
            })
        );
        assert_eq!(
            spdy::read_frame(&mut kubelet_peer).await.unwrap(),
            Some(Frame::Data {
                stream: 3,
                fin: true,
                data: Vec::new()
            })
        );
        // The kubelet answers on stdout, ends it, and reports an exit code.
        let failure = br#"{"status":"Failure","reason":"NonZeroExitCode"}"#;
        let mut answer = spdy::data(5, b"HI", true);
        answer.extend(spdy::data(1, failure, true));
        kubelet_peer.write_all(&answer).await.unwrap();
        let mut messages = websocket::MessageReader::default();
        let message = messages.read(&mut client_peer).await.unwrap().unwrap();
        assert_eq!(message.payload, b"\x01HI");
        let message = messages.read(&mut client_peer).await.unwrap().unwrap();
        assert_eq!(message.payload[0], ERROR);
        assert_eq!(&message.payload[1..], failure);
        let close = messages.read(&mut client_peer).await.unwrap().unwrap();
        assert_eq!(
            (close.opcode, close.payload.as_slice()),
            (CLOSE, &[0x03, 0xe8][..])
        );
        session.await.unwrap().unwrap();
    }
}
