//! Azure adapter for the egress gateway.
//!
//! - [`config`]: the controller's cloud configuration (`azure.json`), read the
//!   way upstream reads it so existing files keep working.
//! - [`models`]: typed ARM models that keep every field they do not model.
//! - [`client`]: the ARM HTTP client (`ETag`s, retries, long-running
//!   operations, per-operation [`metrics`]).
//! - [`credential`]: where its bearer token comes from.
//! - [`pool_id`]: gateway pool identities, derived as upstream does.
//! - [`provider`]: core's `CloudProvider` over all of the above.
//! - `local` (feature `fake-arm`): the adapter against a fake ARM server on
//!   loopback, for tests, benches and the local demo.

pub mod client;
pub mod config;
pub mod credential;
mod error;
#[cfg(feature = "fake-arm")]
pub mod local;
pub mod metrics;
pub mod models;
pub mod pool_id;
pub mod provider;

pub use client::{ArmClient, ClientSettings, Fetched, Precondition};
pub use credential::ArmCredential;
pub use error::Error;
pub use provider::{ArmCloud, Placement};
