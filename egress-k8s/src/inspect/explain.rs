//! `egressctl explain pod`: a pod's live route plan for one destination and
//! the egress address that destination sees.
//!
//! The plan is built by the node agent's own functions
//! ([`crate::agent::opted_in`], [`crate::agent::gateway_of`],
//! [`crate::agent::pod_inputs`]) from the objects as they are now, then
//! explained by egress-core ([`PodInputs::explain`], [`pod::plan`]).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use egress_core::pod::{self, NextHop, PodInputs};
use egress_core::routes::{Path, Reason, RoutePlan};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::Error;
use crate::agent::{
    ANNOTATION, Gateway, PrimaryLink, gateway_of, opted_in, pod_inputs, route_inputs,
};
use crate::crd::{PodEndpoint, StaticGatewayConfiguration};

/// What the node contributes to a pod's plan, as the agent is configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSide {
    /// The agent's `--exception-cidrs`.
    pub exceptions: Vec<IpNet>,
    /// The pod's primary interface, when known (it is read in the pod's
    /// namespace on the node; the API does not carry it).
    pub primary: Option<PrimaryLink>,
}

/// What the API says about the pod, as the explanation needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFacts {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The configuration it chose and how (`annotation` / `namespace
    /// default`), if any.
    pub choice: Option<(String, &'static str)>,
    /// That configuration, if it exists.
    pub gateway: Option<Gateway>,
    /// Its PodEndpoint's `spec.podIpAddress`, if one exists.
    pub endpoint_ip: Option<String>,
}

/// Reads the pod, its namespace's default, its configuration and its
/// PodEndpoint.
pub async fn gather(client: &Client, ns: &str, name: &str) -> Result<PodFacts, Error> {
    let api_err = |action: String| move |source| Error::Api { action, source };
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(api_err(format!("get pod {ns}/{name}")))?
        .ok_or_else(|| Error::NotFound(format!("pod {ns}/{name}")))?;
    let own = pod.annotations().contains_key(ANNOTATION);
    let default = if own {
        None
    } else {
        Api::<Namespace>::all(client.clone())
            .get_opt(ns)
            .await
            .map_err(api_err(format!("get namespace {ns}")))?
            .and_then(|n| n.annotations().get(ANNOTATION).cloned())
    };
    let choice = opted_in(pod.annotations(), default.as_deref()).map(|c| {
        (
            c,
            if own {
                "annotation"
            } else {
                "namespace default"
            },
        )
    });
    let gateway = match &choice {
        Some((config, _)) => Api::<StaticGatewayConfiguration>::namespaced(client.clone(), ns)
            .get_opt(config)
            .await
            .map_err(api_err(format!(
                "get StaticGatewayConfiguration {ns}/{config}"
            )))?
            .as_ref()
            .map(gateway_of),
        None => None,
    };
    let endpoint_ip = Api::<PodEndpoint>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(api_err(format!("get PodEndpoint {ns}/{name}")))?
        .and_then(|e| e.spec.pod_ip_address);
    Ok(PodFacts {
        namespace: ns.to_string(),
        name: name.to_string(),
        choice,
        gateway,
        endpoint_ip,
    })
}

fn path_text(path: Path) -> &'static str {
    match path {
        Path::Tunnel => "tunnel (egress gateway)",
        Path::Primary => "primary interface",
    }
}

fn reason_text(reason: Reason) -> String {
    match reason {
        Reason::Default => "the default route".to_string(),
        Reason::Excluded(n) => format!("excludeCidrs entry {n}"),
        Reason::NodeException(n) => format!("node exception {n}"),
    }
}

/// Writes the routes the agent would install (or the route plan, when the
/// pod's primary interface is not known) and returns the decision for `dst`.
fn routes_and_decision(
    out: &mut String,
    gw: &Gateway,
    server: &egress_core::model::ServerProfile,
    node: &NodeSide,
    dst: IpAddr,
) -> egress_core::routes::Decision {
    let inputs = match &node.primary {
        Some(primary) => pod_inputs(gw, &node.exceptions, primary),
        None => None,
    };
    if let Some(inputs) = inputs {
        let tunnel = pod::plan(&inputs);
        let _ = writeln!(out, "routes in the pod (egress-core pod plan):");
        for r in &tunnel.routes {
            let hop = match r.via {
                NextHop::Tunnel => format!("via {} dev {}", pod::GATEWAY_TUNNEL_ADDR, tunnel.iface),
                NextHop::Primary(g) => format!("via {g} dev {}", inputs.primary_iface),
                NextHop::OnLink => format!("dev {} scope link", inputs.primary_iface),
            };
            let _ = writeln!(out, "  {} {hop}", r.dst);
        }
        inputs.explain(dst)
    } else {
        // The pod's primary gateway is not known away from the node: the
        // same inputs without it. It only decides the gateway's own /32.
        let routes = RoutePlan::new(&route_inputs(gw, &node.exceptions, None));
        let _ = writeln!(
            out,
            "route plan (pass --primary-gateway for the routes installed in the pod):"
        );
        for r in routes.routes() {
            let _ = writeln!(out, "  {} -> {}", r.dst, path_text(r.via));
        }
        let _ = writeln!(
            out,
            "  default -> {}",
            path_text(routes.mode().default_path())
        );
        PodInputs {
            server: server.clone(),
            routes,
            primary_iface: String::new(),
            primary_gateway: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            underlay_mtu: 0,
            ipv6_egress: false,
            keepalive: None,
        }
        .explain(dst)
    }
}

const NORMAL_PATH: &str = "the node's own address (the pod's normal path)";

/// The explanation as text: the configuration, the routes the agent
/// installs (or plans, when the primary interface is not known), the
/// decision for `dst` and the egress address it leads to.
pub fn render(facts: &PodFacts, node: &NodeSide, dst: IpAddr) -> String {
    let mut out = String::new();
    let pod = format!("{}/{}", facts.namespace, facts.name);
    let _ = writeln!(out, "pod {pod}");
    let Some((config, via)) = &facts.choice else {
        let _ = writeln!(
            out,
            "uses no gateway (no {ANNOTATION} annotation on the pod or its namespace)"
        );
        let _ = writeln!(out, "{dst} -> primary interface, by no opt-in");
        let _ = writeln!(out, "egress address: {NORMAL_PATH}");
        return out;
    };
    let _ = writeln!(out, "configuration {}/{config} (by {via})", facts.namespace);
    let Some(gw) = &facts.gateway else {
        let _ = writeln!(
            out,
            "StaticGatewayConfiguration {}/{config} does not exist: the pod keeps its own routes",
            facts.namespace
        );
        let _ = writeln!(
            out,
            "{dst} -> primary interface, by a missing configuration"
        );
        let _ = writeln!(out, "egress address: {NORMAL_PATH}");
        return out;
    };
    let mode = match gw.mode {
        egress_core::routes::RouteMode::Gateway => "staticEgressGateway",
        egress_core::routes::RouteMode::Primary => "azureNetworking",
    };
    let _ = writeln!(
        out,
        "defaultRoute {mode}, egress {}",
        gw.egress_ip_prefix
            .as_deref()
            .unwrap_or("(none in status yet)")
    );
    for bad in &gw.bad_cidrs {
        let _ = writeln!(
            out,
            "excludeCidrs entry {bad:?} is not a CIDR and is ignored"
        );
    }
    let Some(server) = &gw.server else {
        let _ = writeln!(
            out,
            "not ready: the configuration's status has no gateway endpoint yet, so the pod keeps its own routes"
        );
        let _ = writeln!(
            out,
            "{dst} -> primary interface, by a configuration not ready"
        );
        let _ = writeln!(out, "egress address: {NORMAL_PATH}");
        return out;
    };
    let _ = writeln!(out, "gateway endpoint {}:{}", server.ip, server.port);
    match &facts.endpoint_ip {
        Some(ip) => {
            let _ = writeln!(out, "PodEndpoint {pod} records {ip}");
        }
        None => {
            let _ = writeln!(
                out,
                "no PodEndpoint yet: the node agent has not plumbed the pod, so this is the plan it will apply"
            );
        }
    }
    let explained = routes_and_decision(&mut out, gw, server, node, dst);
    let _ = writeln!(
        out,
        "{dst} -> {}, by {}",
        path_text(explained.path),
        reason_text(explained.reason)
    );
    let egress = match explained.path {
        Path::Tunnel => gw.egress_ip_prefix.clone().map_or_else(
            || "unknown (no egressIpPrefix in status)".into(),
            |p| format!("{p} (the configuration's egressIpPrefix)"),
        ),
        Path::Primary => NORMAL_PATH.to_string(),
    };
    let _ = writeln!(out, "egress address: {egress}");
    out
}

#[cfg(test)]
mod tests {
    use egress_core::model::{SecretRef, ServerProfile};
    use egress_core::routes::RouteMode;

    use super::*;

    fn facts(mode: RouteMode, server: bool) -> PodFacts {
        PodFacts {
            namespace: "apps".into(),
            name: "web".into(),
            choice: Some(("gw".into(), "annotation")),
            gateway: Some(Gateway {
                name: "gw".into(),
                server: server.then(|| ServerProfile {
                    ip: "192.0.2.100"
                        .parse()
                        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                    port: 6000,
                    public_key: "pk".into(),
                    key_secret: SecretRef {
                        namespace: "sys".into(),
                        name: "sgw".into(),
                    },
                }),
                mode,
                exclude_cidrs: vec!["10.0.0.0/8".parse().unwrap_or_default()],
                bad_cidrs: vec!["nonsense".into()],
                egress_ip_prefix: Some("203.0.113.16/28".into()),
            }),
            endpoint_ip: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn tunnelled_destinations_get_the_configurations_prefix() {
        let text = render(
            &facts(RouteMode::Gateway, true),
            &NodeSide::default(),
            ip("198.51.100.7"),
        );
        assert!(
            text.contains("198.51.100.7 -> tunnel (egress gateway), by the default route"),
            "{text}"
        );
        assert!(text.contains("egress address: 203.0.113.16/28"), "{text}");
        assert!(text.contains("\"nonsense\" is not a CIDR"), "{text}");
        let text = render(
            &facts(RouteMode::Gateway, true),
            &NodeSide::default(),
            ip("10.1.2.3"),
        );
        assert!(
            text.contains("10.1.2.3 -> primary interface, by excludeCidrs entry 10.0.0.0/8"),
            "{text}"
        );
        assert!(
            text.contains("egress address: the node's own address"),
            "{text}"
        );
    }

    #[test]
    fn a_known_primary_link_shows_the_pods_routes() {
        let node = NodeSide {
            exceptions: vec!["169.254.169.254/32".parse().unwrap_or_default()],
            primary: Some(PrimaryLink {
                iface: "eth0".into(),
                gateway: ip("10.244.0.1"),
                mtu: 1500,
            }),
        };
        let text = render(&facts(RouteMode::Primary, true), &node, ip("10.9.9.9"));
        assert!(text.contains("  10.0.0.0/8 via fe80::1 dev wg0"), "{text}");
        assert!(
            text.contains("  10.244.0.1/32 dev eth0 scope link"),
            "{text}"
        );
        assert!(
            text.contains("10.9.9.9 -> tunnel (egress gateway), by excludeCidrs entry 10.0.0.0/8"),
            "{text}"
        );
        let text = render(
            &facts(RouteMode::Gateway, true),
            &node,
            ip("169.254.169.254"),
        );
        assert!(
            text.contains("-> primary interface, by node exception 169.254.169.254/32"),
            "{text}"
        );
    }

    #[test]
    fn a_pod_off_the_tunnel_says_why() {
        let text = render(
            &facts(RouteMode::Gateway, false),
            &NodeSide::default(),
            ip("198.51.100.7"),
        );
        assert!(text.contains("not ready"), "{text}");
        let mut f = facts(RouteMode::Gateway, true);
        f.gateway = None;
        assert!(render(&f, &NodeSide::default(), ip("198.51.100.7")).contains("does not exist"));
        f.choice = None;
        assert!(render(&f, &NodeSide::default(), ip("198.51.100.7")).contains("uses no gateway"));
    }
}
