use std::collections::HashMap;

use proptest::prelude::*;

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
    (
        "CNI_ARGS",
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
    ),
];

const CONF: &str = r#"{"cniVersion":"1.1.0","name":"k8s","type":"egress-cni","failureMode":"closed",
  "prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/cni-1"}],"ips":[]}}"#;

#[test]
fn a_chained_add_parses() {
    let inv = parse(env(ADD_ENV), CONF.as_bytes()).unwrap();
    assert_eq!(inv.command, Command::Add);
    assert_eq!(inv.pod_namespace.as_deref(), Some("default"));
    assert_eq!(inv.pod_name.as_deref(), Some("web-0"));
    let conf = inv.conf.unwrap();
    assert_eq!(conf.failure_mode, FailureMode::Closed);
    assert_eq!(conf.socket, crate::DEFAULT_SOCKET);
    assert!(conf.prev_result.is_some());
}

#[test]
fn defects_are_named() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        (&[], CONF, "CNI_COMMAND"),
        (&[("CNI_COMMAND", "FOO")], CONF, "unknown command"),
        (&ADD_ENV[..1], CONF, "CNI_CONTAINERID"),
        (ADD_ENV, "{", "not valid JSON"),
        (
            ADD_ENV,
            r#"{"cniVersion":"0.2.0","name":"k","type":"t"}"#,
            "0.2.0",
        ),
        (
            ADD_ENV,
            r#"{"cniVersion":"1.0.0","name":"k","type":"t"}"#,
            "prevResult",
        ),
        (
            ADD_ENV,
            r#"{"cniVersion":"1.0.0","name":"k","type":"t","prevResult":{},"failureMode":"maybe"}"#,
            "failureMode",
        ),
        (
            ADD_ENV,
            r#"{"cniVersion":"1.0.0","type":"t","prevResult":{}}"#,
            "\"name\" is missing",
        ),
        (ADD_ENV, "[1,2]", "JSON object"),
    ];
    for (e, stdin, expect) in cases {
        let err = parse(env(e), stdin.as_bytes()).unwrap_err();
        let text = format!("{err}");
        assert!(text.contains(expect), "{text:?} should mention {expect:?}");
    }
    let bad_args = [("CNI_ARGS", "K8S_POD_NAME=Bad_Name")];
    let mut e = ADD_ENV[..4].to_vec();
    e.extend(bad_args);
    let err = parse(env(&e), CONF.as_bytes()).unwrap_err();
    assert_eq!(err.code(), 4);
}

#[test]
fn del_needs_no_netns_and_version_needs_no_config() {
    let e = [
        ("CNI_COMMAND", "DEL"),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_IFNAME", "eth0"),
    ];
    let inv = parse(env(&e), br#"{"cniVersion":"1.0.0","name":"k","type":"t"}"#).unwrap();
    assert_eq!(inv.netns, None);
    let v = parse(env(&[("CNI_COMMAND", "VERSION")]), b"garbage").unwrap();
    assert!(v.conf.is_none());
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::String),
        prop::sample::select(vec![
            "1.0.0",
            "1.1.0",
            "0.4.0",
            "open",
            "closed",
            "/x",
            "egress-cni"
        ])
        .prop_map(|s| serde_json::Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "cniVersion",
                    "name",
                    "type",
                    "failureMode",
                    "agentSocket",
                    "prevResult",
                    "interfaces",
                    "cni.dev/valid-attachments",
                    "containerID",
                    "ifname",
                    "other",
                ]),
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

fn env_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        ".{0,40}".prop_map(Some),
        prop::sample::select(vec![
            "ADD",
            "DEL",
            "CHECK",
            "STATUS",
            "VERSION",
            "GC",
            "abc",
            "/var/run/netns/x",
            "eth0",
            "K8S_POD_NAME=a;K8S_POD_NAMESPACE=b",
            "K8S_POD_NAME",
            ";;=",
        ])
        .prop_map(|s| Some(s.to_string())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("EGRESS_CNI_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]
    /// Whatever the input, parsing returns (no panic), and an error carries a
    /// CNI code and a message.
    #[test]
    fn parsing_never_panics(
        vars in prop::collection::vec(env_value(), 6),
        stdin in prop_oneof![
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            prop::collection::vec(any::<u8>(), 0..200),
        ],
    ) {
        let names = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"];
        let lookup = |k: &str| names.iter().position(|n| *n == k).and_then(|i| vars[i].clone());
        match parse(lookup, &stdin) {
            Ok(inv) => {
                if inv.command != Command::Version {
                    prop_assert!(inv.conf.is_some());
                }
            }
            Err(e) => {
                let obj = e.to_object(&answer_version(&stdin));
                prop_assert!(!obj.msg.is_empty());
                prop_assert!(obj.code > 0);
            }
        }
        let _ = crate::wire::Answer::parse(&stdin);
    }
}
