//! The agent and plugin binaries against a real kube-apiserver, with pods in
//! network namespaces and a WireGuard gateway of the test's own in front of
//! an echo host (see `support`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout,
    clippy::too_many_lines,
    clippy::many_single_char_names
)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use egress_k8s::crd::{PodEndpoint, StaticGatewayConfiguration};
use egress_testkit::apiserver::ApiServer;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use support::*;

#[test]
fn pods_opt_in_follow_their_gateway_and_leave_nothing_behind() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut api = rt.block_on(ApiServer::start()).unwrap();
    let client = rt.block_on(api.client()).unwrap();
    rt.block_on(setup(&client));
    let mut gw = Gateway::start();
    rt.block_on(put_sgc(&client, "apps", "egress", &gw));
    rt.block_on(put_sgc(&client, "dflt", "egress", &gw));
    let d = dirs();
    let before = snapshot(&d.netd);
    let agent = start_agent(&api, &d);

    // The chained configuration sits beside the primary, whose bytes are untouched.
    wait_until("the chained configuration", Duration::from_secs(10), || {
        d.netd.join("00-egress-gateway.conflist").exists()
    });
    assert_eq!(
        std::fs::read(d.netd.join("10-bridge.conflist")).unwrap(),
        PRIMARY.as_bytes()
    );

    // The socket is root-only, and a non-root process cannot reach the agent.
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(d.socket.parent().unwrap()), 0o700);
    assert_eq!(mode(&d.socket), 0o600);
    let (code, out) = cni_as(
        Some(65534),
        "STATUS",
        "apps",
        "x",
        "/x",
        "c",
        &conf(&d, "closed"),
    );
    assert_eq!((code, out["code"].as_u64()), (1, Some(11)), "{out}");
    // Root in a mount namespace of its own (a container that sees the
    // host's /run) is refused too.
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(plugin_binary())
        .env_clear()
        .env("CNI_COMMAND", "STATUS")
        .stdin(
            std::fs::File::open({
                let f = d.netd.parent().unwrap().join("status.json");
                std::fs::write(&f, conf(&d, "closed")).unwrap();
                f
            })
            .unwrap(),
        )
        .output()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        (out.status.code(), answer["code"].as_u64()),
        (Some(1), Some(11)),
        "root outside the node's mount namespace reached the agent: {answer}"
    );
    let (code, out) = cni("STATUS", "", "", "", "", &conf(&d, "closed"));
    assert_eq!(code, 0, "the runtime's own call is answered: {out}");

    // An annotated pod gets wg0, the planned routes and its PodEndpoint,
    // and its traffic leaves through the gateway.
    let a = PodNs::new(5);
    rt.block_on(put_pod(&client, "apps", "a", &a.ip, Some("egress")));
    let started = Instant::now();
    let (code, out) = cni(
        "ADD",
        "apps",
        "a",
        &a.path(),
        "sandbox-a",
        &conf(&d, "open"),
    );
    let add_took = started.elapsed();
    assert_eq!(code, 0, "{out}");
    assert_eq!(interfaces(&out), ["eth0", "wg0"]);
    assert!(a.has_wg0());
    assert_eq!(a.route_dev("203.0.113.10"), "wg0");
    assert_eq!(a.route_dev("169.254.169.254"), "eth0", "node exception");
    assert_eq!(a.route_dev("10.244.77.1"), "eth0", "the pod's own gateway");
    let eps = rt.block_on(endpoints(&client));
    assert_eq!(eps.len(), 1);
    let ep = &eps[0];
    assert_eq!(ep.spec.pod_ip_address.as_deref(), Some("10.244.77.5/32"));
    assert_eq!(
        ep.spec.static_gateway_configuration.as_deref(),
        Some("egress")
    );
    assert_eq!(
        ep.labels()
            .get("egressgateway.kubernetes.azure.com/node")
            .map(String::as_str),
        Some(NODE)
    );
    let status = ep.status.clone().unwrap_or_default();
    assert_eq!(
        status.gateway_endpoint,
        Some(format!("127.0.0.1:{}", gw.port))
    );
    assert_eq!(status.egress_ip_prefix.as_deref(), Some("203.0.113.0/28"));
    assert_eq!(status.default_route.as_deref(), Some("staticEgressGateway"));
    gw.sync_peers(&eps);
    assert_eq!(
        a.fetch_eventually(Duration::from_secs(15)).unwrap(),
        "10.244.77.5"
    );
    eprintln!("ADD with plumbing took {add_took:?}");

    // An unannotated pod is untouched.
    let p = PodNs::new(6);
    rt.block_on(put_pod(&client, "plain", "p", &p.ip, None));
    let (code, out) = cni(
        "ADD",
        "plain",
        "p",
        &p.path(),
        "sandbox-p",
        &conf(&d, "open"),
    );
    assert_eq!((code, interfaces(&out)), (0, vec!["eth0".to_string()]));
    assert!(!p.has_wg0());
    assert_eq!(p.route_dev("203.0.113.10"), "eth0");

    // A refused PodEndpoint write never leaves the pod's routes pointing
    // into a tunnel the gateway does not know, and is retried until it
    // succeeds: then the pod goes on the tunnel.
    let deny_policy = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "refuse-endpoints"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["egressgateway.kubernetes.azure.com"], "apiVersions": ["*"],
                "operations": ["CREATE"], "resources": ["podendpoints"]
            }]},
            "validations": [{"expression": "false", "message": "refused by the test"}]
        }
    });
    let binding = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "refuse-endpoints"},
        "spec": {
            "policyName": "refuse-endpoints", "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}}
        }
    });
    let policies: Api<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy> =
        Api::all(client.clone());
    let bindings: Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
    > = Api::all(client.clone());
    rt.block_on(policies.create(
        &kube::api::PostParams::default(),
        &serde_json::from_value(deny_policy).unwrap(),
    ))
    .unwrap();
    rt.block_on(bindings.create(
        &kube::api::PostParams::default(),
        &serde_json::from_value(binding).unwrap(),
    ))
    .unwrap();
    // Admission sees a new policy through its own cache: wait until it
    // refuses a PodEndpoint.
    let probe_api: Api<PodEndpoint> = Api::namespaced(client.clone(), "apps");
    let probe: PodEndpoint = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "probe"}, "spec": {}
    }))
    .unwrap();
    wait_until("the refusal to apply", Duration::from_secs(20), || match rt
        .block_on(probe_api.create(&kube::api::PostParams::default(), &probe))
    {
        Ok(_) => {
            rt.block_on(probe_api.delete("probe", &DeleteParams::default()))
                .unwrap();
            false
        }
        Err(_) => true,
    });
    let q = PodNs::new(14);
    rt.block_on(put_pod(&client, "apps", "q", &q.ip, Some("egress")));
    let (code, out) = cni(
        "ADD",
        "apps",
        "q",
        &q.path(),
        "sandbox-q",
        &conf(&d, "open"),
    );
    assert_eq!(
        (code, interfaces(&out)),
        (0, vec!["eth0".to_string()]),
        "{out}"
    );
    for _ in 0..6 {
        assert_eq!(
            q.route_dev("203.0.113.10"),
            "eth0",
            "routes into the tunnel while the gateway cannot know the pod"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    rt.block_on(bindings.delete("refuse-endpoints", &DeleteParams::default()))
        .unwrap();
    wait_until(
        "the refused endpoint to be written and the pod to go on the tunnel",
        Duration::from_secs(20),
        || {
            q.route_dev("203.0.113.10") == "wg0"
                && rt
                    .block_on(Api::<PodEndpoint>::namespaced(client.clone(), "apps").get_opt("q"))
                    .unwrap()
                    .is_some()
        },
    );
    gw.sync_peers(&rt.block_on(endpoints(&client)));
    assert_eq!(
        q.fetch_eventually(Duration::from_secs(15)).unwrap(),
        "10.244.77.14"
    );
    let (code, _) = cni(
        "DEL",
        "apps",
        "q",
        &q.path(),
        "sandbox-q",
        &conf(&d, "open"),
    );
    assert_eq!(code, 0);

    // A pod in a namespace with a default gets the tunnel.
    let n = PodNs::new(7);
    rt.block_on(put_pod(&client, "dflt", "n", &n.ip, None));
    let (code, out) = cni(
        "ADD",
        "dflt",
        "n",
        &n.path(),
        "sandbox-n",
        &conf(&d, "open"),
    );
    assert_eq!(
        (code, interfaces(&out)),
        (0, vec!["eth0".to_string(), "wg0".to_string()]),
        "{out}"
    );
    assert!(n.has_wg0());

    // A new gateway port and key reach the running pod without a restart.
    gw.rekey(free_udp_port());
    let changed = Instant::now();
    rt.block_on(put_sgc(&client, "apps", "egress", &gw));
    gw.sync_peers(&rt.block_on(endpoints(&client)));
    let followed = a.fetch_eventually(Duration::from_secs(20));
    let follow_took = changed.elapsed();
    assert_eq!(followed.unwrap(), "10.244.77.5");
    println!("figure: running pod followed a port and key change in {follow_took:?}");
    assert!(metric(&agent, "egress_agent_replumbs_total").ends_with(|c: char| c != '0'));

    // excludeCidrs and defaultRoute changes reach the running pod.
    let sgcs: Api<StaticGatewayConfiguration> = Api::namespaced(client.clone(), "apps");
    let patch = |spec: serde_json::Value| {
        rt.block_on(sgcs.patch(
            "egress",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({ "spec": spec })),
        ))
        .unwrap();
    };
    patch(serde_json::json!({"excludeCidrs": ["203.0.113.0/24"]}));
    wait_until("the exclusion to apply", Duration::from_secs(10), || {
        a.route_dev("203.0.113.10") == "eth0" && a.route_dev("198.51.100.1") == "wg0"
    });
    patch(serde_json::json!({"excludeCidrs": null, "defaultRoute": "azureNetworking"}));
    wait_until("the primary default", Duration::from_secs(10), || {
        a.route_dev("203.0.113.10") == "eth0" && a.route_dev("198.51.100.1") == "eth0"
    });
    patch(serde_json::json!({"defaultRoute": "staticEgressGateway"}));
    wait_until("the tunnel default", Duration::from_secs(10), || {
        a.route_dev("203.0.113.10") == "wg0"
    });

    // Removing the annotation takes the pod off the tunnel; adding it back
    // puts it on again.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "apps");
    let annotate = |value: serde_json::Value| {
        rt.block_on(pods.patch(
            "a",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({
                "metadata": {"annotations": {ANNOTATION: value}}
            })),
        ))
        .unwrap();
    };
    annotate(serde_json::Value::Null);
    wait_until(
        "the pod to leave the tunnel",
        Duration::from_secs(10),
        || !a.has_wg0() && a.route_dev("203.0.113.10") == "eth0",
    );
    annotate(serde_json::json!("egress"));
    wait_until(
        "the pod to rejoin the tunnel",
        Duration::from_secs(15),
        || a.has_wg0() && a.route_dev("203.0.113.10") == "wg0",
    );

    // Deleting the configuration restores the pod's own default route.
    rt.block_on(
        Api::<StaticGatewayConfiguration>::namespaced(client.clone(), "apps")
            .delete("egress", &DeleteParams::default()),
    )
    .unwrap();
    wait_until(
        "the pod's own default route",
        Duration::from_secs(10),
        || !a.has_wg0() && a.route_dev("203.0.113.10") == "eth0",
    );
    wait_until("its PodEndpoint to go", Duration::from_secs(10), || {
        rt.block_on(Api::<PodEndpoint>::namespaced(client.clone(), "apps").get_opt("a"))
            .unwrap()
            .is_none()
    });

    // DEL leaves nothing in the pod, on the node or in the API.
    let (code, _) = cni(
        "DEL",
        "dflt",
        "n",
        &n.path(),
        "sandbox-n",
        &conf(&d, "open"),
    );
    assert_eq!(code, 0);
    assert!(!n.has_wg0());
    assert_eq!(n.route_dev("203.0.113.10"), "eth0");
    assert!(!n.ns.ip(&["rule", "show"]).unwrap().contains("0x2222"));
    assert!(
        n.ns.exec("nft", &["list", "table", "inet", "egress_pod"])
            .is_err()
    );
    assert!(
        rt.block_on(Api::<PodEndpoint>::namespaced(client.clone(), "dflt").get_opt("n"))
            .unwrap()
            .is_none()
    );
    assert!(
        !run("ip", &["-o", "link"]).contains(" eg-"),
        "no device left on the node"
    );

    // A pod whose DEL the agent does not see (it is away when the pod goes).
    let gone = PodNs::new(15);
    rt.block_on(put_pod(&client, "dflt", "gone", &gone.ip, None));
    let (code, out) = cni(
        "ADD",
        "dflt",
        "gone",
        &gone.path(),
        "sandbox-gone",
        &conf(&d, "open"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(gone.has_wg0());

    // The agent away: pods start (fail-open) and get the tunnel when it is back.
    drop(agent);
    rt.block_on(put_sgc(&client, "apps", "egress", &gw));
    rt.block_on(
        Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), "dflt")
            // No kubelet confirms here: the pod goes at once.
            .delete("gone", &DeleteParams::default().grace_period(0)),
    )
    .unwrap();
    let (code, _) = cni(
        "DEL",
        "dflt",
        "gone",
        &gone.path(),
        "sandbox-gone",
        &conf(&d, "open"),
    );
    assert_eq!(code, 0);
    drop(gone);
    // A finished opted-in pod whose address a running pod of another
    // namespace now holds: its tunnel must not go to that pod.
    let reuse = PodNs::new(12);
    rt.block_on(put_pod(&client, "apps", "done", &reuse.ip, Some("egress")));
    rt.block_on(
        Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), "apps").patch_status(
            "done",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"status": {"phase": "Succeeded"}})),
        ),
    )
    .unwrap();
    rt.block_on(put_pod(&client, "plain", "reuse", &reuse.ip, None));
    let (code, _) = cni(
        "ADD",
        "plain",
        "reuse",
        &reuse.path(),
        "sandbox-reuse",
        &conf(&d, "open"),
    );
    assert_eq!(code, 0);
    let late = PodNs::new(8);
    rt.block_on(put_pod(&client, "apps", "late", &late.ip, Some("egress")));
    let (code, out) = cni(
        "ADD",
        "apps",
        "late",
        &late.path(),
        "sandbox-late",
        &conf(&d, "open"),
    );
    assert_eq!(
        (code, interfaces(&out)),
        (0, vec!["eth0".to_string()]),
        "{out}"
    );
    let (code, out) = cni(
        "ADD",
        "apps",
        "late",
        &late.path(),
        "sandbox-late",
        &conf(&d, "closed"),
    );
    assert_eq!((code, out["code"].as_u64()), (1, Some(11)));
    let agent = start_agent(&api, &d);
    wait_until("the late pod's tunnel", Duration::from_secs(20), || {
        late.has_wg0()
    });
    wait_until(
        "the late pod's PodEndpoint",
        Duration::from_secs(10),
        || {
            rt.block_on(Api::<PodEndpoint>::namespaced(client.clone(), "apps").get_opt("late"))
                .unwrap()
                .is_some()
        },
    );
    gw.sync_peers(&rt.block_on(endpoints(&client)));
    assert_eq!(
        late.fetch_eventually(Duration::from_secs(15)).unwrap(),
        "10.244.77.8"
    );
    wait_until(
        "the PodEndpoint of the pod deleted while the agent was away to go",
        Duration::from_secs(15),
        || {
            rt.block_on(Api::<PodEndpoint>::namespaced(client.clone(), "dflt").get_opt("gone"))
                .unwrap()
                .is_none()
        },
    );
    // Several recovery passes later, the finished pod's tunnel is nowhere.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !reuse.has_wg0(),
        "a finished pod's tunnel went to the pod that reuses its address"
    );
    assert_eq!(reuse.route_dev("203.0.113.10"), "eth0");
    assert!(
        rt.block_on(Api::<PodEndpoint>::namespaced(client.clone(), "apps").get_opt("done"))
            .unwrap()
            .is_none()
    );
    // CHECK passes while the tunnel is in place, and fails once it is gone.
    let (code, out) = cni(
        "CHECK",
        "apps",
        "late",
        &late.path(),
        "sandbox-late",
        &conf(&d, "open"),
    );
    assert_eq!(code, 0, "{out}");
    late.ns.ip(&["link", "del", "wg0"]).unwrap();
    let (code, out) = cni(
        "CHECK",
        "apps",
        "late",
        &late.path(),
        "sandbox-late",
        &conf(&d, "open"),
    );
    assert_eq!((code, out["code"].as_u64()), (1, Some(5)), "{out}");
    let (code, _) = cni(
        "DEL",
        "apps",
        "late",
        &late.path(),
        "sandbox-late",
        &conf(&d, "open"),
    );
    assert_eq!(code, 0);
    assert!(!late.has_wg0());
    assert_eq!(late.route_dev("203.0.113.10"), "eth0");

    // With the API server down, an opted-in pod's sandbox still starts
    // (failure mode open covers every agent-side error, not only an
    // unreachable socket), and the agent plumbs the pod once the API is back.
    let down = PodNs::new(10);
    rt.block_on(put_pod(&client, "apps", "down", &down.ip, Some("egress")));
    std::thread::sleep(Duration::from_secs(1));
    let (code, out) = rt.block_on(async {
        let restart = api.restart(Duration::from_secs(8));
        let down_netns = down.path();
        let conf = conf(&d, "open");
        let add = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_secs(1));
            cni("ADD", "apps", "down", &down_netns, "sandbox-down", &conf)
        });
        let (restarted, added) = tokio::join!(restart, add);
        restarted.unwrap();
        added.unwrap()
    });
    assert_eq!(
        (code, interfaces(&out)),
        (0, vec!["eth0".to_string()]),
        "{out}"
    );
    wait_until(
        "the pod started while the API was down to get its tunnel",
        Duration::from_secs(30),
        || down.has_wg0(),
    );
    let (code, _) = cni(
        "DEL",
        "apps",
        "down",
        &down.path(),
        "sandbox-down",
        &conf(&d, "open"),
    );
    assert_eq!(code, 0);

    // GC removes what belongs to sandboxes the runtime no longer lists.
    let g = PodNs::new(9);
    rt.block_on(put_pod(&client, "apps", "g", &g.ip, Some("egress")));
    let (code, out) = cni(
        "ADD",
        "apps",
        "g",
        &g.path(),
        "sandbox-g",
        &conf(&d, "open"),
    );
    assert_eq!(
        (code, interfaces(&out)),
        (0, vec!["eth0".to_string(), "wg0".to_string()]),
        "{out}"
    );
    // A GC without a list of valid attachments collects nothing.
    let bare_gc = serde_json::json!({
        "cniVersion": "1.1.0", "name": "k8s", "type": "egress-cni", "agentSocket": d.socket,
    })
    .to_string();
    let (code, out) = cni("GC", "", "", "", "", &bare_gc);
    assert_eq!(code, 0, "{out}");
    assert!(g.has_wg0(), "a GC without a list must not remove a tunnel");
    assert!(
        rt.block_on(Api::<PodEndpoint>::namespaced(client.clone(), "apps").get_opt("g"))
            .unwrap()
            .is_some()
    );
    let gc = serde_json::json!({
        "cniVersion": "1.1.0", "name": "k8s", "type": "egress-cni", "agentSocket": d.socket,
        "cni.dev/valid-attachments": [{"containerID": "sandbox-other", "ifname": "eth0"}]
    })
    .to_string();
    let (code, out) = cni("GC", "", "", "", "", &gc);
    assert_eq!(code, 0, "{out}");
    assert!(!g.has_wg0());
    assert!(
        rt.block_on(Api::<PodEndpoint>::namespaced(client.clone(), "apps").get_opt("g"))
            .unwrap()
            .is_none()
    );

    // Uninstall restores the configuration directory exactly.
    drop(agent);
    let status = Command::new(env!("CARGO_BIN_EXE_egress-node-agent"))
        .args(agent_args(&d))
        .arg("uninstall")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(snapshot(&d.netd), before);
}
