//! # kubecache-apimachinery
//!
//! What an object of each resource is and how it changes, with no HTTP and no storage. The
//! server's handlers, admission and the Store are built on it:
//!
//! - [`strategy`]: what differs per resource (identity, typed form, defaults, validation,
//!   create and update preparation, printer, storage version and conversion, delete
//!   behaviour), one [`strategy::Strategy`] each; the built-in ones with their per-kind
//!   defaults ([`strategy::defaults`]) and validation ([`strategy::validation`]);
//! - [`registry`]: the resources served now, changed at run time (lock-free snapshots);
//! - [`typed`], [`objects`], [`always_present`]: decoding through the typed form, the
//!   canonical form and metadata rules;
//! - [`patch`] ([`strategic`]), [`fieldset`], [`managed`], [`ssa`]: patches, field ownership
//!   (`managedFields`) and server-side apply;
//! - [`table`]: the server-side printers (Table rows); [`scale`]: the `scale` subresource's
//!   view of an object;
//! - [`protobuf`]: the JSON ⇄ `application/vnd.kubernetes.protobuf` transcoder and its
//!   message table;
//! - [`openapi`]: the OpenAPI v2/v3 documents of what the registry serves;
//! - [`codec`]: how the watch cache encodes each event (JSON, protobuf, Table) per shape.

pub mod always_present;
pub mod codec;
pub mod fieldset;
pub mod managed;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod scale;
pub mod ssa;
pub mod strategic;
pub mod strategy;
pub mod table;
pub mod typed;
