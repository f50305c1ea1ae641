//! A real `kube-apiserver` and `etcd` on loopback, one pair per test.
//!
//! Each instance gets its own ports, its own temporary directory, a static
//! bearer token in the `system:masters` group and a generated kubeconfig.
//! Dropping the handle kills both processes and removes the directory; the
//! processes also die with the test process if it is killed outright.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::{Guarded, run};

/// The Kubernetes version the harness is pinned to (see `tools/k8s/version`).
pub const KUBERNETES_VERSION: &str = include_str!("../../tools/k8s/version");

const TOKEN: &str = "egress-testkit-admin-token";
const READY_TIMEOUT: Duration = Duration::from_mins(2);

/// A running API server. Dropping it stops the server and etcd.
#[derive(Debug)]
pub struct ApiServer {
    // Field order is drop order: the API server stops before etcd, and the
    // directory holding their data goes last.
    apiserver: Guarded,
    etcd: Guarded,
    url: String,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

/// Where the pinned binaries live: `$EGRESS_K8S_BIN_DIR`, or the cache that
/// `scripts/setup.sh` fills.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EGRESS_K8S_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("EGRESS_CACHE").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/egress-gateway")
        },
        PathBuf::from,
    );
    cache
        .join(format!("k8s-{}", KUBERNETES_VERSION.trim()))
        .join("bin")
}

fn binary(name: &str) -> Result<PathBuf, Error> {
    let path = bin_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingBinary { path })
    }
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Io {
        path: PathBuf::from("127.0.0.1:0"),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| Error::Io {
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl ApiServer {
    /// Starts etcd and the API server and waits until `/readyz` answers `ok`.
    ///
    /// Free ports are found by binding port 0 and releasing it, so a parallel
    /// test can rarely take one first; a server that exits during start-up is
    /// therefore retried on fresh ports, up to three attempts.
    pub async fn start() -> Result<Self, Error> {
        let mut attempt = 1;
        loop {
            match Self::start_once().await {
                Err(Error::Exited { .. }) if attempt < 3 => attempt += 1,
                other => return other,
            }
        }
    }

    async fn start_once() -> Result<Self, Error> {
        let apiserver_bin = binary("kube-apiserver")?;
        let etcd_bin = binary("etcd")?;
        let dir = tempfile::Builder::new()
            .prefix("egress-apiserver-")
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let d = dir.path();

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let mut etcd_cmd = Command::new(etcd_bin);
        etcd_cmd.args([
            "--name=default",
            &format!("--data-dir={}", d.join("etcd").display()),
            &format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            &format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            &format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            &format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
            // Test data is throwaway; fsync only slows the suite down.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]);
        let mut etcd = Guarded::spawn("etcd", etcd_cmd, &d.join("etcd.log"))?;

        let sa_key = d.join("sa.key");
        let sa_pub = d.join("sa.pub");
        run(
            "openssl",
            &["genrsa", "-out", &sa_key.to_string_lossy(), "2048"],
        )?;
        run(
            "openssl",
            &[
                "rsa",
                "-in",
                &sa_key.to_string_lossy(),
                "-pubout",
                "-out",
                &sa_pub.to_string_lossy(),
            ],
        )?;
        let tokens = d.join("tokens.csv");
        write(
            &tokens,
            &format!("{TOKEN},egress-admin,egress-admin-uid,\"system:masters\"\n"),
        )?;
        wait_tcp(&mut etcd, "etcd", etcd_port).await?;

        let port = free_port()?;
        let certs = d.join("certs");
        let mut cmd = Command::new(apiserver_bin);
        cmd.args([
            &format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            &format!("--secure-port={port}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            &format!("--cert-dir={}", certs.display()),
            &format!("--token-auth-file={}", tokens.display()),
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            &format!("--service-account-key-file={}", sa_pub.display()),
            &format!("--service-account-signing-key-file={}", sa_key.display()),
            "--service-cluster-ip-range=10.96.0.0/16",
            // No controller-manager runs, so nothing would mint service-account tokens.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--v=1",
        ]);
        let mut apiserver = Guarded::spawn("kube-apiserver", cmd, &d.join("kube-apiserver.log"))?;
        let url = format!("https://127.0.0.1:{port}");
        let kubeconfig = d.join("kubeconfig");
        write(&kubeconfig, &kubeconfig_yaml(&url))?;

        // On failure the guards and the directory drop here, stopping both servers.
        wait_ready(&mut apiserver, &kubeconfig).await?;
        Ok(Self {
            apiserver,
            etcd,
            url,
            kubeconfig,
            dir,
        })
    }

    /// The HTTPS address of the API server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Path to a kubeconfig granting cluster-admin on this server.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The scratch directory holding etcd data, certificates and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client built from the generated kubeconfig.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        client_from(&self.kubeconfig).await
    }

    /// The last lines of the API server's log, for diagnosing a failure.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::process::log_tail(&self.dir.path().join("kube-apiserver.log"), lines)
    }

    /// Fails if either process died since start-up.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        self.etcd.check_alive()?;
        self.apiserver.check_alive()
    }
}

fn kubeconfig_yaml(url: &str) -> String {
    // The serving certificate is self-signed by the API server at start-up and
    // only exists once it is listening, so the kubeconfig skips verification.
    // The server binds to loopback only.
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: egress-test
  cluster:
    server: {url}
    insecure-skip-tls-verify: true
users:
- name: egress-admin
  user:
    token: {TOKEN}
contexts:
- name: egress-test
  context:
    cluster: egress-test
    user: egress-admin
current-context: egress-test
"
    )
}

pub(crate) async fn client_from(path: &Path) -> Result<kube::Client, Error> {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig(Box::new(e)))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| Error::Kubeconfig(Box::new(e)))?;
    kube::Client::try_from(config).map_err(|e| Error::Kubeconfig(Box::new(e)))
}

async fn wait_tcp(proc_: &mut Guarded, what: &'static str, port: u16) -> Result<(), Error> {
    let start = Instant::now();
    loop {
        proc_.check_alive()?;
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > READY_TIMEOUT => {
                return Err(Error::NotReady {
                    what,
                    seconds: READY_TIMEOUT.as_secs(),
                    last: e.to_string(),
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn wait_ready(apiserver: &mut Guarded, kubeconfig: &Path) -> Result<(), Error> {
    let start = Instant::now();
    let client = client_from(kubeconfig).await?;
    let mut last = String::from("no answer yet");
    while start.elapsed() < READY_TIMEOUT {
        apiserver.check_alive()?;
        let req = http_get("/readyz");
        match client.request_text(req).await {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            Ok(body) => last = body,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Error::NotReady {
        what: "kube-apiserver",
        seconds: READY_TIMEOUT.as_secs(),
        last,
    })
}

fn http_get(path: &str) -> http::Request<Vec<u8>> {
    let mut req = http::Request::new(Vec::new());
    if let Ok(uri) = path.parse() {
        *req.uri_mut() = uri;
    }
    req
}
