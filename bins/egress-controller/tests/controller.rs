//! The controller binary, as a process, against a real kube-apiserver (the
//! testkit's) and the fake ARM over HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines, // each test is one scenario, told in order
    clippy::float_cmp // counters read back from the metrics text
)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use egress_core::names::{LB_FINALIZER, SGC_FINALIZER, VM_FINALIZER};
use egress_k8s::crd::{GatewayLBConfiguration, GatewayVMConfiguration, StaticGatewayConfiguration};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use support::{
    Env, NS, SYSTEM_NS, condition, is_ready, pool_spec, ready_condition, wait_all_gone, wait_for,
    wait_ready,
};

const LONG: Duration = Duration::from_secs(90);

fn lb_id(env: &Env) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/loadBalancers/kubeegressgateway-ilb",
        env.local.arm.subscription(),
        egress_azure::local::RESOURCE_GROUP
    )
}

/// Names of the load balancer's rules in the fake ARM.
fn lb_rules(env: &Env) -> Vec<String> {
    env.local
        .arm
        .resource(&lb_id(env))
        .and_then(|lb| {
            lb["properties"]["loadBalancingRules"].as_array().map(|r| {
                r.iter()
                    .filter_map(|r| r["name"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

async fn events_for(env: &Env, uid: &str, reason: &str) -> usize {
    let api: Api<Event> = Api::namespaced(env.client.clone(), NS);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid)
                && e.reason.as_deref() == Some(reason)
        })
        .count()
}

fn secret_keys(s: &Secret) -> (String, String) {
    let data = s.data.as_ref().unwrap();
    (
        String::from_utf8(data["PrivateKey"].0.clone()).unwrap(),
        String::from_utf8(data["PublicKey"].0.clone()).unwrap(),
    )
}

/// Everything upstream writes, with upstream's names, labels, finalizers and owners.
async fn check_chain(env: &Env, sgc: &StaticGatewayConfiguration, nodes: usize) -> String {
    let name = sgc.name_any();
    let uid = sgc.uid().unwrap();
    assert!(sgc.finalizers().contains(&SGC_FINALIZER.to_string()));
    let lb = Api::<GatewayLBConfiguration>::namespaced(env.client.clone(), NS)
        .get(&name)
        .await
        .unwrap();
    let owner = &lb.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("StaticGatewayConfiguration", uid.as_str(), Some(true))
    );
    assert!(lb.finalizers().contains(&LB_FINALIZER.to_string()));
    let lb_status = lb.status.clone().unwrap();
    let vm = Api::<GatewayVMConfiguration>::namespaced(env.client.clone(), NS)
        .get(&name)
        .await
        .unwrap();
    let owner = &vm.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), Some(owner.uid.clone())),
        ("GatewayLBConfiguration", lb.uid())
    );
    assert!(vm.finalizers().contains(&VM_FINALIZER.to_string()));
    let vm_status = vm.status.clone().unwrap();
    assert_eq!(vm_status.gateway_vm_profiles.unwrap().len(), nodes);
    let status = sgc.status.clone().unwrap();
    let profile = status.gateway_server_profile.unwrap();
    assert_eq!(profile.ip, lb_status.frontend_ip);
    assert_eq!(profile.port, lb_status.server_port);
    assert_eq!(status.egress_ip_prefix, lb_status.egress_ip_prefix);
    assert_eq!(status.egress_ip_prefix, vm_status.egress_ip_prefix);
    assert!(
        lb_rules(env).contains(&lb.uid().unwrap()),
        "the rule is named after the LB configuration's UID"
    );
    let secret_ref = profile.private_key_secret_ref.unwrap();
    assert_eq!(
        secret_ref.name.as_deref(),
        Some(format!("sgw-{uid}").as_str())
    );
    assert_eq!(secret_ref.namespace.as_deref(), Some(SYSTEM_NS));
    assert_eq!(secret_ref.kind.as_deref(), Some("Secret"));
    let secret = Api::<Secret>::namespaced(env.client.clone(), SYSTEM_NS)
        .get(&format!("sgw-{uid}"))
        .await
        .unwrap();
    let labels = secret.labels();
    assert_eq!(
        labels["egressgateway.kubernetes.azure.com/owning-gateway-config-namespace"],
        NS
    );
    assert_eq!(
        labels["egressgateway.kubernetes.azure.com/owning-gateway-config-name"],
        name
    );
    assert!(
        secret.owner_references().is_empty(),
        "upstream's Secret has no owner"
    );
    let (private, public) = secret_keys(&secret);
    assert_eq!(Some(public), profile.public_key);
    private
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_delete_through_the_whole_chain() {
    let env = Env::start(Duration::from_millis(50), 2).await;
    let mut ctl = env.controller("ctl-a", &[]);
    env.apply("private", pool_spec(false)).await;
    env.apply("public", pool_spec(true)).await;
    wait_ready(&env, &["private", "public"], LONG).await;

    let mut private_keys = Vec::new();
    for name in ["private", "public"] {
        let sgc = env.sgcs().get(name).await.unwrap();
        private_keys.push(check_chain(&env, &sgc, 2).await);
        let (status, reason, _) = ready_condition(&sgc).unwrap();
        assert_eq!((status.as_str(), reason.as_str()), ("True", "Provisioned"));
        assert_eq!(
            events_for(&env, &sgc.uid().unwrap(), "Provisioned").await,
            1
        );
    }
    let private = env.sgcs().get("private").await.unwrap();
    let egress = private.status.unwrap().egress_ip_prefix.unwrap();
    assert_eq!(
        egress.split(',').count(),
        2,
        "private mode: one IP per node: {egress}"
    );
    let public = env.sgcs().get("public").await.unwrap();
    let prefix = public.status.clone().unwrap().egress_ip_prefix.unwrap();
    assert!(
        prefix.ends_with("/30"),
        "public mode: the managed prefix: {prefix}"
    );

    // Update: the private configuration goes public.
    env.sgcs()
        .patch(
            "private",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"provisionPublicIps": true}})),
        )
        .await
        .unwrap();
    let api = env.sgcs();
    wait_for("the edited configuration to get a prefix", LONG, || {
        let api = api.clone();
        async move {
            let s = api.get("private").await.ok()?;
            let e = s.status.as_ref()?.egress_ip_prefix.clone()?;
            (e.contains('/') && is_ready(&s)).then_some(())
        }
    })
    .await;

    // Deleting the key Secret regenerates the key and updates the status.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), SYSTEM_NS);
    let old_public = public
        .status
        .as_ref()
        .and_then(|s| s.gateway_server_profile.as_ref())
        .and_then(|p| p.public_key.clone())
        .unwrap();
    let secret_name = format!("sgw-{}", public.uid().unwrap());
    secrets
        .delete(&secret_name, &DeleteParams::default())
        .await
        .unwrap();
    let new_public = wait_for("a new key in the status", LONG, || {
        let api = api.clone();
        let old = old_public.clone();
        async move {
            let s = api.get("public").await.ok()?;
            let k = s.status?.gateway_server_profile?.public_key?;
            (k != old).then_some(k)
        }
    })
    .await;
    let regenerated = secrets.get(&secret_name).await.unwrap();
    let (private, public_key) = secret_keys(&regenerated);
    assert_eq!(public_key, new_public);
    private_keys.push(private);
    let sgc = env.sgcs().get("public").await.unwrap();
    assert_eq!(
        events_for(&env, &sgc.uid().unwrap(), "Provisioned").await,
        1,
        "events on transitions only: a new key is no new verdict"
    );

    // No status up the chain holds a private key.
    let objects = format!(
        "{}{}{}",
        serde_json::to_string(&env.sgcs().list(&ListParams::default()).await.unwrap().items)
            .unwrap(),
        serde_json::to_string(
            &Api::<GatewayLBConfiguration>::namespaced(env.client.clone(), NS)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
        )
        .unwrap(),
        serde_json::to_string(
            &Api::<GatewayVMConfiguration>::namespaced(env.client.clone(), NS)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
        )
        .unwrap(),
    );
    for key in &private_keys {
        assert!(
            !objects.contains(key.as_str()),
            "a private key is in an object"
        );
    }

    // Delete: nothing is left in the API server or the fake ARM.
    for name in ["private", "public"] {
        env.sgcs()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    wait_all_gone(&env, LONG).await;
    let lbs = Api::<GatewayLBConfiguration>::namespaced(env.client.clone(), NS);
    let vms = Api::<GatewayVMConfiguration>::namespaced(env.client.clone(), NS);
    assert!(
        lbs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        vms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let left = secrets
        .list(
            &ListParams::default()
                .labels("egressgateway.kubernetes.azure.com/owning-gateway-config-name"),
        )
        .await
        .unwrap();
    assert!(
        left.items.is_empty(),
        "key Secrets left: {:?}",
        left.items.len()
    );
    env.local
        .arm
        .wait_for_operations(Duration::from_secs(10))
        .await;
    let leftovers = env.local.arm.leftovers();
    assert!(leftovers.is_empty(), "left in the fake ARM: {leftovers:#?}");

    // Graceful stop: exits 0 and releases the Lease.
    let status = ctl
        .terminate(Duration::from_secs(30))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    let lease = Api::<Lease>::namespaced(env.client.clone(), SYSTEM_NS)
        .get("0a299682.microsoft.com")
        .await
        .unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity, None, "released");

    // The private keys never reached a log, an event or a status.
    let logs = ctl.logs();
    assert!(
        logs.contains("pass finished"),
        "the log is the controller's"
    );
    let events = serde_json::to_string(
        &Api::<Event>::namespaced(env.client.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items,
    )
    .unwrap();
    for key in &private_keys {
        assert!(!logs.contains(key.as_str()), "a private key is in the log");
        assert!(
            !events.contains(key.as_str()),
            "a private key is in an event"
        );
        assert!(!metrics_text(&ctl).contains(key.as_str()));
    }
    for line in logs.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
}

fn metrics_text(ctl: &support::Controller) -> String {
    ctl.get("/metrics").map(|(_, b)| b).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_cel_cannot_catch_show_ready_false_naming_the_field() {
    let env = Env::start(Duration::from_millis(20), 4).await;
    let ctl = env.controller("ctl-a", &[]);
    // A /31 holds 2 addresses; the pool has 4 nodes. CEL cannot know that.
    env.apply(
        "too-small",
        json!({
            "gatewayVmssProfile": {
                "vmssResourceGroup": egress_azure::local::RESOURCE_GROUP,
                "vmssName": "aks-gwpool-1234-vmss",
                "publicIpPrefixSize": 31,
            },
        }),
    )
    .await;
    // A bring-your-own prefix in another subscription.
    env.apply(
        "other-sub",
        json!({
            "gatewayNodepoolName": support::POOL,
            "publicIpPrefixId": "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/byo/providers/Microsoft.Network/publicIPPrefixes/p",
        }),
    )
    .await;
    // One that serves, then gets an edit the controller rejects.
    env.apply("serving", pool_spec(false)).await;
    wait_ready(&env, &["serving"], LONG).await;

    let api = env.sgcs();
    for (name, field) in [
        ("too-small", "spec.gatewayVmssProfile.publicIpPrefixSize"),
        ("other-sub", "spec.publicIpPrefixId"),
    ] {
        let sgc = wait_for(&format!("{name} Ready=False"), LONG, || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.ok()?;
                let (status, reason, _) = ready_condition(&s)?;
                (status == "False" && reason == "InvalidSpec").then_some(s)
            }
        })
        .await;
        let (_, _, message) = ready_condition(&sgc).unwrap();
        assert!(message.contains(field), "{name}: {message}");
        assert_eq!(
            events_for(&env, &sgc.uid().unwrap(), "InvalidSpec").await,
            1,
            "{name}: one Warning event"
        );
    }
    let rules_before = lb_rules(&env);
    env.sgcs()
        .patch(
            "serving",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "gatewayNodepoolName": null,
                "gatewayVmssProfile": {
                    "vmssResourceGroup": egress_azure::local::RESOURCE_GROUP,
                    "vmssName": "aks-gwpool-1234-vmss",
                    "publicIpPrefixSize": 31,
                },
                "provisionPublicIps": true,
            }})),
        )
        .await
        .unwrap();
    let sgc = wait_for("serving Degraded", LONG, || {
        let api = api.clone();
        async move {
            let s = api.get("serving").await.ok()?;
            let (status, _, _) = condition(&s, "Degraded")?;
            (status == "True").then_some(s)
        }
    })
    .await;
    let (_, reason, message) = condition(&sgc, "Degraded").unwrap();
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains("spec.gatewayVmssProfile.publicIpPrefixSize"),
        "{message}"
    );
    assert_eq!(
        ready_condition(&sgc).unwrap().0,
        "True",
        "traffic still flows"
    );
    assert_eq!(lb_rules(&env), rules_before, "its rule is untouched");
    assert!(sgc.status.unwrap().egress_ip_prefix.is_some());
    drop(ctl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_leader_and_a_takeover_loses_and_doubles_nothing() {
    let env = Env::start(Duration::from_millis(100), 2).await;
    let mut a = env.controller("replica-a", &[]);
    let mut b = env.controller("replica-b", &[]);
    let names = ["c0", "c1", "c2", "c3"];
    env.apply(names[0], pool_spec(true)).await;
    env.apply(names[1], pool_spec(false)).await;
    wait_ready(&env, &names[..2], LONG).await;
    let leaders: Vec<bool> = [&a, &b].iter().map(|c| c.is_leader()).collect();
    assert_eq!(
        leaders.iter().filter(|l| **l).count(),
        1,
        "exactly one leader: {leaders:?}"
    );
    let (leader, follower) = if leaders[0] {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(
        follower.metric("egress_controller_passes_total"),
        Some(0.0),
        "the follower never passes"
    );

    // Kill the leader in the middle of new work; the other takes over.
    env.apply(names[2], pool_spec(true)).await;
    env.apply(names[3], pool_spec(true)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    leader.kill9();
    let started = std::time::Instant::now();
    wait_for("the follower to lead", Duration::from_secs(15), || {
        let led = follower.is_leader();
        async move { led.then_some(()) }
    })
    .await;
    let takeover = started.elapsed();
    assert!(
        takeover < Duration::from_secs(8),
        "takeover took {takeover:?} (lease 4 s)"
    );
    wait_ready(&env, &names, LONG).await;

    // Nothing lost or doubled: one Secret, one LB rule, one managed prefix per
    // configuration; one Provisioned event each.
    let mut rules = lb_rules(&env);
    rules.sort();
    let mut lb_uids = Vec::new();
    for n in names {
        let lb = Api::<GatewayLBConfiguration>::namespaced(env.client.clone(), NS)
            .get(n)
            .await
            .unwrap();
        lb_uids.push(lb.uid().unwrap());
        let sgc = env.sgcs().get(n).await.unwrap();
        assert_eq!(
            events_for(&env, &sgc.uid().unwrap(), "Provisioned").await,
            1,
            "{n}"
        );
    }
    lb_uids.sort();
    assert_eq!(rules, lb_uids);
    let secrets = Api::<Secret>::namespaced(env.client.clone(), SYSTEM_NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    let secret_names: BTreeSet<String> = secrets
        .items
        .iter()
        .map(ResourceExt::name_any)
        .filter(|n| n.starts_with("sgw-"))
        .collect();
    assert_eq!(secret_names.len(), names.len());
    let prefixes = env.local.arm.leftovers().public_ip_prefixes;
    assert_eq!(
        prefixes.len(),
        3,
        "one managed prefix per public configuration: {prefixes:?}"
    );

    // A leader that loses the Lease stops writing at once.
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), SYSTEM_NS);
    let passes = follower.metric("egress_controller_passes_total").unwrap();
    leases
        .patch(
            "0a299682.microsoft.com",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "holderIdentity": "intruder",
                "leaseDurationSeconds": 60,
                "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    k8s_openapi::jiff::Timestamp::now()),
            }})),
        )
        .await
        .unwrap();
    wait_for("the leader to step down", Duration::from_secs(3), || {
        let led = follower.is_leader();
        async move { (!led).then_some(()) }
    })
    .await;
    env.sgcs()
        .delete(names[0], &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        follower.metric("egress_controller_passes_total").unwrap(),
        passes,
        "no pass without the Lease"
    );
    assert!(
        env.sgcs().get_opt(names[0]).await.unwrap().is_some(),
        "nobody finished the deletion"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_azure_writes_then_restart_converges_and_leaks_nothing() {
    let env = Env::start(Duration::from_millis(700), 2).await;
    let names = ["k0", "k1", "k2"];
    for (i, n) in names.iter().enumerate() {
        env.apply(n, pool_spec(i != 1)).await;
    }
    let mut first = env.controller("first", &["--leader-elect=false"]);
    // Wait for the first Azure write to be under way, then kill.
    wait_for("an ARM write", LONG, || {
        let writes = env.local.arm.counts().writes;
        async move { (writes >= 1).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill9();
    let mut second = env.controller("second", &["--leader-elect=false"]);
    wait_ready(&env, &names, LONG).await;
    // Kill again in the middle of the deletions.
    for n in names {
        env.sgcs()
            .delete(n, &DeleteParams::default())
            .await
            .unwrap();
    }
    let writes = env.local.arm.counts().writes;
    wait_for("an ARM write of the deletions", LONG, || {
        let now = env.local.arm.counts().writes;
        async move { (now > writes).then_some(()) }
    })
    .await;
    second.kill9();
    let _third = env.controller("third", &["--leader-elect=false"]);
    wait_all_gone(&env, LONG).await;
    env.local
        .arm
        .wait_for_operations(Duration::from_secs(10))
        .await;
    let leftovers = env.local.arm.leftovers();
    assert!(leftovers.is_empty(), "left in the fake ARM: {leftovers:#?}");
    let secrets = Api::<Secret>::namespaced(env.client.clone(), SYSTEM_NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        secrets
            .items
            .iter()
            .all(|s| !s.name_any().starts_with("sgw-"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_mid_run_reconnects_and_converges() {
    let mut env = Env::start(Duration::from_millis(50), 2).await;
    let ctl = env.controller("ctl-a", &[]);
    env.apply("before", pool_spec(true)).await;
    wait_ready(&env, &["before"], LONG).await;
    env.api.restart(Duration::from_secs(2)).await.unwrap();
    env.client = env.api.client().await.unwrap();
    env.apply("after", pool_spec(false)).await;
    wait_ready(&env, &["before", "after"], LONG).await;
    for n in ["before", "after"] {
        env.sgcs()
            .delete(n, &DeleteParams::default())
            .await
            .unwrap();
    }
    wait_all_gone(&env, LONG).await;
    env.local
        .arm
        .wait_for_operations(Duration::from_secs(10))
        .await;
    assert!(env.local.arm.leftovers().is_empty());
    drop(ctl);
}
