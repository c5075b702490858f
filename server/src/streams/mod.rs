//! The stream protocols kubectl and the kubelet speak over an upgraded connection, and
//! kube-apiserver's translation between them (`staging/src/k8s.io/apiserver/pkg/util/proxy`):
//!
//! - [`websocket`]: RFC 6455 framing, server side (the client's end);
//! - [`spdy`]: SPDY/3.1 framing, client side (the kubelet's end);
//! - [`translate`]: a `v5.channel.k8s.io` WebSocket exec/attach session carried to the
//!   kubelet as SPDY/3.1 (`v4.channel.k8s.io`), and port-forward's
//!   `SPDY/3.1+portforward.k8s.io` tunnel: SPDY bytes inside WebSocket messages.
//!
//! kubectl 1.27–1.29 speaks SPDY itself (passed through untouched, `crate::proxy`);
//! kubectl ≥ 1.30 and the Python client offer WebSocket first.

pub mod spdy;
pub mod translate;
pub mod websocket;
