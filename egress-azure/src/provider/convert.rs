//! Translation between the ARM models and core's types, and the merges that
//! write core's plan into the raw bodies read from Azure so every field core
//! does not know about goes back unchanged.

use std::net::IpAddr;

use egress_core::lb::{self, Protocol};
use egress_core::vmss::{IpConfig, Nic};

use crate::models::{
    BackendPool, Extra, Frontend, FrontendProperties, LoadBalancer, LoadBalancerProperties,
    LoadBalancingRule, NetworkInterface, NicConfig, NicConfigProperties, NicIpConfig,
    NicIpConfigProperties, Probe, ProbeProperties, PublicIpConfig, PublicIpConfigProperties,
    RuleProperties, SubResource, VmssIpConfig, VmssIpConfigProperties,
};

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn last_segment(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// The ARM ID of the load balancer the adapter manages, which turns backend
/// pool names (how core names them) into IDs and back.
#[derive(Clone, Debug)]
pub(crate) struct LbIds {
    /// `/subscriptions/.../loadBalancers/{name}`.
    pub lb_id: String,
}

impl LbIds {
    pub(crate) fn child(&self, kind: &str, name: &str) -> String {
        format!("{}/{kind}/{name}", self.lb_id)
    }

    /// Core's form of a backend pool reference: the name for our LB's pools,
    /// the ID otherwise.
    fn backend_to_core(&self, id: &str) -> String {
        let prefix = format!("{}/backendAddressPools/", self.lb_id);
        match id.get(..prefix.len()) {
            Some(head) if eq(head, &prefix) => id[prefix.len()..].to_string(),
            _ => id.to_string(),
        }
    }

    /// The ARM ID of a core backend reference.
    fn backend_to_arm(&self, r: &str) -> String {
        if r.starts_with('/') {
            r.to_string()
        } else {
            self.child("backendAddressPools", r)
        }
    }

    /// Keeps the raw references core still wants (with their unmodelled
    /// fields) in their order, then adds the new ones.
    fn merge_backends(
        &self,
        raw: Option<&Vec<SubResource>>,
        want: &[String],
    ) -> Option<Vec<SubResource>> {
        let want_ids: Vec<String> = want.iter().map(|r| self.backend_to_arm(r)).collect();
        let have: Vec<SubResource> = raw.cloned().unwrap_or_default();
        let mut out: Vec<SubResource> = have
            .into_iter()
            .filter(|s| want_ids.iter().any(|w| eq(w, s.id_str())))
            .collect();
        for w in want_ids {
            if !out.iter().any(|s| eq(s.id_str(), &w)) {
                out.push(SubResource::to(w));
            }
        }
        if out.is_empty() && raw.is_none() {
            None
        } else {
            Some(out)
        }
    }
}

/// A private address as Azure reports it (sometimes `a.b.c.d/len`).
pub(crate) fn parse_ip(text: Option<&str>) -> Option<IpAddr> {
    text?.split('/').next()?.parse().ok()
}

fn is_ipv6(version: Option<&str>) -> bool {
    version.is_some_and(|v| eq(v, "IPv6"))
}

fn version(ipv6: bool) -> String {
    if ipv6 { "IPv6" } else { "IPv4" }.to_string()
}

// ---------------------------------------------------------------------------
// Scale-set NIC configurations.

pub(crate) fn vmss_nics_to_core(raw: &[NicConfig], ids: &LbIds) -> Vec<Nic> {
    raw.iter()
        .map(|n| {
            let props = n.properties.as_ref();
            Nic {
                name: n.name.clone(),
                primary: props.and_then(|p| p.primary).unwrap_or(false),
                ip_configs: props
                    .and_then(|p| p.ip_configurations.as_ref())
                    .map(|cs| cs.iter().map(|c| vmss_ip_to_core(c, ids)).collect())
                    .unwrap_or_default(),
                etag: None,
            }
        })
        .collect()
}

fn vmss_ip_to_core(c: &VmssIpConfig, ids: &LbIds) -> IpConfig {
    let p = c.properties.as_ref();
    IpConfig {
        name: c.name.clone(),
        primary: p.and_then(|p| p.primary).unwrap_or(false),
        ipv6: is_ipv6(p.and_then(|p| p.private_ip_address_version.as_deref())),
        subnet_id: p.and_then(|p| p.subnet.as_ref()).and_then(|s| s.id.clone()),
        public_ip_prefix: p
            .and_then(|p| p.public_ip_address_configuration.as_ref())
            .and_then(|c| c.properties.as_ref())
            .and_then(|c| c.public_ip_prefix.as_ref())
            .and_then(|s| s.id.clone()),
        public_ip: None,
        backend_pools: p
            .and_then(|p| p.load_balancer_backend_address_pools.as_ref())
            .map(|b| b.iter().map(|s| ids.backend_to_core(s.id_str())).collect())
            .unwrap_or_default(),
        private_ip: None,
    }
}

/// Writes core's NIC configurations into the raw ones read from Azure.
pub(crate) fn merge_vmss_nics(raw: &[NicConfig], want: &[Nic], ids: &LbIds) -> Vec<NicConfig> {
    want.iter()
        .map(|w| {
            let mut nic = raw
                .iter()
                .find(|r| eq(&r.name, &w.name))
                .cloned()
                .unwrap_or_else(|| NicConfig {
                    name: w.name.clone(),
                    properties: Some(NicConfigProperties {
                        primary: Some(w.primary),
                        ..NicConfigProperties::default()
                    }),
                    extra: Extra::new(),
                });
            let props = nic
                .properties
                .get_or_insert_with(NicConfigProperties::default);
            let have = props.ip_configurations.take().unwrap_or_default();
            props.ip_configurations = Some(
                w.ip_configs
                    .iter()
                    .map(|c| merge_vmss_ip(have.iter().find(|h| eq(&h.name, &c.name)), c, ids))
                    .collect(),
            );
            nic
        })
        .collect()
}

fn merge_vmss_ip(raw: Option<&VmssIpConfig>, want: &IpConfig, ids: &LbIds) -> VmssIpConfig {
    let mut c = raw.cloned().unwrap_or_else(|| VmssIpConfig {
        name: want.name.clone(),
        properties: Some(VmssIpConfigProperties {
            primary: Some(want.primary),
            private_ip_address_version: Some(version(want.ipv6)),
            ..VmssIpConfigProperties::default()
        }),
        extra: Extra::new(),
    });
    let p = c
        .properties
        .get_or_insert_with(VmssIpConfigProperties::default);
    if p.primary.unwrap_or(false) != want.primary {
        p.primary = Some(want.primary);
    }
    set_subnet(&mut p.subnet, want.subnet_id.as_deref());
    match &want.public_ip_prefix {
        Some(prefix) => {
            let cfg = p
                .public_ip_address_configuration
                .get_or_insert_with(|| PublicIpConfig {
                    name: want.name.clone(),
                    ..PublicIpConfig::default()
                });
            let props = cfg
                .properties
                .get_or_insert_with(PublicIpConfigProperties::default);
            if props
                .public_ip_prefix
                .as_ref()
                .is_none_or(|s| !eq(s.id_str(), prefix))
            {
                props.public_ip_prefix = Some(SubResource::to(prefix.clone()));
            }
        }
        None => p.public_ip_address_configuration = None,
    }
    p.load_balancer_backend_address_pools = ids.merge_backends(
        p.load_balancer_backend_address_pools.as_ref(),
        &want.backend_pools,
    );
    c
}

fn set_subnet(slot: &mut Option<SubResource>, want: Option<&str>) {
    match want {
        Some(id) if slot.as_ref().is_none_or(|s| !eq(s.id_str(), id)) => {
            *slot = Some(SubResource::to(id));
        }
        Some(_) => {}
        None => *slot = None,
    }
}

// ---------------------------------------------------------------------------
// Standalone NICs (VM pools) and scale-set instance NICs.

pub(crate) fn nic_to_core(n: &NetworkInterface, etag: Option<String>, ids: &LbIds) -> Nic {
    Nic {
        name: n.name.clone().unwrap_or_default(),
        primary: n
            .properties
            .as_ref()
            .and_then(|p| p.primary)
            .unwrap_or(false),
        ip_configs: n
            .ip_configs()
            .iter()
            .map(|c| nic_ip_to_core(c, ids))
            .collect(),
        etag: etag.or_else(|| n.etag.clone()),
    }
}

fn nic_ip_to_core(c: &NicIpConfig, ids: &LbIds) -> IpConfig {
    let p = c.properties.as_ref();
    IpConfig {
        name: c.name.clone(),
        primary: p.and_then(|p| p.primary).unwrap_or(false),
        ipv6: is_ipv6(p.and_then(|p| p.private_ip_address_version.as_deref())),
        subnet_id: p.and_then(|p| p.subnet.as_ref()).and_then(|s| s.id.clone()),
        public_ip_prefix: None,
        public_ip: p
            .and_then(|p| p.public_ip_address.as_ref())
            .and_then(|s| s.id.clone()),
        backend_pools: p
            .and_then(|p| p.load_balancer_backend_address_pools.as_ref())
            .map(|b| b.iter().map(|s| ids.backend_to_core(s.id_str())).collect())
            .unwrap_or_default(),
        private_ip: parse_ip(p.and_then(|p| p.private_ip_address.as_deref())),
    }
}

/// Writes core's ipConfigs into a NIC read from Azure.
pub(crate) fn merge_nic(raw: &NetworkInterface, want: &Nic, ids: &LbIds) -> NetworkInterface {
    let mut nic = raw.clone();
    let props = nic.properties.get_or_insert_with(Default::default);
    let have = props.ip_configurations.take().unwrap_or_default();
    props.ip_configurations = Some(
        want.ip_configs
            .iter()
            .map(|c| merge_nic_ip(have.iter().find(|h| eq(&h.name, &c.name)), c, ids))
            .collect(),
    );
    nic
}

fn merge_nic_ip(raw: Option<&NicIpConfig>, want: &IpConfig, ids: &LbIds) -> NicIpConfig {
    let mut c = raw.cloned().unwrap_or_else(|| NicIpConfig {
        name: want.name.clone(),
        properties: Some(NicIpConfigProperties {
            primary: Some(want.primary),
            private_ip_address_version: Some(version(want.ipv6)),
            private_ip_allocation_method: Some("Dynamic".into()),
            ..NicIpConfigProperties::default()
        }),
        ..NicIpConfig::default()
    });
    let p = c
        .properties
        .get_or_insert_with(NicIpConfigProperties::default);
    if p.primary.unwrap_or(false) != want.primary {
        p.primary = Some(want.primary);
    }
    set_subnet(&mut p.subnet, want.subnet_id.as_deref());
    match &want.public_ip {
        Some(id)
            if p.public_ip_address
                .as_ref()
                .is_none_or(|s| !eq(s.id_str(), id)) =>
        {
            p.public_ip_address = Some(SubResource::to(id.clone()));
        }
        Some(_) => {}
        None => p.public_ip_address = None,
    }
    p.load_balancer_backend_address_pools = ids.merge_backends(
        p.load_balancer_backend_address_pools.as_ref(),
        &want.backend_pools,
    );
    c
}

// ---------------------------------------------------------------------------
// The load balancer.

fn protocol_to_core(p: Option<&str>) -> Protocol {
    match p {
        Some(p) if eq(p, "Udp") => Protocol::Udp,
        Some(p) if eq(p, "Tcp") => Protocol::Tcp,
        _ => Protocol::Other,
    }
}

pub(crate) fn lb_to_core(raw: &LoadBalancer, etag: Option<String>) -> lb::LoadBalancer {
    let empty = LoadBalancerProperties::default();
    let p = raw.properties.as_ref().unwrap_or(&empty);
    let name_of = |s: Option<&SubResource>| {
        s.map(|s| last_segment(s.id_str()).to_string())
            .unwrap_or_default()
    };
    lb::LoadBalancer {
        etag: etag.or_else(|| raw.etag.clone()),
        backends_in_use: p
            .backend_address_pools
            .iter()
            .flatten()
            .filter(|b| {
                b.properties
                    .as_ref()
                    .and_then(|p| p.backend_ip_configurations.as_ref())
                    .is_some_and(|c| !c.is_empty())
            })
            .map(|b| b.name.to_ascii_lowercase())
            .collect(),
        frontends: p
            .frontend_ip_configurations
            .iter()
            .flatten()
            .map(|f| lb::Frontend {
                name: f.name.clone(),
                private_ip: parse_ip(
                    f.properties
                        .as_ref()
                        .and_then(|p| p.private_ip_address.as_deref()),
                ),
                subnet_id: f
                    .properties
                    .as_ref()
                    .and_then(|p| p.subnet.as_ref())
                    .and_then(|s| s.id.clone()),
            })
            .collect(),
        backends: p
            .backend_address_pools
            .iter()
            .flatten()
            .map(|b| b.name.clone())
            .collect(),
        rules: p
            .load_balancing_rules
            .iter()
            .flatten()
            .map(|r| {
                let rp = r.properties.clone().unwrap_or_default();
                lb::Rule {
                    name: r.name.clone(),
                    frontend: name_of(rp.frontend_ip_configuration.as_ref()),
                    backend: name_of(rp.backend_address_pool.as_ref()),
                    probe: name_of(rp.probe.as_ref()),
                    protocol: protocol_to_core(rp.protocol.as_deref()),
                    frontend_port: rp.frontend_port.unwrap_or(0),
                    backend_port: rp.backend_port.unwrap_or(0),
                    floating_ip: rp.enable_floating_ip.unwrap_or(false),
                }
            })
            .collect(),
        probes: p
            .probes
            .iter()
            .flatten()
            .map(|pr| {
                let pp = pr.properties.clone().unwrap_or_default();
                lb::Probe {
                    name: pr.name.clone(),
                    port: pp.port.unwrap_or(0),
                    path: pp.request_path.unwrap_or_default(),
                    interval_secs: pp.interval_in_seconds.unwrap_or(0),
                    threshold: pp.probe_threshold.unwrap_or(0),
                }
            })
            .collect(),
    }
}

fn find<'a, T>(
    list: Option<&'a Vec<T>>,
    name: &str,
    name_of: impl Fn(&T) -> &str,
) -> Option<&'a T> {
    list?.iter().find(|x| eq(name_of(x), name))
}

/// Writes core's LB children into the LB read from Azure (or a new one):
/// existing children keep their unmodelled fields, children core no longer
/// lists are removed, and every reference becomes an ID of this LB.
pub(crate) fn merge_lb(raw: &LoadBalancer, want: &lb::LoadBalancer, ids: &LbIds) -> LoadBalancer {
    let mut out = raw.clone();
    let have = raw.properties.clone().unwrap_or_default();
    let props = out
        .properties
        .get_or_insert_with(LoadBalancerProperties::default);
    props.frontend_ip_configurations = Some(
        want.frontends
            .iter()
            .map(|f| {
                find(have.frontend_ip_configurations.as_ref(), &f.name, |x| {
                    &x.name
                })
                .cloned()
                .unwrap_or_else(|| Frontend {
                    name: f.name.clone(),
                    properties: Some(FrontendProperties {
                        private_ip_allocation_method: Some("Dynamic".into()),
                        private_ip_address_version: Some("IPv4".into()),
                        subnet: f.subnet_id.clone().map(SubResource::to),
                        ..FrontendProperties::default()
                    }),
                    ..Frontend::default()
                })
            })
            .collect(),
    );
    props.backend_address_pools = Some(
        want.backends
            .iter()
            .map(|b| {
                find(have.backend_address_pools.as_ref(), b, |x| &x.name)
                    .cloned()
                    .unwrap_or_else(|| BackendPool {
                        name: b.clone(),
                        ..BackendPool::default()
                    })
            })
            .collect(),
    );
    props.load_balancing_rules = Some(
        want.rules
            .iter()
            .map(|r| {
                let mut rule = find(have.load_balancing_rules.as_ref(), &r.name, |x| &x.name)
                    .cloned()
                    .unwrap_or_else(|| LoadBalancingRule {
                        name: r.name.clone(),
                        ..LoadBalancingRule::default()
                    });
                let rp = rule.properties.get_or_insert_with(RuleProperties::default);
                rp.frontend_ip_configuration = Some(SubResource::to(
                    ids.child("frontendIPConfigurations", &r.frontend),
                ));
                rp.backend_address_pool = Some(SubResource::to(
                    ids.child("backendAddressPools", &r.backend),
                ));
                rp.probe = Some(SubResource::to(ids.child("probes", &r.probe)));
                match r.protocol {
                    Protocol::Udp => rp.protocol = Some("Udp".into()),
                    Protocol::Tcp => rp.protocol = Some("Tcp".into()),
                    Protocol::Other => {
                        rp.protocol.get_or_insert_with(|| "All".into());
                    }
                }
                rp.frontend_port = Some(r.frontend_port);
                rp.backend_port = Some(r.backend_port);
                rp.enable_floating_ip = Some(r.floating_ip);
                rule
            })
            .collect(),
    );
    props.probes = Some(
        want.probes
            .iter()
            .map(|p| {
                let mut probe = find(have.probes.as_ref(), &p.name, |x| &x.name)
                    .cloned()
                    .unwrap_or_else(|| Probe {
                        name: p.name.clone(),
                        ..Probe::default()
                    });
                let pp = probe
                    .properties
                    .get_or_insert_with(ProbeProperties::default);
                pp.protocol = Some("Http".into());
                pp.port = Some(p.port);
                pp.request_path = Some(p.path.clone());
                pp.interval_in_seconds = Some(p.interval_secs);
                pp.probe_threshold = Some(p.threshold);
                probe
            })
            .collect(),
    );
    out
}
