//! `egressctl`: operator tooling for the egress gateway.

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
    /// Explain where a pod's traffic to each destination goes.
    Explain {
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
        /// Destinations to explain.
        #[arg(required = true)]
        destinations: Vec<String>,
    },
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match cli.command {
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
