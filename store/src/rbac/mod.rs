//! The server's own RBAC writers and the policy index they follow.
//!
//! - [`bootstrap`]: the ClusterRoles and ClusterRoleBindings created on start when missing.
//! - [`aggregation`]: writes the union of the labelled ClusterRoles' rules into each
//!   ClusterRole with an `aggregationRule`.
//! - [`index`]: the stored Roles, ClusterRoles and their bindings, followed live through the
//!   read path; the aggregation controller reads it, and so does the server's RBAC authorizer
//!   (which is why it lives here, below both).

pub mod aggregation;
pub mod bootstrap;
pub mod index;
