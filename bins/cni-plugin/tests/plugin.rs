//! The plugin binary end to end: forwarding to a listener on a unix socket,
//! and both failure modes when nothing listens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn plugin(env: &[(&str, &str)], stdin: &str) -> (i32, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_egress-cni"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), value)
}

const ADD: &[(&str, &str)] = &[
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "c0ffee"),
    ("CNI_NETNS", "/var/run/netns/cni-x"),
    ("CNI_IFNAME", "eth0"),
    ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"),
];

fn conf(socket: &str, mode: &str) -> String {
    json!({
        "cniVersion": "1.0.0", "name": "k8s", "type": "egress-cni",
        "agentSocket": socket, "failureMode": mode,
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}], "ips": []}
    })
    .to_string()
}

#[test]
fn forwards_to_the_agent_and_prints_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut body = Vec::new();
        s.read_to_end(&mut body).unwrap();
        let req: Value = serde_json::from_slice(&body).unwrap();
        s.write_all(
            br#"{"ok":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"},{"name":"wg0"}]}}"#,
        )
        .unwrap();
        req
    });
    let (code, out) = plugin(ADD, &conf(socket.to_str().unwrap(), "closed"));
    let req = server.join().unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["interfaces"][1]["name"], "wg0");
    assert_eq!(req["command"], "ADD");
    assert_eq!(req["podName"], "web");
    assert_eq!(req["containerId"], "c0ffee");
    assert_eq!(req["prevResult"]["interfaces"][0]["name"], "eth0");
}

#[test]
fn agent_errors_are_printed_as_cni_errors() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut body = Vec::new();
        s.read_to_end(&mut body).unwrap();
        s.write_all(
            br#"{"error":{"cniVersion":"1.0.0","code":7,"msg":"no such gateway","details":""}}"#,
        )
        .unwrap();
    });
    let (code, out) = plugin(ADD, &conf(socket.to_str().unwrap(), "open"));
    server.join().unwrap();
    assert_eq!(code, 1);
    assert_eq!(out["code"], 7);
    assert_eq!(out["msg"], "no such gateway");
}

#[test]
fn without_an_agent_open_passes_the_previous_result_on_and_closed_fails() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let (code, out) = plugin(ADD, &conf(socket.to_str().unwrap(), "open"));
    assert_eq!(code, 0);
    assert_eq!(out["interfaces"], json!([{"name": "eth0"}]));
    assert_eq!(out["cniVersion"], "1.0.0");
    let (code, out) = plugin(ADD, &conf(socket.to_str().unwrap(), "closed"));
    assert_eq!(code, 1);
    assert_eq!(out["code"], 11);
    // A listener that hangs up without answering counts as unavailable too.
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || drop(listener.accept().unwrap()));
    let (code, out) = plugin(ADD, &conf(socket.to_str().unwrap(), "open"));
    server.join().unwrap();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn malformed_input_gets_an_error_object() {
    for (env, stdin) in [
        (&[("CNI_COMMAND", "ADD")][..], "{not json"),
        (&[][..], "{}"),
        (ADD, r#"{"cniVersion":"9.9.9","name":"k","type":"t"}"#),
        (ADD, r#"{"cniVersion":"1.0.0","name":"k","type":"t"}"#),
    ] {
        let (code, out) = plugin(env, stdin);
        assert_eq!(code, 1);
        assert!(out["code"].as_u64().unwrap() > 0, "{out}");
        assert!(!out["msg"].as_str().unwrap().is_empty());
    }
}

/// Primaries write older versions (Azure CNI 0.3.0; Calico, Cilium, Flannel
/// and kindnet 0.3.1), and the chained list takes the primary's: every one
/// must let a sandbox start, with the result passed on in that version's
/// shape (0.3.x and 0.4.0 results carry `ips[].version`).
#[test]
fn every_primary_version_is_chained_and_answered_in_its_own_shape() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let old = version.starts_with("0.");
        let ip = if old {
            json!({"version": "4", "address": "10.240.0.7/16", "gateway": "10.240.0.1", "interface": 0})
        } else {
            json!({"address": "10.240.0.7/16", "gateway": "10.240.0.1", "interface": 0})
        };
        let prev = json!({"cniVersion": version,
            "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/cni-x"}],
            "ips": [ip], "routes": [{"dst": "0.0.0.0/0"}], "dns": {}});
        for mode in ["open", "closed"] {
            let conf = json!({
                "cniVersion": version, "name": "azure", "type": "egress-cni",
                "agentSocket": socket, "failureMode": mode, "prevResult": prev,
            })
            .to_string();
            let (code, out) = plugin(ADD, &conf);
            if mode == "open" {
                assert_eq!(code, 0, "{version}: {out}");
                assert_eq!(out, prev, "{version}: the result is passed on unchanged");
            } else {
                // Closed fails for the agent's absence, not for the version.
                assert_eq!(
                    (code, out["code"].as_u64()),
                    (1, Some(11)),
                    "{version}: {out}"
                );
            }
            let mut del: Vec<(&str, &str)> = ADD.to_vec();
            del[0] = ("CNI_COMMAND", "DEL");
            let (code, out) = plugin(&del, &conf);
            if mode == "open" {
                assert_eq!(code, 0, "{version} DEL: {out}");
            }
        }
        // CHECK exists from 0.4.0 on; GC and STATUS only in 1.1.0.
        let mut check: Vec<(&str, &str)> = ADD.to_vec();
        check[0] = ("CNI_COMMAND", "CHECK");
        let conf = json!({"cniVersion": version, "name": "azure", "type": "egress-cni",
            "agentSocket": socket, "prevResult": prev})
        .to_string();
        let (code, out) = plugin(&check, &conf);
        if version.starts_with("0.3.") {
            assert_eq!(
                (code, out["code"].as_u64()),
                (1, Some(1)),
                "{version}: {out}"
            );
        } else {
            assert_eq!(code, 0, "{version} CHECK, open, no agent: {out}");
        }
        let gc = json!({"cniVersion": version, "name": "azure", "type": "egress-cni",
            "agentSocket": socket})
        .to_string();
        let (code, out) = plugin(&[("CNI_COMMAND", "GC")], &gc);
        if version == "1.1.0" {
            assert_eq!(code, 0, "{out}");
        } else {
            assert_eq!(
                (code, out["code"].as_u64()),
                (1, Some(1)),
                "{version}: {out}"
            );
        }
    }
    // VERSION lists them all.
    let (code, out) = plugin(&[("CNI_COMMAND", "VERSION")], "{}");
    assert_eq!(code, 0);
    assert_eq!(
        out["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}
