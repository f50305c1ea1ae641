//! A fake Azure Resource Manager server, as strict as Azure on the rules this project meets,
//! for tests, benches and the local demo.
//!
//! It serves the real REST paths of the resources a static egress gateway touches
//! (scale sets and their instances and NICs, virtual machines, NICs, load balancers, public IP
//! prefixes, public IPs, virtual networks and subnets) with Azure's JSON shapes, keeps every
//! field a client sends, and refuses what Azure refuses:
//!
//! - references must exist (ipConfig → subnet, backend pool, public IP, public IP prefix;
//!   load-balancing rule → frontend, pool and probe of the same load balancer);
//! - objects in use cannot be removed (a referenced backend pool, a referenced load balancer, a
//!   prefix with addresses or public IPs, an attached public IP);
//! - a prefix of length L holds 2^(32-L) addresses; a public IP serves one ipConfig;
//! - a scale-set model write changes no instance until `manualupgrade` or the instance's update
//!   (`latestModelApplied`);
//! - `ETags` change on every write; `If-Match` / `If-None-Match` failures answer 412;
//! - writes are long-running (`Azure-AsyncOperation`, `Location`, `Updating` then `Succeeded`
//!   after the configured latency), and a second write on a busy resource answers 409;
//! - `api-version` is checked per provider and every ARM call needs a bearer token.
//!
//! Faults are scripted by operation name (Azure's operationId) and path: 429 with
//! `Retry-After`, 409, 5xx, applied-then-500, slow calls, and operations that end `Failed`.
//! An admin API under `/_admin` (and the same calls on [`FakeArm`]) seeds the cloud and reports
//! its state, the request log, the call counts and the leftovers.
//!
//! # Starting it
//!
//! From a test:
//!
//! ```no_run
//! # async fn demo() -> Result<(), egress_fakearm::FakeArmError> {
//! use egress_fakearm::{FakeArm, FakeArmOptions};
//! let arm = FakeArm::start(FakeArmOptions::default()).await?;
//! let subnets = arm.seed_vnet("rg", "vnet", "10.0.0.0/16", &[("gateway", "10.0.1.0/24")])?;
//! // Point the ARM client at arm.base_url() with any bearer token.
//! # let _ = subnets; Ok(()) }
//! ```
//!
//! From a shell (the binary prints its base URL, then logs one line per request):
//!
//! ```text
//! cargo run -p egress-fakearm --bin fake-arm -- --listen 127.0.0.1:8899 --latency 2s --seed egress-fakearm/seed.example.json
//! curl -s localhost:8899/_admin/state
//! ```
//!
//! # Admin API
//!
//! JSON under `/_admin`, no authentication:
//!
//! | call | does |
//! |---|---|
//! | `POST /_admin/seed` | applies a [`Seed`] (the format of `--seed` and `seed.example.json`) |
//! | `GET /_admin/state` | every resource as its GET answers, instances, operations, faults |
//! | `GET /_admin/requests` | the request log: method, path, api-version, operation, status, error code, body |
//! | `GET /_admin/counts` | calls per operation by status, with read / write / poll totals |
//! | `GET /_admin/leftovers` | what is there beyond the seeds ([`Leftovers`]) |
//! | `POST /_admin/faults` | appends one [`FaultRule`] or a list; `GET` shows, `DELETE` clears |
//! | `PUT /_admin/latency` | `{"latencyMs": 2000}`: the operation latency of later writes |
//! | `POST /_admin/reset-counts` | clears the counts and the request log |
//!
//! A fault rule, e.g. the next two load-balancer PUTs throttled:
//!
//! ```json
//! {"operation": "LoadBalancers_CreateOrUpdate", "pathContains": "kubeegressgateway-ilb",
//!  "times": 2, "fault": {"kind": "throttle", "retryAfterSeconds": 3}}
//! ```
//!
//! Kinds: `throttle {retryAfterSeconds}`, `conflict {code}`, `serverError {status, code?}`,
//! `appliedThenError`, `slow {extraMs}`, `failOperation {code, message?}`. `operation` is
//! Azure's operationId or `*`; without `times` a rule applies to every matching call.

pub mod admin;
pub mod alloc;
pub mod arm_error;
pub mod error;
pub mod etag;
pub mod exchange;
pub mod faults;
pub mod ids;
pub mod json;
pub mod leftovers;
pub mod log;
pub mod lro;
pub mod pipeline;
pub mod providers;
pub mod refs;
pub mod router;
pub mod rules;
pub mod seed;
pub mod server;
pub mod state;
pub mod view;

pub use arm_error::ArmError;
pub use error::FakeArmError;
pub use faults::{Fault, FaultRule};
pub use leftovers::Leftovers;
pub use log::{CallKind, Counts, OperationCount, RequestRecord};
pub use seed::{
    PrefixSeed, Seed, SeedReport, SeededPrefix, SeededVmPool, SeededVmss, SubnetSeed, VmPoolSeed,
    VmssPoolSeed, VnetSeed,
};
pub use server::{FakeArm, FakeArmOptions};
