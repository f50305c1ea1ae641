//! Azure adapter for the egress gateway.
//!
//! - [`config`]: the controller's cloud configuration (`azure.json`), read the
//!   way upstream reads it so existing files keep working.
//!
//! The `CloudProvider` implementation over Azure Resource Manager comes next.

pub mod config;
mod error;

pub use error::Error;
