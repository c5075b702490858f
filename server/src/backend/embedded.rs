//! The embedded backend: in-process MVCC store.
