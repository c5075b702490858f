//! # kubecache-apiextensions
//!
//! What a CustomResourceDefinition means, with no I/O: the rules a CRD's OpenAPI v3 schema
//! must follow to be structural, and what that schema does to a custom object on every
//! write and read (validation, pruning of unknown fields, defaulting, CEL rules). The server
//! wires these into a strategy per custom resource; nothing here knows about storage or HTTP.

pub mod cel;
pub mod crd;
pub mod jsonpath;
pub mod schema;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
