//! `egressctl`: operator tooling for the egress gateway.

mod doctor;

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use egress_core::routes::{Path, Reason, RouteInputs, RouteMode, RoutePlan};
use ipnet::IpNet;

#[derive(Debug, Parser)]
#[command(version, about = "Operator tooling for the static egress gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the CRD manifests from the Rust types.
    ///
    /// The project keeps two copies, `deploy/crds` and the Helm chart's
    /// `deploy/helm/egress-gateway/crds`: pass both to `--out` (or `--check`)
    /// so one command keeps them identical.
    Crds {
        /// Write one YAML file per CRD into this directory (repeatable).
        #[arg(long, conflicts_with = "check")]
        out: Vec<PathBuf>,
        /// Fail unless this directory holds exactly the generated manifests
        /// (repeatable; every directory is checked and all differences named).
        #[arg(long)]
        check: Vec<PathBuf>,
    },
    /// Every `StaticGatewayConfiguration` with its pool, mode, egress
    /// addresses, readiness and the pods that use it.
    Status {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: Output,
    },
    /// Compare a node's real state with its plan and name each difference
    /// (`doctor node <name>`; run as root on that node).
    Doctor {
        #[command(subcommand)]
        target: DoctorTarget,
    },
    /// Explain where a pod's traffic to each destination goes: offline from
    /// flags (`explain --exclude 10.0.0.0/8 8.8.8.8`), or for a live pod
    /// (`explain pod <namespace>/<name> <destination>`).
    Explain {
        /// The pod's primary interface, for `explain pod` (the pod's routes
        /// are shown only with --primary-gateway).
        #[arg(long, default_value = "eth0")]
        interface: String,
        /// The pod's primary interface MTU, for `explain pod`.
        #[arg(long, default_value_t = 1500)]
        mtu: u32,
        /// The configuration's `spec.defaultRoute`.
        #[arg(long, value_enum, default_value = "staticEgressGateway")]
        default_route: DefaultRoute,
        /// One of the configuration's `spec.excludeCidrs` (repeatable).
        #[arg(long = "exclude")]
        exclude: Vec<String>,
        /// A node-level exception CIDR (repeatable).
        #[arg(long = "node-exception")]
        node_exceptions: Vec<String>,
        /// The pod's primary default gateway.
        #[arg(long)]
        primary_gateway: Option<IpAddr>,
        /// Destinations to explain, or `pod <namespace>/<name> <destination>`.
        #[arg(required = true)]
        destinations: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DoctorTarget {
    /// A gateway node: its WireGuard devices, peers, egress addresses,
    /// SNAT entries and plumbing against the gateway daemon's plan.
    Node(doctor::Options),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DefaultRoute {
    #[value(name = "staticEgressGateway")]
    StaticEgressGateway,
    #[value(name = "azureNetworking")]
    AzureNetworking,
}

fn cidrs(flag: &str, list: &[String]) -> anyhow::Result<Vec<IpNet>> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.trim().parse().with_context(|| {
                format!("{flag} #{} is {s:?}, not a CIDR such as 10.0.0.0/8", i + 1)
            })
        })
        .collect()
}

fn explain(
    out: &mut impl Write,
    inputs: &RouteInputs,
    destinations: &[String],
) -> anyhow::Result<()> {
    let plan = RoutePlan::new(inputs);
    for route in plan.routes() {
        writeln!(
            out,
            "route {} -> {:?} ({:?})",
            route.dst, route.via, route.origin
        )?;
    }
    for dst in destinations {
        let Ok(addr) = dst.trim().parse::<IpAddr>() else {
            bail!("destination {dst:?} is not an IP address");
        };
        let d = plan.explain(addr);
        let path = match d.path {
            Path::Tunnel => "tunnel (egress gateway)",
            Path::Primary => "primary interface",
        };
        let why = match d.reason {
            Reason::Default => "the default route".to_string(),
            Reason::Excluded(n) => format!("excludeCidrs entry {n}"),
            Reason::NodeException(n) => format!("node exception {n}"),
        };
        writeln!(out, "{addr} -> {path}, by {why}")?;
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (KUBECONFIG or in-cluster)")
}

/// `explain pod <namespace>/<name> <destination>`.
fn explain_pod(
    out: &mut impl Write,
    args: &[String],
    node: &egress_k8s::inspect::explain::NodeSide,
) -> anyhow::Result<()> {
    let [pod, dst] = args else {
        bail!("explain pod takes <namespace>/<name> <destination>, got {args:?}");
    };
    let Some((ns, name)) = pod
        .split_once('/')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
    else {
        bail!("pod {pod:?} is not <namespace>/<name>");
    };
    let Ok(dst) = dst.trim().parse::<IpAddr>() else {
        bail!("destination {dst:?} is not an IP address");
    };
    let facts = runtime()?.block_on(async {
        let client = client().await?;
        egress_k8s::inspect::explain::gather(&client, ns, name)
            .await
            .map_err(anyhow::Error::from)
    })?;
    out.write_all(egress_k8s::inspect::explain::render(&facts, node, dst).as_bytes())?;
    Ok(())
}

/// `status`, as a table or JSON.
fn status(out: &mut impl Write, output: Output) -> anyhow::Result<()> {
    let status = runtime()?.block_on(async {
        let client = client().await?;
        egress_k8s::inspect::status::gather(&client)
            .await
            .map_err(anyhow::Error::from)
    })?;
    match output {
        Output::Table => {
            out.write_all(egress_k8s::inspect::status::render_table(&status).as_bytes())?;
        }
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &status)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Status { output } => status(&mut stdout, output)?,
        Command::Doctor {
            target: DoctorTarget::Node(opts),
        } => {
            let found = runtime()?.block_on(doctor::run(&mut stdout, &opts))?;
            if found > 0 {
                stdout.flush()?;
                std::process::exit(1);
            }
        }
        Command::Explain {
            destinations,
            exclude,
            default_route,
            node_exceptions,
            primary_gateway,
            interface,
            mtu,
        } if destinations.first().map(String::as_str) == Some("pod") => {
            if !exclude.is_empty() || !matches!(default_route, DefaultRoute::StaticEgressGateway) {
                bail!(
                    "explain pod reads excludeCidrs and defaultRoute from the pod's configuration: drop --exclude and --default-route"
                );
            }
            let node = egress_k8s::inspect::explain::NodeSide {
                exceptions: cidrs("--node-exception", &node_exceptions)?,
                primary: primary_gateway.map(|gateway| egress_k8s::agent::PrimaryLink {
                    iface: interface,
                    gateway,
                    mtu,
                }),
            };
            explain_pod(&mut stdout, &destinations[1..], &node)?;
        }
        Command::Crds { out, check } if !out.is_empty() || !check.is_empty() => {
            for dir in &out {
                for file in egress_k8s::generate::write(dir)
                    .with_context(|| format!("writing CRDs to {}", dir.display()))?
                {
                    writeln!(stdout, "wrote {}", dir.join(file).display())?;
                }
            }
            let mut stale = Vec::new();
            for dir in &check {
                match egress_k8s::generate::check(dir) {
                    Ok(()) => {
                        writeln!(stdout, "CRD manifests in {} are up to date", dir.display())?;
                    }
                    Err(e) => stale.push(format!("{}: {e}", dir.display())),
                }
            }
            if !stale.is_empty() {
                let outs: Vec<String> = check
                    .iter()
                    .map(|d| format!("--out {}", d.display()))
                    .collect();
                bail!(
                    "{}\nregenerate with: egressctl crds {}",
                    stale.join("\n"),
                    outs.join(" ")
                );
            }
        }
        Command::Crds { .. } => {
            for text in egress_k8s::generate::manifests()?.values() {
                writeln!(stdout, "---\n{text}")?;
            }
        }
        Command::Explain {
            default_route,
            exclude,
            node_exceptions,
            primary_gateway,
            destinations,
            ..
        } => {
            let inputs = RouteInputs {
                mode: match default_route {
                    DefaultRoute::StaticEgressGateway => RouteMode::Gateway,
                    DefaultRoute::AzureNetworking => RouteMode::Primary,
                },
                exclude_cidrs: cidrs("--exclude", &exclude)?,
                node_exceptions: cidrs("--node-exception", &node_exceptions)?,
                primary_gateway,
            };
            explain(&mut stdout, &inputs, &destinations)?;
        }
    }
    Ok(())
}
