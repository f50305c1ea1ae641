//! Plans a pod's routes for a gateway configuration and explains where a few
//! destinations go. This is the local demo until the cloud-in-a-box exists.
//!
//! ```text
//! cargo run -p egress-examples --example plan_routes
//! ```

#![allow(clippy::print_stdout)]

use std::net::IpAddr;

use egress_core::routes::{Path, Reason, RouteInputs, RouteMode, RoutePlan};
use ipnet::IpNet;

fn nets(list: &[&str]) -> Result<Vec<IpNet>, ipnet::AddrParseError> {
    list.iter().map(|s| s.parse()).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What a node agent passes on AKS: the metadata service, node-local DNS,
    // and the cluster's pod and service CIDRs.
    let node_exceptions = nets(&[
        "169.254.169.254/32",
        "169.254.10.11/32",
        "10.244.0.0/16",
        "10.96.0.0/12",
    ])?;
    for (mode, excludes) in [
        (
            RouteMode::Gateway,
            vec!["10.0.0.0/8", "172.16.0.0/12", "10.244.7.9/16"],
        ),
        (
            RouteMode::Primary,
            vec!["0.0.0.0/1", "203.0.113.0/24", "fd00::/8"],
        ),
    ] {
        let inputs = RouteInputs {
            mode,
            exclude_cidrs: nets(&excludes)?,
            node_exceptions: node_exceptions.clone(),
            primary_gateway: Some("10.224.0.1".parse()?),
        };
        let plan = RoutePlan::new(&inputs);
        println!("== defaultRoute {mode:?}, excludeCidrs {excludes:?}");
        println!("   default route -> {:?}", mode.default_path());
        for route in plan.routes() {
            println!(
                "   {:<22} -> {:?} ({:?})",
                route.dst.to_string(),
                route.via,
                route.origin
            );
        }
        for note in plan.notes() {
            println!("   note: {note:?}");
        }
        for dst in [
            "8.8.8.8",
            "10.1.2.3",
            "10.244.3.4",
            "169.254.169.254",
            "203.0.113.7",
            "fd00::1",
            "2001:db8::1",
        ] {
            let dst: IpAddr = dst.parse()?;
            let d = plan.explain(dst);
            let why = match d.reason {
                Reason::Default => "default route".to_string(),
                Reason::Excluded(n) => format!("excludeCidrs {n}"),
                Reason::NodeException(n) => format!("node exception {n}"),
            };
            let path = match d.path {
                Path::Tunnel => "tunnel to the gateway",
                Path::Primary => "primary interface",
            };
            println!("   explain {dst:<16} -> {path:<22} because of {why}");
        }
        println!();
    }
    Ok(())
}
