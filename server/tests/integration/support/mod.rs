//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod binary;
pub mod kubectl;
pub mod pki;
pub mod secured;
pub mod server;
