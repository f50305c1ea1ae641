//! Azure adapter for the egress gateway.
//!
//! - [`config`]: the controller's cloud configuration (`azure.json`), read the
//!   way upstream reads it so existing files keep working.
//! - [`models`]: typed ARM models that keep every field they do not model.

pub mod config;
mod error;
pub mod models;

pub use error::Error;
