//! nftables rulesets, applied atomically through `nft -f -`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ipnet::IpNet;

use crate::Error;

/// Source NAT for traffic leaving one interface from a set of sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnatRule {
    /// Egress interface the rule matches.
    pub out_interface: String,
    /// Source prefix the rule matches.
    pub source: IpNet,
    /// Address written into the source field.
    pub to: IpAddr,
}

/// Renders a complete table holding `rules`. The table is deleted and
/// recreated in the same transaction, so applying it is idempotent and never
/// leaves a half-written state.
pub fn snat_table(table: &str, rules: &[SnatRule]) -> String {
    let mut body = String::new();
    for r in rules {
        let family = if r.source.addr().is_ipv4() {
            "ip"
        } else {
            "ip6"
        };
        let _ = writeln!(
            body,
            "    oifname \"{}\" {family} saddr {} snat {family} to {}",
            r.out_interface, r.source, r.to
        );
    }
    format!(
        "table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n{body}  }}\n}}\n"
    )
}

/// Applies a ruleset in the calling thread's network namespace.
pub fn apply(ruleset: &str) -> Result<(), Error> {
    run(&["-f", "-"], Some(ruleset), "apply ruleset").map(drop)
}

/// Lists one table of family `inet`.
pub fn list_table(table: &str) -> Result<String, Error> {
    run(&["list", "table", "inet", table], None, "list table")
}

/// Lists one table of family `inet` as nft's JSON; `None` if it does not exist.
pub fn list_table_json(table: &str) -> Result<Option<serde_json::Value>, Error> {
    match run(&["-j", "list", "table", "inet", table], None, "list table") {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Nft {
                action: "parse listing".into(),
                stderr: e.to_string(),
            }),
        Err(Error::Nft { stderr, .. }) if stderr.contains("No such file or directory") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes one table of family `inet`; a missing table is not an error.
pub fn delete_table(table: &str) -> Result<(), Error> {
    apply(&format!("table inet {table}\ndelete table inet {table}\n"))
}

fn run(args: &[&str], stdin: Option<&str>, action: &str) -> Result<String, Error> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::NftSpawn)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(Error::NftSpawn)?;
    }
    let out = child.wait_with_output().map_err(Error::NftSpawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Nft {
            action: action.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
