//! The representation edge: how a request asks for protobuf, a Table or an OpenAPI document,
//! and how its body is read and its answer written in them. What the bytes mean (the transcoder, the printers)
//! is not HTTP's business and lives in [`kubecache_apimachinery::protobuf`] and [`kubecache_apimachinery::table`].

pub mod openapi;
pub mod protobuf;
pub mod table;
