//! A real API server (the testkit's), a fake ARM over HTTP, and the
//! controller binary run as a process against both.

#![allow(
    dead_code, // each test file uses its own part
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use egress_azure::local::{LocalCloud, RESOURCE_GROUP};
use egress_k8s::crd::{StaticGatewayConfiguration, StaticGatewayConfigurationSpec};
use egress_testkit::apiserver::ApiServer;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

/// Namespace of the configurations.
pub const NS: &str = "egress";
/// The controller's namespace (key Secrets, Lease).
pub const SYSTEM_NS: &str = "kube-egress-gateway-system";
/// The VMSS gateway pool's name tag.
pub const POOL: &str = "gwpool";

/// An API server with the CRDs and namespaces, and a fake ARM with a
/// virtual network and one VMSS gateway pool.
pub struct Env {
    pub api: ApiServer,
    pub client: kube::Client,
    pub local: LocalCloud,
    pub dir: tempfile::TempDir,
    pub azure_json: PathBuf,
}

impl Env {
    /// `instances` gateway instances; ARM writes take `latency`.
    pub async fn start(latency: Duration, instances: u32) -> Self {
        let api = ApiServer::start().await.expect("API server");
        let client = api.client().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in egress_k8s::generate::crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            crds.create(&PostParams::default(), &crd).await.unwrap();
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(crds.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .unwrap()
            .unwrap();
        }
        let namespaces: Api<Namespace> = Api::all(client.clone());
        for ns in [NS, SYSTEM_NS] {
            namespaces
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
                )
                .await
                .unwrap();
        }
        let local = LocalCloud::start(latency).await.expect("fake ARM");
        local
            .add_vmss_pool("aks-gwpool-1234-vmss", POOL, 30, instances)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let azure_json = dir.path().join("azure.json");
        std::fs::write(
            &azure_json,
            json!({
                "cloud": "AzurePublicCloud",
                "tenantId": "00000000-0000-0000-0000-000000000001",
                "subscriptionId": local.arm.subscription(),
                "resourceGroup": RESOURCE_GROUP,
                "location": "westus",
                "vnetName": "vnet",
                "vnetResourceGroup": RESOURCE_GROUP,
                "subnetName": "ilb",
                "useManagedIdentityExtension": true,
                "resourceManagerEndpoint": local.arm.base_url(),
            })
            .to_string(),
        )
        .unwrap();
        Self {
            api,
            client,
            local,
            dir,
            azure_json,
        }
    }

    /// Starts a controller replica named `identity`.
    pub fn controller(&self, identity: &str, extra: &[&str]) -> Controller {
        Controller::spawn(
            &self.azure_json,
            self.api.kubeconfig_path(),
            identity,
            self.dir.path(),
            extra,
        )
    }

    pub fn sgcs(&self) -> Api<StaticGatewayConfiguration> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Creates a configuration from its spec in JSON.
    pub async fn apply(&self, name: &str, spec: serde_json::Value) -> StaticGatewayConfiguration {
        let spec: StaticGatewayConfigurationSpec = serde_json::from_value(spec).unwrap();
        self.sgcs()
            .create(
                &PostParams::default(),
                &StaticGatewayConfiguration::new(name, spec),
            )
            .await
            .unwrap()
    }
}

/// A pool-name spec: private or managed public.
pub fn pool_spec(public: bool) -> serde_json::Value {
    json!({"gatewayNodepoolName": POOL, "provisionPublicIps": public})
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The controller binary as a child process; killed on drop.
pub struct Controller {
    child: Child,
    pub log: PathBuf,
    pub metrics_port: u16,
    pub identity: String,
}

impl Controller {
    fn spawn(
        azure_json: &Path,
        kubeconfig: &Path,
        identity: &str,
        dir: &Path,
        extra: &[&str],
    ) -> Self {
        let metrics_port = free_port();
        let health_port = free_port();
        let log = dir.join(format!("{identity}-{}.log", std::process::id()));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_egress-controller"));
        cmd.args([
            "--cloud-config",
            &azure_json.to_string_lossy(),
            "--kubeconfig",
            &kubeconfig.to_string_lossy(),
            "--identity",
            identity,
            "--bind-address",
            "127.0.0.1",
            "--metrics-bind-port",
            &metrics_port.to_string(),
            "--health-probe-bind-port",
            &health_port.to_string(),
            "--arm-poll-interval",
            "100ms",
            // The fake ARM suggests whole seconds; polls every 500 ms at most
            // keep figures about the controller, not the polling.
            "--arm-max-poll-interval",
            "500ms",
            "--lease-duration",
            "4s",
            "--renew-deadline",
            "3s",
            "--retry-period",
            "500ms",
            "--debounce-quiet",
            "100ms",
            "--log",
            "debug",
        ])
        .args(extra)
        .env("MY_POD_NAMESPACE", SYSTEM_NS)
        .env("EGRESS_ARM_STATIC_TOKEN", "local-test-token")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
        #[allow(unsafe_code)]
        // SAFETY: prctl is async-signal-safe and touches no parent memory; the
        // controller dies with the test process even when that is killed.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().expect("controller binary");
        Self {
            child,
            log,
            metrics_port,
            identity: identity.to_string(),
        }
    }

    /// GET of one of its endpoints; `None` while it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let code = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        Some((code, body))
    }

    /// One metric's value (first line that starts with `name`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB, from `/proc`.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    pub fn is_leader(&self) -> bool {
        self.metric("egress_controller_leader") == Some(1.0)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- controller {} log (last 60 lines) ---\n{}",
                self.identity,
                self.logs()
                    .lines()
                    .rev()
                    .take(60)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `Ready` condition's status, reason and message.
pub fn ready_condition(sgc: &StaticGatewayConfiguration) -> Option<(String, String, String)> {
    condition(sgc, "Ready")
}

pub fn condition(
    sgc: &StaticGatewayConfiguration,
    type_: &str,
) -> Option<(String, String, String)> {
    sgc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Whether the configuration is Ready with a complete status.
pub fn is_ready(sgc: &StaticGatewayConfiguration) -> bool {
    let complete = sgc.status.as_ref().is_some_and(|s| {
        s.egress_ip_prefix.is_some()
            && s.gateway_server_profile
                .as_ref()
                .is_some_and(|p| p.ip.is_some() && p.port.is_some() && p.public_key.is_some())
    });
    complete && ready_condition(sgc).is_some_and(|(s, _, _)| s == "True")
}

/// Waits until every named configuration is Ready.
pub async fn wait_ready(env: &Env, names: &[&str], timeout: Duration) {
    let api = env.sgcs();
    wait_for(&format!("{names:?} Ready"), timeout, || {
        let api = api.clone();
        async move {
            for n in names {
                let s = api.get_opt(n).await.ok()??;
                if !is_ready(&s) {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
}

/// Waits until no configuration is left in the API server.
pub async fn wait_all_gone(env: &Env, timeout: Duration) {
    let api = env.sgcs();
    wait_for("every configuration deleted", timeout, || {
        let api = api.clone();
        async move {
            let list = api.list(&kube::api::ListParams::default()).await.ok()?;
            list.items.is_empty().then_some(())
        }
    })
    .await;
}
