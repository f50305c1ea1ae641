//! Node identity from Azure's instance metadata service, read once at start
//! as upstream does.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use egress_k8s::gateway::NodeIdentity;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INSTANCE: &str = "/metadata/instance?format=json&api-version=2021-10-01";
const LOAD_BALANCER: &str = "/metadata/loadbalancer?format=json&api-version=2020-10-01";

/// One plain-HTTP GET with IMDS's required header; returns the body of a 200.
async fn get(base: &str, path: &str) -> Result<Value> {
    let authority = base
        .strip_prefix("http://")
        .context("the IMDS URL must start with http://")?
        .trim_end_matches('/');
    // The real IMDS URL has no port: HTTP's default applies.
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .context("IMDS did not answer within 5 s")?
    .with_context(|| format!("cannot connect to IMDS at {authority}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nMetadata: true\r\nUser-Agent: egress-gateway-daemon\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .context("IMDS response timed out")??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("IMDS sent no HTTP header")?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        bail!("IMDS {path} answered {status}");
    }
    serde_json::from_str(body).with_context(|| format!("IMDS {path} is not JSON"))
}

/// Parses `k:v;k:v` tags as upstream does: pairs of exactly two parts, trimmed.
pub fn parse_tags(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|pair| {
            let parts: Vec<&str> = pair.split(':').collect();
            match parts.as_slice() {
                [k, v] => Some((k.trim().to_string(), v.trim().to_string())),
                _ => None,
            }
        })
        .collect()
}

/// Reads the node's identity from IMDS at `base` (normally
/// `http://169.254.169.254`).
pub async fn identity(base: &str) -> Result<NodeIdentity> {
    let instance = get(base, INSTANCE).await?;
    get(base, LOAD_BALANCER).await?;
    let compute = &instance["compute"];
    let text = |v: &Value| v.as_str().map(str::to_string).filter(|s| !s.is_empty());
    let computer_name = text(&compute["osProfile"]["computerName"])
        .context("IMDS compute.osProfile.computerName is empty")?;
    if text(&instance["network"]["interface"][0]["ipv4"]["subnet"][0]["address"]).is_none()
        && instance["network"]["interface"][0]["ipv4"]["subnet"]
            .as_array()
            .is_none_or(Vec::is_empty)
    {
        bail!("IMDS network.interface[0].ipv4.subnet is empty");
    }
    let tags = parse_tags(compute["tags"].as_str().unwrap_or_default());
    let tag = |name: &str| tags.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Ok(NodeIdentity {
        computer_name,
        nic_name: tag("aks-managed-nic-name"),
        pool_name: tag(egress_core::names::TAG_POOL_NAME),
        vmss_name: text(&compute["vmScaleSetName"]),
        resource_group: text(&compute["resourceGroupName"]),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tags_parse_like_upstream() {
        assert_eq!(
            parse_tags("aks-managed-poolName: gwpool ;bad;a:b:c;x:y"),
            [
                ("aks-managed-poolName".to_string(), "gwpool".to_string()),
                ("x".into(), "y".into())
            ]
        );
    }

    #[tokio::test]
    async fn reads_identity_from_a_fake_imds() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(req.contains("Metadata: true"));
                let body = if req.starts_with("GET /metadata/instance") {
                    r#"{"compute":{"osProfile":{"computerName":"gw000001"},"tags":"aks-managed-poolName:gwpool;aks-managed-nic-name:nic-1","vmScaleSetName":"vmss-gw","resourceGroupName":"mc_rg"},"network":{"interface":[{"ipv4":{"subnet":[{"address":"192.0.2.0","prefix":"24"}]}}]}}"#
                } else {
                    r#"{"loadbalancer":{}}"#
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let id = identity(&format!("http://{addr}")).await.unwrap();
        assert_eq!(id.computer_name, "gw000001");
        assert_eq!(id.pool_name.as_deref(), Some("gwpool"));
        assert_eq!(id.nic_name.as_deref(), Some("nic-1"));
        assert_eq!(id.vmss_name.as_deref(), Some("vmss-gw"));
        assert_eq!(id.resource_group.as_deref(), Some("mc_rg"));
    }
}
