//! The ARM client over HTTP against scripted answers: throttling, retries,
//! preconditions, long-running operations and where the token may go.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    clippy::match_same_arms,
    clippy::needless_pass_by_value,
    clippy::format_push_string
)]

mod support;

use std::time::Duration;

use egress_azure::client::op;
use egress_azure::models::{LoadBalancer, PublicIpPrefix};
use egress_azure::{ArmClient, ArmCredential, ClientSettings, Error};
use egress_core::FailureKind;
use serde_json::json;
use support::scripted::{Response, Scripted};

const RG: &str = "rg";

fn client(base: &str) -> ArmClient {
    let mut s = ClientSettings::new(base, "sub");
    s.backoff_base = Duration::from_millis(5);
    s.backoff_max = Duration::from_millis(50);
    s.poll_interval = Duration::from_millis(5);
    s.max_poll_interval = Duration::from_millis(50);
    s.operation_timeout = Duration::from_secs(5);
    s.max_retries = 3;
    ArmClient::new(s, ArmCredential::static_token("test-token")).unwrap()
}

fn lb_body(etag: &str, state: &str) -> serde_json::Value {
    json!({"name": "ilb", "etag": etag, "location": "westeurope", "properties": {"provisioningState": state, "frontendIPConfigurations": []}, "futureField": {"x": [1]}})
}

#[tokio::test]
async fn a_429_passes_its_retry_after_up_without_retrying() {
    let server = Scripted::start(|_, _| {
        Response::json(
            429,
            json!({"error": {"code": "TooManyRequests", "message": "slow down"}}),
        )
        .header("retry-after", "7")
    })
    .await;
    let c = client(&server.base);
    let err = c.get_lb(RG, "ilb").await.unwrap_err();
    assert_eq!(
        err.failure_kind(),
        FailureKind::Throttled {
            retry_after_secs: Some(7)
        }
    );
    assert_eq!(err.azure_code(), Some("TooManyRequests"));
    assert_eq!(
        server.requests().len(),
        1,
        "a 429 is not retried inside the adapter"
    );
    let m = &c.metrics().snapshot()[op::LB_GET];
    assert_eq!((m.calls, m.failures, m.throttled, m.retries), (1, 1, 1, 0));
    let req = &server.requests()[0];
    assert_eq!(req.header("authorization"), Some("Bearer test-token"));
    assert!(
        req.target.ends_with("?api-version=2024-03-01"),
        "{}",
        req.target
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_a_bound() {
    let server = Scripted::start(|_, i| {
        if i < 2 {
            Response::json(
                503,
                json!({"error": {"code": "ServerBusy", "message": "busy"}}),
            )
        } else {
            Response::json(200, lb_body("W/\"1\"", "Succeeded")).header("etag", "W/\"1\"")
        }
    })
    .await;
    let c = client(&server.base);
    let got = c.get_lb(RG, "ilb").await.unwrap().unwrap();
    assert_eq!(got.etag.as_deref(), Some("W/\"1\""));
    let m = &c.metrics().snapshot()[op::LB_GET];
    assert_eq!(m.retries, 2);
    assert_eq!(m.statuses.get(&503), Some(&2));

    let always = Scripted::start(|_, _| {
        Response::json(
            500,
            json!({"error": {"code": "InternalServerError", "message": "boom"}}),
        )
    })
    .await;
    let c = client(&always.base);
    let err = c.get_lb(RG, "ilb").await.unwrap_err();
    assert_eq!(err.failure_kind(), FailureKind::Transient);
    assert_eq!(always.requests().len(), 4, "1 try + max_retries 3");
}

#[tokio::test]
async fn a_passing_409_is_retried_and_a_permanent_one_is_not() {
    let busy = Scripted::start(|_, i| {
        if i == 0 {
            Response::json(
                409,
                json!({"error": {"code": "AnotherOperationInProgress", "message": "wait"}}),
            )
        } else {
            Response::json(200, lb_body("e", "Succeeded"))
        }
    })
    .await;
    assert!(
        client(&busy.base)
            .get_lb(RG, "ilb")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(busy.requests().len(), 2);

    let used = Scripted::start(|_, _| {
        Response::json(
            409,
            json!({"error": {"code": "InUseSubnetCannotBeDeleted", "message": "in use"}}),
        )
    })
    .await;
    let err = client(&used.base)
        .delete_lb(RG, "ilb", None)
        .await
        .unwrap_err();
    assert_eq!(err.failure_kind(), FailureKind::Permanent);
    assert_eq!(used.requests().len(), 1);
}

#[tokio::test]
async fn a_write_carries_if_match_and_a_412_is_a_conflict() {
    let server = Scripted::start(|_, _| {
        Response::json(
            412,
            json!({"error": {"code": "PreconditionFailed", "message": "etag"}}),
        )
    })
    .await;
    let c = client(&server.base);
    let err = c
        .put_lb(RG, "ilb", &LoadBalancer::default(), Some("W/\"old\""))
        .await
        .unwrap_err();
    assert_eq!(err.failure_kind(), FailureKind::Conflict);
    let req = &server.requests()[0];
    assert_eq!(req.method, "PUT");
    assert_eq!(req.header("if-match"), Some("W/\"old\""));
    let create = c
        .create_lb(RG, "ilb", &LoadBalancer::default())
        .await
        .unwrap_err();
    assert_eq!(create.failure_kind(), FailureKind::Conflict);
    assert_eq!(server.requests()[1].header("if-none-match"), Some("*"));
}

#[tokio::test]
async fn a_write_that_took_effect_then_answered_500_surfaces_as_a_conflict_on_retry() {
    // The first PUT is applied (the ETag moves on) but answers 500; the
    // retry with the old If-Match is then refused, so core re-reads.
    let server = Scripted::start(|req, i| match (i, req.header("if-match")) {
        (0, _) => Response::json(
            500,
            json!({"error": {"code": "InternalServerError", "message": "after apply"}}),
        ),
        (_, Some("\"1\"")) => Response::json(
            412,
            json!({"error": {"code": "PreconditionFailed", "message": "now \"2\""}}),
        ),
        _ => Response::json(200, lb_body("\"2\"", "Succeeded")),
    })
    .await;
    let c = client(&server.base);
    let err = c
        .put_lb(RG, "ilb", &LoadBalancer::default(), Some("\"1\""))
        .await
        .unwrap_err();
    assert_eq!(err.failure_kind(), FailureKind::Conflict);
    assert_eq!(server.requests().len(), 2);
    assert_eq!(c.metrics().snapshot()[op::LB_PUT].retries, 1);
}

#[tokio::test]
async fn long_running_writes_poll_the_async_operation_then_read_the_result() {
    let server = Scripted::start(move |req, _| {
        let status_url = "/operations/op1";
        match (req.method.as_str(), req.target.as_str()) {
            ("PUT", _) => Response::json(201, lb_body("\"1\"", "Updating")).header(
                "azure-asyncoperation",
                &format!("http://{}{status_url}", req.header("host").unwrap()),
            ),
            ("GET", t) if t.starts_with(status_url) => {
                Response::json(200, json!({"status": "InProgress"})).header("retry-after", "0")
            }
            _ => Response::json(200, lb_body("\"2\"", "Succeeded")).header("etag", "\"2\""),
        }
    })
    .await;
    // The status stays InProgress: the bounded wait ends it.
    let mut s = ClientSettings::new(&server.base, "sub");
    s.poll_interval = Duration::from_millis(10);
    s.operation_timeout = Duration::from_millis(200);
    let c = ArmClient::new(s, ArmCredential::static_token("t")).unwrap();
    let err = c
        .put_lb(RG, "ilb", &LoadBalancer::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OperationTimeout { .. }), "{err}");
    assert_eq!(err.failure_kind(), FailureKind::Transient);
    assert!(c.metrics().snapshot()[op::LB_PUT].lro_polls >= 3);

    let done = Scripted::start(|req, i| match (req.method.as_str(), i) {
        ("PUT", _) => Response::json(201, lb_body("\"1\"", "Updating"))
            .header(
                "azure-asyncoperation",
                &format!("http://{}/operations/op2", req.header("host").unwrap()),
            )
            .header(
                "location",
                &format!("http://{}/ignored", req.header("host").unwrap()),
            ),
        ("GET", 1) => Response::json(200, json!({"status": "InProgress"})),
        ("GET", 2) => Response::json(200, json!({"status": "Succeeded"})),
        _ => Response::json(200, lb_body("\"2\"", "Succeeded")).header("etag", "\"2\""),
    })
    .await;
    let c = client(&done.base);
    let got = c
        .put_lb(RG, "ilb", &LoadBalancer::default(), None)
        .await
        .unwrap();
    assert_eq!(got.etag.as_deref(), Some("\"2\""));
    assert_eq!(got.value.extra["futureField"], json!({"x": [1]}));
    let reqs = done.requests();
    assert_eq!(reqs.len(), 4, "PUT, two polls, final GET");
    assert!(reqs[1].target.starts_with("/operations/op2"));
    assert_eq!(reqs[1].header("authorization"), Some("Bearer test-token"));
    assert!(reqs[3].target.contains("/loadBalancers/ilb"));
}

#[tokio::test]
async fn a_failed_operation_surfaces_azures_code() {
    let server = Scripted::start(|req, _| match req.method.as_str() {
        "PUT" => Response::json(201, json!({"properties": {"provisioningState": "Updating"}}))
            .header("azure-asyncoperation", &format!("http://{}/operations/f", req.header("host").unwrap())),
        _ => Response::json(200, json!({"status": "Failed", "error": {"code": "PublicIpPrefixOutOfIpAddresses", "message": "full"}})),
    })
    .await;
    let err = client(&server.base)
        .put_prefix(RG, "p", &PublicIpPrefix::default(), None)
        .await
        .unwrap_err();
    assert_eq!(err.azure_code(), Some("PublicIpPrefixOutOfIpAddresses"));
    assert_eq!(err.failure_kind(), FailureKind::Permanent);
}

#[tokio::test]
async fn location_polling_and_provisioning_state_polling() {
    let server = Scripted::start(|req, i| match (req.method.as_str(), i) {
        ("POST", _) => Response::json(202, json!({}))
            .header(
                "location",
                &format!("http://{}/results/r1", req.header("host").unwrap()),
            )
            .header("retry-after", "0"),
        ("GET", 1) => Response::json(202, json!({})),
        _ => Response::json(200, json!({})),
    })
    .await;
    let c = client(&server.base);
    c.update_instances(RG, "vmss", &["0".into(), "1".into()])
        .await
        .unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs[0]
            .target
            .contains("/virtualMachineScaleSets/vmss/manualupgrade?api-version=2024-07-01")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reqs[0].body).unwrap(),
        json!({"instanceIds": ["0", "1"]})
    );

    // No operation headers, but the body says Updating: poll the resource.
    let state = Scripted::start(|req, i| match (req.method.as_str(), i) {
        ("PUT", _) => Response::json(200, lb_body("\"1\"", "Updating")),
        ("GET", 1) => Response::json(200, lb_body("\"1\"", "Updating")),
        _ => Response::json(200, lb_body("\"2\"", "Succeeded")),
    })
    .await;
    let got = client(&state.base)
        .put_lb(RG, "ilb", &LoadBalancer::default(), None)
        .await
        .unwrap();
    assert_eq!(got.etag.as_deref(), Some("\"2\""));
}

#[tokio::test]
async fn the_token_never_goes_off_the_endpoint() {
    let other = Scripted::start(|_, _| Response::json(200, json!({"status": "Succeeded"}))).await;
    let other_base = other.base.clone();
    let server = Scripted::start(move |_, _| {
        Response::json(201, json!({}))
            .header("azure-asyncoperation", &format!("{other_base}/steal"))
    })
    .await;
    let err = client(&server.base)
        .put_lb(RG, "ilb", &LoadBalancer::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ForeignUrl { .. }), "{err}");
    assert!(other.requests().is_empty());
}

#[tokio::test]
async fn lists_follow_next_links_and_404_reads_are_none() {
    let server = Scripted::start(|req, _| {
        if req.target.contains("page=2") {
            Response::json(200, json!({"value": [{"name": "b"}]}))
        } else if req.target.contains("publicIPPrefixes?") {
            let next = format!("http://{}/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/publicIPPrefixes?api-version=2024-03-01&page=2", req.header("host").unwrap());
            Response::json(200, json!({"value": [{"name": "a"}], "nextLink": next}))
        } else {
            Response::json(404, json!({"error": {"code": "ResourceNotFound", "message": "no"}}))
        }
    })
    .await;
    let c = client(&server.base);
    let names: Vec<_> = c
        .list_prefixes(RG)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name.unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(c.get_prefix(RG, "gone").await.unwrap().is_none());
    assert!(
        !c.delete_public_ip(RG, "gone").await.unwrap(),
        "absent is success"
    );
}
