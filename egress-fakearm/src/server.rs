//! The HTTP server and the library handle: [`FakeArm::start`] binds, serves every connection
//! on the tokio runtime, and stops when the handle is dropped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::error::FakeArmError;
use crate::exchange::{Reply, Req};
use crate::faults::FaultRule;
use crate::leftovers::Leftovers;
use crate::log::{Counts, RequestRecord};
use crate::pipeline::{self, Shared, lock};
use crate::seed::{self, Seed, SeedReport};
use crate::state::State;

/// How to start the fake.
#[derive(Debug, Clone)]
pub struct FakeArmOptions {
    /// Where to listen; `127.0.0.1:0` (any free port) by default.
    pub listen: SocketAddr,
    /// How long a write's operation runs before it settles; 0 by default.
    pub latency: Duration,
    /// The subscription seeds use when they name none.
    pub subscription: String,
    /// The region of seeded resources and status URLs.
    pub location: String,
    /// How many requests the log keeps (the oldest are dropped first; counts keep everything).
    pub request_log_limit: usize,
}

impl Default for FakeArmOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: Duration::ZERO,
            subscription: "00000000-0000-0000-0000-000000000001".to_owned(),
            location: "westus".to_owned(),
            request_log_limit: crate::state::DEFAULT_REQUEST_LOG_LIMIT,
        }
    }
}

/// A running fake ARM server. Dropping it stops the server and closes its connections.
#[derive(Debug)]
pub struct FakeArm {
    shared: Shared,
    addr: SocketAddr,
    subscription: String,
    task: tokio::task::JoinHandle<()>,
}

impl FakeArm {
    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(options: FakeArmOptions) -> Result<FakeArm, FakeArmError> {
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| FakeArmError::Bind {
                    addr: options.listen,
                    source,
                })?;
        Self::serve_listener(listener, options)
    }

    /// Serves on a listener bound elsewhere (`options.listen` is ignored),
    /// e.g. one bound inside another network namespace, so that clients in
    /// that namespace reach the fake while the test process holds its state.
    pub fn start_on(
        listener: std::net::TcpListener,
        options: FakeArmOptions,
    ) -> Result<FakeArm, FakeArmError> {
        let addr = listener.local_addr().map_err(FakeArmError::LocalAddr)?;
        listener
            .set_nonblocking(true)
            .map_err(|source| FakeArmError::Bind { addr, source })?;
        let listener = TcpListener::from_std(listener)
            .map_err(|source| FakeArmError::Bind { addr, source })?;
        Self::serve_listener(listener, options)
    }

    fn serve_listener(
        listener: TcpListener,
        options: FakeArmOptions,
    ) -> Result<FakeArm, FakeArmError> {
        let addr = listener.local_addr().map_err(FakeArmError::LocalAddr)?;
        let mut state = State::new(options.location.clone(), options.latency);
        state.request_log_limit = options.request_log_limit;
        let shared: Shared = Arc::new(Mutex::new(state));
        let task = tokio::spawn(serve(
            listener,
            shared.clone(),
            options.subscription.clone(),
            addr,
        ));
        Ok(FakeArm {
            shared,
            addr,
            subscription: options.subscription,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, the Resource Manager endpoint to give a client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The default subscription of seeds.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// Applies a seed (see [`Seed`]).
    pub fn seed(&self, seed: &Seed) -> Result<SeedReport, FakeArmError> {
        let mut state = lock(&self.shared);
        seed::apply(&mut state, &self.subscription, seed)
    }

    /// Seeds a virtual network with `(name, cidr)` subnets; returns the subnet ids.
    pub fn seed_vnet(
        &self,
        resource_group: &str,
        name: &str,
        address_space: &str,
        subnets: &[(&str, &str)],
    ) -> Result<Vec<String>, FakeArmError> {
        let report = self.seed(&Seed {
            virtual_networks: vec![seed::VnetSeed {
                resource_group: resource_group.to_owned(),
                name: name.to_owned(),
                address_space: vec![address_space.to_owned()],
                subnets: subnets
                    .iter()
                    .map(|(n, p)| seed::SubnetSeed {
                        name: (*n).to_owned(),
                        address_prefix: (*p).to_owned(),
                    })
                    .collect(),
            }],
            ..Seed::default()
        })?;
        Ok(report.subnets)
    }

    /// Seeds a VMSS gateway pool; returns its id and `uniqueId`.
    pub fn seed_vmss_pool(
        &self,
        pool: seed::VmssPoolSeed,
    ) -> Result<seed::SeededVmss, FakeArmError> {
        let report = self.seed(&Seed {
            vmss_pools: vec![pool],
            ..Seed::default()
        })?;
        report
            .vmss_pools
            .into_iter()
            .next()
            .ok_or_else(|| FakeArmError::Seed("no scale set was seeded".into()))
    }

    /// Seeds a virtual-machine pool; returns its VMs and NICs.
    pub fn seed_vm_pool(&self, pool: seed::VmPoolSeed) -> Result<seed::SeededVmPool, FakeArmError> {
        let report = self.seed(&Seed {
            vm_pools: vec![pool],
            ..Seed::default()
        })?;
        report
            .vm_pools
            .into_iter()
            .next()
            .ok_or_else(|| FakeArmError::Seed("no VM pool was seeded".into()))
    }

    /// Seeds a BYO public IP prefix of length `len`; returns its id and CIDR.
    pub fn seed_prefix(
        &self,
        resource_group: &str,
        name: &str,
        len: u8,
    ) -> Result<seed::SeededPrefix, FakeArmError> {
        let report = self.seed(&Seed {
            public_ip_prefixes: vec![seed::PrefixSeed {
                resource_group: resource_group.to_owned(),
                name: name.to_owned(),
                prefix_length: len,
            }],
            ..Seed::default()
        })?;
        report
            .public_ip_prefixes
            .into_iter()
            .next()
            .ok_or_else(|| FakeArmError::Seed("no prefix was seeded".into()))
    }

    /// The whole state, as `GET /_admin/state` answers it.
    pub fn state(&self) -> Value {
        let mut state = lock(&self.shared);
        state.settle(Instant::now());
        crate::admin::snapshot(&state)
    }

    /// The resource at an ARM id as its GET would answer (without counting a call).
    pub fn resource(&self, id: &str) -> Option<Value> {
        let mut state = lock(&self.shared);
        state.settle(Instant::now());
        crate::providers::view_by_path(&state, id)
    }

    /// The request log.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared).requests.iter().cloned().collect()
    }

    /// Calls per operation, with read / write / poll totals.
    pub fn counts(&self) -> Counts {
        lock(&self.shared).counts.clone()
    }

    /// Clears the counters and the request log.
    pub fn reset_counts(&self) {
        let mut state = lock(&self.shared);
        state.counts = Counts::default();
        state.requests.clear();
    }

    /// Sets the operation latency of writes from now on.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared).latency = latency;
    }

    /// Appends a rule to the fault script.
    pub fn script_fault(&self, rule: FaultRule) {
        lock(&self.shared).faults.push(rule);
    }

    /// Empties the fault script.
    pub fn clear_faults(&self) {
        lock(&self.shared).faults.clear();
    }

    /// Everything a seed did not make.
    pub fn leftovers(&self) -> Leftovers {
        let mut state = lock(&self.shared);
        state.settle(Instant::now());
        Leftovers::of(&state)
    }

    /// Waits until every operation started so far has settled, or `timeout` has passed;
    /// returns whether they all settled.
    pub async fn wait_for_operations(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let last = lock(&self.shared)
                .operations
                .values()
                .filter(|o| !o.settled)
                .map(|o| o.until)
                .max();
            let now = Instant::now();
            match last {
                Some(until) if until > now => {
                    if until > deadline {
                        tokio::time::sleep(deadline.saturating_duration_since(now)).await;
                        return false;
                    }
                    tokio::time::sleep(until - now).await;
                }
                _ => {
                    lock(&self.shared).settle(Instant::now());
                    return true;
                }
            }
        }
    }

    /// The number of operations that have not settled.
    pub fn operations_in_progress(&self) -> usize {
        let now = Instant::now();
        lock(&self.shared)
            .operations
            .values()
            .filter(|o| !o.settled && o.until > now)
            .count()
    }
}

impl Drop for FakeArm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, shared: Shared, subscription: String, addr: SocketAddr) {
    // Connections live in this set, so aborting the server task closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let subscription = subscription.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        let subscription = subscription.clone();
                        async move { Ok::<_, Infallible>(answer(&shared, &subscription, addr, request).await) }
                    });
                    if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                        tracing::debug!(error = %e, "fake ARM connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn answer(
    shared: &Shared,
    subscription: &str,
    addr: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => {
            let reply = Reply {
                status: 400,
                headers: Vec::new(),
                body: Some(
                    serde_json::json!({"error": {"code": "InvalidRequestFormat", "message": format!("The request body could not be read: {e}.")}}),
                ),
            };
            return to_response(reply);
        }
    };
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| addr.to_string(), str::to_owned);
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (!k.is_empty()).then(|| (decode(k), decode(v)))
                })
                .collect()
        })
        .unwrap_or_default();
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query,
        headers: parts.headers,
        body,
        base_url: format!("http://{host}"),
    };
    let reply = if req.path == "/_admin" || req.path.starts_with("/_admin/") {
        crate::admin::handle(shared, subscription, &req)
    } else {
        pipeline::handle(shared, &req).await
    };
    to_response(reply)
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder().status(status);
    for (k, v) in reply.headers {
        builder = builder.header(k, v);
    }
    let body = match reply.body {
        Some(v) => {
            builder = builder.header(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            );
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        None => Bytes::new(),
    };
    builder.body(Full::new(body)).unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::from_static(
            b"{\"error\":{\"code\":\"InternalServerError\",\"message\":\"bad header\"}}",
        )));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}
