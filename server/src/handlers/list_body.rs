//! A JSON LIST body written as hyper sends it: the list's head, then its items in chunks of
//! about [`CHUNK_BYTES`], each chunk encoded from the cache when hyper asks for the next one.
//!
//! A list of 50,000 pods is ~135 MB of JSON. Assembled whole, every concurrent LIST held its
//! own copy (plus, with glibc, a fresh mmap of that size to fault in page by page); streamed,
//! a LIST holds its result (the objects' `Arc`s, shared with the cache) and the chunk or two
//! hyper has queued. The bytes are the same as a whole body's (`read::list_body`); only the
//! framing differs: a streamed body goes out chunked, without Content-Length, as
//! kube-apiserver sends large lists.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use bytes::{BufMut, Bytes, BytesMut};
use kubecache_cache::{CachedObject, ReadPath};
use kubecache_core::registry::ResourceInfo;

/// Bytes of JSON per body chunk. Large enough that the per-chunk costs (an allocation,
/// a poll of the body, a chunk header, a write system call) vanish against the copying;
/// small enough to stay in the CPU caches between encoding and the socket write and to
/// keep glibc from serving every chunk with its own mmap. Chosen by measurement (see
/// docs/PERFORMANCE.md, "Streamed LIST bodies").
pub const CHUNK_BYTES: usize = 128 * 1024;

/// Lists whose body is estimated below this are still built whole and sent with a
/// Content-Length: one allocation, one write, no chunk framing.
pub const STREAM_ABOVE: usize = 4 * CHUNK_BYTES;

/// The items of one JSON list, encoded chunk by chunk.
pub struct JsonListChunks {
    /// Encodes each object as the resource serves it (the cache splices resourceVersion).
    reads: Arc<dyn ReadPath>,
    resource: Arc<ResourceInfo>,
    /// `{"kind":…,"apiVersion":…,"metadata":{…},"items":[`, until the first chunk takes it.
    head: Option<Vec<u8>>,
    /// The list result: the only per-object state a streamed LIST keeps.
    objects: Vec<Arc<CachedObject>>,
    /// Index of the next object to encode.
    next: usize,
    /// Whether the closing `]}` went out.
    done: bool,
}

impl JsonListChunks {
    /// `head` is the list object without items, serialized (`{…}`): the items follow its
    /// last field.
    pub fn new(
        reads: Arc<dyn ReadPath>,
        resource: Arc<ResourceInfo>,
        head: &[u8],
        objects: Vec<Arc<CachedObject>>,
    ) -> JsonListChunks {
        debug_assert_eq!(head.last(), Some(&b'}'));
        let mut opening = Vec::with_capacity(head.len() + 10);
        opening.extend_from_slice(&head[..head.len() - 1]);
        opening.extend_from_slice(b",\"items\":[");
        JsonListChunks {
            reads,
            resource,
            head: Some(opening),
            objects,
            next: 0,
            done: false,
        }
    }

    /// The whole body as one response, chunked.
    pub fn into_response(self) -> Response<Body> {
        let stream = futures::stream::iter(self.map(Ok::<_, Infallible>));
        let mut response = Response::new(Body::from_stream(stream));
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl Iterator for JsonListChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        // Room for one typical object past the target, so a chunk rarely reallocates.
        let mut out = BytesMut::with_capacity(CHUNK_BYTES + 8 * 1024);
        if let Some(head) = self.head.take() {
            out.put_slice(&head);
        }
        self.next += self.reads.write_json_items(
            &self.objects[self.next..],
            &self.resource,
            &mut out,
            CHUNK_BYTES,
            self.next > 0,
        );
        if self.next == self.objects.len() {
            out.put_slice(b"]}");
            self.done = true;
            // Nothing more to encode: let the objects go before the last chunk is written.
            self.objects = Vec::new();
        }
        Some(out.freeze())
    }
}
