//! The plugin's own keys: `timeoutSeconds`, `sandboxDir`, and bad values of
//! any own key listed as defects by `parse_tolerant`, while the runtime's
//! defects stay errors.

use std::collections::HashMap;

use serde_json::json;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

const ADD_ENV: &[(&str, &str)] = &[
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "abc123"),
    ("CNI_NETNS", "/var/run/netns/cni-1"),
    ("CNI_IFNAME", "eth0"),
];

/// A chained ADD's configuration with `extra` keys set.
fn conf(extra: &Value) -> String {
    let mut c = json!({"cniVersion": "1.0.0", "name": "k8s", "type": "egress-cni",
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [], "ips": []}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}

#[test]
fn timeout_and_sandbox_dir_have_defaults_and_can_be_set() {
    let c = parse(env(ADD_ENV), conf(&json!({})).as_bytes())
        .unwrap()
        .conf
        .unwrap();
    assert_eq!(c.timeout, Duration::from_secs(10));
    assert_eq!(c.sandbox_dir, PathBuf::from(crate::sandbox::DEFAULT_DIR));
    assert!(c.defects.is_empty());
    for secs in [1, 60] {
        let extra = json!({"timeoutSeconds": secs, "sandboxDir": "/run/x"});
        let c = parse(env(ADD_ENV), conf(&extra).as_bytes())
            .unwrap()
            .conf
            .unwrap();
        assert_eq!(c.timeout, Duration::from_secs(secs));
        assert_eq!(c.sandbox_dir, PathBuf::from("/run/x"));
    }
}

#[test]
fn bad_own_keys_are_errors_of_parse_and_defects_of_parse_tolerant() {
    let cases = [
        json!({"timeoutSeconds": 0}),
        json!({"timeoutSeconds": 61}),
        json!({"timeoutSeconds": "5"}),
        json!({"timeoutSeconds": 1.5}),
        json!({"timeoutSeconds": -1}),
        json!({"sandboxDir": 5}),
        json!({"sandboxDir": "relative/dir"}),
        json!({"agentSocket": 5}),
        json!({"agentSocket": "agent.sock"}),
        json!({"failureMode": "maybe"}),
        json!({"failureMode": true}),
    ];
    for extra in cases {
        let (key, value) = extra.as_object().unwrap().iter().next().unwrap();
        let stdin = conf(&extra);
        let err = parse(env(ADD_ENV), stdin.as_bytes()).unwrap_err();
        assert_eq!(err.code(), 7, "{extra}: {err}");
        assert!(err.to_string().contains(key.as_str()), "{extra}: {err}");

        let c = parse_tolerant(env(ADD_ENV), stdin.as_bytes())
            .unwrap()
            .conf
            .unwrap();
        assert_eq!(c.defects.len(), 1, "{extra}");
        assert_eq!(c.defects[0].key, key.as_str());
        // The bad value is named, so the warning can be acted on.
        let shown = value.as_str().map_or(value.to_string(), str::to_string);
        assert!(c.defects[0].problem.contains(&shown), "{:?}", c.defects[0]);
        // Each bad key holds its default; a bad failure mode is open.
        assert_eq!(c.failure_mode, FailureMode::Open);
        assert_eq!(c.socket, crate::DEFAULT_SOCKET);
        assert_eq!(c.timeout, crate::DEFAULT_TIMEOUT);
        assert_eq!(c.sandbox_dir, PathBuf::from(crate::sandbox::DEFAULT_DIR));
    }
}

#[test]
fn the_runtimes_defects_stay_errors_of_parse_tolerant() {
    let good = conf(&json!({"timeoutSeconds": 0}));
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], &good),
        (ADD_ENV, "{not json"),
        (ADD_ENV, r#"{"cniVersion":"9.9.9","name":"k","type":"t"}"#),
        (ADD_ENV, r#"{"cniVersion":"1.0.0","name":"k","type":"t"}"#),
    ];
    for (e, stdin) in cases {
        assert!(parse_tolerant(env(e), stdin.as_bytes()).is_err(), "{stdin}");
    }
}
