//! Whether a PodEndpoint matches a real pod, checked by a gateway before it
//! accepts the endpoint's key: the pod exists in the endpoint's namespace
//! under its name, runs on the node the endpoint records (the node the
//! admission policy let write it), opted into the endpoint's configuration
//! (its annotation, or its namespace's default), and the endpoint's address
//! is the pod's (or, before the kubelet has reported it, inside the node's
//! pod CIDRs).

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;

use crate::agent::{NODE_LABEL, opted_in};
use crate::crd::PodEndpoint;

/// Checks `pe` against the pod of the same namespace and name, that pod's
/// node, and its namespace's default configuration.
pub fn verify_endpoint(
    pe: &PodEndpoint,
    pod: Option<&Pod>,
    node: Option<&Node>,
    namespace_default: Option<&str>,
) -> Result<(), String> {
    let name = format!("{}/{}", pe.namespace().unwrap_or_default(), pe.name_any());
    let reject = |why: String| Err(format!("PodEndpoint {name}: {why}"));
    let Some(pod) = pod else {
        return reject("no such pod".into());
    };
    let Some(recorded) = pe.labels().get(NODE_LABEL) else {
        return reject(format!("no {NODE_LABEL} label"));
    };
    let on = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if on != Some(recorded.as_str()) {
        return reject(format!(
            "written for node {recorded}, but the pod runs on {}",
            on.unwrap_or("no node")
        ));
    }
    let wanted = pe
        .spec
        .static_gateway_configuration
        .as_deref()
        .unwrap_or_default();
    match opted_in(pod.annotations(), namespace_default) {
        Some(c) if c == wanted => {}
        Some(c) => return reject(format!("the pod uses {c}, not {wanted}")),
        None => return reject("the pod did not opt in to a gateway".into()),
    }
    let text = pe.spec.pod_ip_address.as_deref().unwrap_or_default();
    let ip: IpAddr = match text.split_once('/').map_or(text, |(ip, _)| ip).parse() {
        Ok(ip) => ip,
        Err(_) => return reject(format!("{text:?} is not an address")),
    };
    let pod_ips: Vec<IpAddr> = pod
        .status
        .iter()
        .flat_map(|s| {
            s.pod_ips
                .iter()
                .flatten()
                .map(|p| p.ip.clone())
                .chain(s.pod_ip.clone())
        })
        .filter_map(|p| p.parse().ok())
        .collect();
    if !pod_ips.is_empty() {
        return if pod_ips.contains(&ip) {
            Ok(())
        } else {
            reject(format!("{ip} is not the pod's address"))
        };
    }
    // The kubelet reports the address after the CNI ADD that wrote the
    // endpoint: until then the node's pod range bounds it.
    let cidrs: Vec<IpNet> = node
        .and_then(|n| n.spec.as_ref())
        .map(|s| {
            s.pod_cidrs
                .iter()
                .flatten()
                .cloned()
                .chain(s.pod_cidr.clone())
                .filter_map(|c| c.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if cidrs.iter().any(|c| c.contains(&ip)) {
        Ok(())
    } else {
        reject(format!("{ip} is outside node {recorded}'s pod range"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::crd::PodEndpointSpec;

    fn pe(node: Option<&str>, ip: &str, sgc: &str) -> PodEndpoint {
        let mut pe = PodEndpoint::new(
            "web",
            PodEndpointSpec {
                static_gateway_configuration: Some(sgc.into()),
                pod_ip_address: Some(ip.into()),
                pod_public_key: Some("k".into()),
            },
        );
        pe.metadata.namespace = Some("apps".into());
        pe.metadata.labels =
            node.map(|n| BTreeMap::from([(NODE_LABEL.to_string(), n.to_string())]));
        pe
    }

    fn pod(node: &str, ip: Option<&str>, annotation: Option<&str>) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"nodeName": node, "containers": []},
            "status": ip.map(|ip| json!({"podIP": ip, "podIPs": [{"ip": ip}]})).unwrap_or(json!({}))
        }))
        .unwrap();
        p.metadata.annotations = annotation
            .map(|a| BTreeMap::from([(crate::agent::ANNOTATION.to_string(), a.to_string())]));
        p
    }

    fn node(cidr: &str) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}),
        )
        .unwrap()
    }

    #[test]
    fn a_matching_endpoint_is_accepted() {
        let n = node("10.244.1.0/24");
        let ok =
            |e: &PodEndpoint, p: &Pod, d: Option<&str>| verify_endpoint(e, Some(p), Some(&n), d);
        ok(
            &pe(Some("n1"), "10.244.1.5/32", "gw"),
            &pod("n1", Some("10.244.1.5"), Some("gw")),
            None,
        )
        .unwrap();
        // Before the kubelet reports the address: the node's range.
        ok(
            &pe(Some("n1"), "10.244.1.9/32", "gw"),
            &pod("n1", None, Some("gw")),
            None,
        )
        .unwrap();
        // A namespace default.
        ok(
            &pe(Some("n1"), "10.244.1.5", "gw"),
            &pod("n1", Some("10.244.1.5"), None),
            Some("gw"),
        )
        .unwrap();
    }

    #[test]
    fn forged_and_spoofed_endpoints_are_rejected() {
        let n = node("10.244.1.0/24");
        let good_pod = pod("n1", Some("10.244.1.5"), Some("gw"));
        let cases: Vec<(PodEndpoint, Option<Pod>, &str)> = vec![
            (pe(Some("n1"), "10.244.1.5/32", "gw"), None, "no such pod"),
            (
                pe(None, "10.244.1.5/32", "gw"),
                Some(good_pod.clone()),
                "label",
            ),
            (
                pe(Some("n2"), "10.244.1.5/32", "gw"),
                Some(good_pod.clone()),
                "runs on n1",
            ),
            (
                pe(Some("n1"), "10.244.1.6/32", "gw"),
                Some(good_pod.clone()),
                "not the pod's address",
            ),
            (
                pe(Some("n1"), "10.244.1.5/32", "other"),
                Some(good_pod.clone()),
                "not other",
            ),
            (
                pe(Some("n1"), "10.244.1.5/32", "gw"),
                Some(pod("n1", Some("10.244.1.5"), None)),
                "did not opt in",
            ),
            (
                pe(Some("n1"), "10.244.9.5/32", "gw"),
                Some(pod("n1", None, Some("gw"))),
                "outside",
            ),
            (
                pe(Some("n1"), "garbage", "gw"),
                Some(good_pod),
                "not an address",
            ),
        ];
        for (e, p, why) in cases {
            let err = verify_endpoint(&e, p.as_ref(), Some(&n), None).unwrap_err();
            assert!(err.contains(why), "{err:?} should say {why:?}");
        }
    }
}
