//! Shared test fixture: a fake ARM with a seeded cloud, and a small HTTP client over hyper.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use egress_fakearm::{FakeArm, FakeArmOptions, VmssPoolSeed};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub const NET: &str = "2024-03-01";
pub const COMPUTE: &str = "2024-07-01";
pub const VMSS_NET: &str = "2018-10-01";
pub const RG: &str = "rg";
pub const VMSS: &str = "aks-gw-12345678-vmss";

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
    pub fn state(&self) -> &str {
        self.body["properties"]["provisioningState"]
            .as_str()
            .unwrap_or("")
    }
    pub fn etag(&self) -> String {
        self.body["etag"].as_str().unwrap_or("").to_owned()
    }
}

/// A plain-HTTP client for the fake (a new connection per call).
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: std::net::SocketAddr,
    pub token: Option<String>,
}

impl Client {
    pub fn new(arm: &FakeArm) -> Self {
        Self {
            addr: arm.local_addr(),
            token: Some("test-token".into()),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let uri = if uri.starts_with("http://") {
            uri.to_owned()
        } else {
            format!("http://{}{uri}", self.addr)
        };
        let mut b = Request::builder()
            .method(method)
            .uri(&uri)
            .header("host", self.addr.to_string());
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let bytes = body
            .map(|v| serde_json::to_vec(v).unwrap())
            .unwrap_or_default();
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let resp = sender
            .send_request(b.body(Full::new(Bytes::from(bytes))).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let raw = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap()
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.send(Method::GET, uri, None, &[]).await
    }
    pub async fn put(&self, uri: &str, body: &Value) -> Resp {
        self.send(Method::PUT, uri, Some(body), &[]).await
    }
    pub async fn patch(&self, uri: &str, body: &Value) -> Resp {
        self.send(Method::PATCH, uri, Some(body), &[]).await
    }
    pub async fn post(&self, uri: &str, body: &Value) -> Resp {
        self.send(Method::POST, uri, Some(body), &[]).await
    }
    pub async fn delete(&self, uri: &str) -> Resp {
        self.send(Method::DELETE, uri, None, &[]).await
    }

    /// Polls an `Azure-AsyncOperation` URL until it is no longer `InProgress`; returns the last
    /// status body.
    pub async fn wait(&self, resp: &Resp) -> Value {
        let url = resp
            .header("azure-asyncoperation")
            .expect("a long-running answer");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.get(&url).await;
            assert_eq!(s.status, 200, "status poll: {:?}", s.body);
            if s.body["status"] != "InProgress" {
                return s.body;
            }
            assert!(Instant::now() < deadline, "operation never settled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a write, expects it accepted (2xx), waits for it and expects `Succeeded`.
    pub async fn write_ok(&self, method: Method, uri: &str, body: Option<&Value>) -> Resp {
        let r = self.send(method, uri, body, &[]).await;
        assert!(
            (200..300).contains(&r.status),
            "{uri}: {} {:?}",
            r.status,
            r.body
        );
        if r.status != 204 {
            let done = self.wait(&r).await;
            assert_eq!(done["status"], "Succeeded", "{uri}: {done:?}");
        }
        r
    }
}

/// Ids and paths of the standard fixture.
#[derive(Debug, Clone)]
pub struct Ids {
    pub sub: String,
    pub subnet: String,
    pub vmss: String,
    pub prefix: String,
    pub prefix_cidr: String,
    pub lb: String,
}

impl Ids {
    pub fn net(&self, kind: &str, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{RG}/providers/Microsoft.Network/{kind}/{name}",
            self.sub
        )
    }
    pub fn pool(&self, name: &str) -> String {
        format!("{}/backendAddressPools/{name}", self.lb)
    }
    pub fn frontend(&self, name: &str) -> String {
        format!("{}/frontendIPConfigurations/{name}", self.lb)
    }
    pub fn probe(&self, name: &str) -> String {
        format!("{}/probes/{name}", self.lb)
    }
}

/// `path?api-version=v`.
pub fn api(path: &str, version: &str) -> String {
    format!("{path}?api-version={version}")
}

/// A fake with a `VNet` (subnet 10.0.1.0/24), a 2-instance VMSS gateway pool and a /30 BYO prefix.
pub async fn setup() -> (FakeArm, Client, Ids) {
    setup_with(Duration::ZERO).await
}

pub async fn setup_with(latency: Duration) -> (FakeArm, Client, Ids) {
    let arm = FakeArm::start(FakeArmOptions {
        latency,
        ..FakeArmOptions::default()
    })
    .await
    .unwrap();
    let subnets = arm
        .seed_vnet(
            RG,
            "vnet",
            "10.0.0.0/16",
            &[("gateway", "10.0.1.0/24"), ("other", "10.0.2.0/24")],
        )
        .unwrap();
    let mut tags = BTreeMap::new();
    tags.insert("aks-managed-poolName".to_owned(), "gwpool".to_owned());
    tags.insert(
        "aks-managed-gatewayIPPrefixSize".to_owned(),
        "30".to_owned(),
    );
    let vmss = arm
        .seed_vmss_pool(VmssPoolSeed {
            resource_group: RG.into(),
            name: VMSS.into(),
            instances: 2,
            tags,
            unique_id: Some("11111111-2222-3333-4444-555555555555".into()),
            subnet: "vnet/gateway".into(),
            ..VmssPoolSeed::default()
        })
        .unwrap();
    let prefix = arm.seed_prefix(RG, "byo", 30).unwrap();
    let sub = arm.subscription().to_owned();
    let client = Client::new(&arm);
    let lb = format!(
        "/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Network/loadBalancers/kubeegressgateway-ilb"
    );
    let ids = Ids {
        sub,
        subnet: subnets[0].clone(),
        vmss: vmss.id,
        prefix: prefix.id,
        prefix_cidr: prefix.ip_prefix,
        lb,
    };
    (arm, client, ids)
}

/// An internal load balancer body with one frontend in the gateway subnet and the given pools,
/// plus one rule and probe on the first pool.
pub fn lb_body(ids: &Ids, pools: &[&str]) -> Value {
    let mut body = json!({
        "location": "westus",
        "sku": {"name": "Standard"},
        "properties": {
            "frontendIPConfigurations": [{"name": "fe1", "properties": {"subnet": {"id": ids.subnet}}}],
            "backendAddressPools": pools.iter().map(|p| json!({"name": p})).collect::<Vec<_>>(),
            "probes": [{"name": "probe1", "properties": {"protocol": "Http", "port": 8082, "requestPath": "/gw", "intervalInSeconds": 5, "numberOfProbes": 2}}],
            "loadBalancingRules": [],
        }
    });
    if let Some(first) = pools.first() {
        body["properties"]["loadBalancingRules"] = json!([{
            "name": "rule1",
            "properties": {
                "frontendIPConfiguration": {"id": ids.frontend("fe1")},
                "backendAddressPool": {"id": ids.pool(first)},
                "probe": {"id": ids.probe("probe1")},
                "protocol": "Udp", "frontendPort": 6000, "backendPort": 6000, "enableFloatingIP": true
            }
        }]);
    }
    body
}

/// The model's NIC configurations with a secondary ipConfig `name` added to the primary NIC,
/// referencing `pool` and (optionally) a public IP prefix.
pub fn model_with_ipconfig(
    vmss: &Value,
    name: &str,
    pool: Option<&str>,
    prefix: Option<&str>,
) -> Value {
    let mut nics = vmss["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"].clone();
    let subnet = nics[0]["properties"]["ipConfigurations"][0]["properties"]["subnet"].clone();
    let mut ipc = json!({"name": name, "properties": {"primary": false, "privateIPAddressVersion": "IPv4", "subnet": subnet}});
    if let Some(p) = pool {
        ipc["properties"]["loadBalancerBackendAddressPools"] = json!([{"id": p}]);
    }
    if let Some(p) = prefix {
        ipc["properties"]["publicIPAddressConfiguration"] =
            json!({"name": name, "properties": {"publicIPPrefix": {"id": p}}});
    }
    nics[0]["properties"]["ipConfigurations"]
        .as_array_mut()
        .unwrap()
        .push(ipc);
    nics
}

/// The PATCH body writing only the model's NIC configurations.
pub fn network_patch(nics: &Value) -> Value {
    json!({"properties": {"virtualMachineProfile": {"networkProfile": {"networkInterfaceConfigurations": nics}}}})
}
