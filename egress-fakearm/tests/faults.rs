//! Scripted faults: 429 with Retry-After, 409 with a code, 5xx, a write that takes effect then
//! answers 500, slow calls, operations that end Failed; matched by operation and path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{COMPUTE, NET, api, lb_body, setup, setup_with};
use egress_fakearm::{Fault, FaultRule};
use serde_json::json;

#[tokio::test]
async fn throttling_answers_429_with_retry_after_once() {
    let (arm, c, ids) = setup().await;
    arm.script_fault(FaultRule::new(
        "VirtualMachineScaleSets_Get",
        Fault::throttle(Duration::from_secs(3)),
    ));
    let r = c.get(&api(&ids.vmss, COMPUTE)).await;
    assert_eq!((r.status, r.code()), (429, "TooManyRequests"));
    assert_eq!(r.header("retry-after").as_deref(), Some("3"));
    assert_eq!(
        c.get(&api(&ids.vmss, COMPUTE)).await.status,
        200,
        "only the next call was scripted"
    );
    let log = arm.requests();
    assert_eq!(log[0].fault.as_deref(), Some("throttle"));
    assert_eq!(
        arm.counts()
            .calls_with_status("VirtualMachineScaleSets_Get", 429),
        1
    );
}

#[tokio::test]
async fn a_conflict_answers_409_with_its_code_and_changes_nothing() {
    let (arm, c, ids) = setup().await;
    let before = c.get(&api(&ids.vmss, COMPUTE)).await;
    arm.script_fault(FaultRule::new(
        "VirtualMachineScaleSets_Update",
        Fault::Conflict {
            code: "OperationNotAllowed".into(),
        },
    ));
    let r = c
        .patch(&api(&ids.vmss, COMPUTE), &json!({"tags": {"a": "b"}}))
        .await;
    assert_eq!((r.status, r.code()), (409, "OperationNotAllowed"));
    let after = c.get(&api(&ids.vmss, COMPUTE)).await;
    assert_eq!(after.etag(), before.etag());
    assert!(after.body["tags"].get("a").is_none());
}

#[tokio::test]
async fn a_server_error_answers_its_status_and_creates_nothing() {
    let (arm, c, ids) = setup().await;
    arm.script_fault(FaultRule::new(
        "PublicIPPrefixes_CreateOrUpdate",
        Fault::ServerError {
            status: 503,
            code: Some("ServiceUnavailable".into()),
        },
    ));
    let p = ids.net("publicIPPrefixes", "managed");
    let r = c
        .put(
            &api(&p, NET),
            &json!({"location": "westus", "properties": {"prefixLength": 31}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (503, "ServiceUnavailable"));
    assert_eq!(c.get(&api(&p, NET)).await.status, 404);
}

#[tokio::test]
async fn an_applied_write_that_answers_500_has_taken_effect() {
    let (arm, c, ids) = setup().await;
    arm.script_fault(FaultRule::new(
        "LoadBalancers_CreateOrUpdate",
        Fault::AppliedThenError,
    ));
    let r = c.put(&api(&ids.lb, NET), &lb_body(&ids, &["a"])).await;
    assert_eq!((r.status, r.code()), (500, "InternalServerError"));
    let got = c.get(&api(&ids.lb, NET)).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.body["properties"]["backendAddressPools"][0]["name"],
        "a"
    );
    assert!(!arm.leftovers().load_balancers.is_empty());
}

#[tokio::test]
async fn slow_reads_answer_late_and_slow_writes_settle_late() {
    let (arm, c, ids) = setup().await;
    arm.script_fault(FaultRule::new(
        "PublicIPPrefixes_Get",
        Fault::slow(Duration::from_millis(300)),
    ));
    let t = Instant::now();
    assert_eq!(c.get(&api(&ids.prefix, NET)).await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    arm.script_fault(FaultRule::new(
        "LoadBalancers_CreateOrUpdate",
        Fault::slow(Duration::from_millis(300)),
    ));
    let t = Instant::now();
    let r = c.put(&api(&ids.lb, NET), &lb_body(&ids, &[])).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        c.get(&api(&ids.lb, NET)).await.state(),
        "Updating",
        "latency is 0 but this write is slow"
    );
    assert_eq!(c.wait(&r).await["status"], "Succeeded");
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_failed_operation_reports_its_code_and_leaves_the_resource_failed() {
    let (arm, c, ids) = setup_with(Duration::from_millis(100)).await;
    arm.script_fault(FaultRule::new(
        "VirtualMachineScaleSets_Update",
        Fault::FailOperation {
            code: "NetworkingInternalOperationError".into(),
            message: None,
        },
    ));
    let r = c
        .patch(&api(&ids.vmss, COMPUTE), &json!({"tags": {"a": "b"}}))
        .await;
    assert_eq!(r.status, 200);
    let done = c.wait(&r).await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "NetworkingInternalOperationError");
    assert_eq!(c.get(&api(&ids.vmss, COMPUTE)).await.state(), "Failed");
    let result = c.get(&r.header("location").unwrap()).await;
    assert_eq!(result.code(), "NetworkingInternalOperationError");
    // The next write is accepted and succeeds.
    let again = c
        .write_ok(
            http::Method::PATCH,
            &api(&ids.vmss, COMPUTE),
            Some(&json!({"tags": {"a": "c"}})),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(c.get(&api(&ids.vmss, COMPUTE)).await.state(), "Succeeded");
}

#[tokio::test]
async fn rules_match_by_path_and_can_apply_always_or_n_times() {
    let (arm, c, ids) = setup().await;
    arm.script_fault(
        FaultRule::new(
            "*",
            Fault::ServerError {
                status: 500,
                code: None,
            },
        )
        .path_contains("publicIPAddresses/pip1")
        .always(),
    );
    arm.script_fault(
        FaultRule::new(
            "PublicIPAddresses_Get",
            Fault::Conflict {
                code: "Busy".into(),
            },
        )
        .times(2),
    );
    let pip1 = ids.net("publicIPAddresses", "pip1");
    let pip2 = ids.net("publicIPAddresses", "pip2");
    for _ in 0..3 {
        assert_eq!(
            c.put(&api(&pip1, NET), &json!({"location": "westus"}))
                .await
                .status,
            500
        );
    }
    assert_eq!(
        c.put(&api(&pip2, NET), &json!({"location": "westus"}))
            .await
            .status,
        201
    );
    assert_eq!(c.get(&api(&pip2, NET)).await.status, 409);
    assert_eq!(c.get(&api(&pip2, NET)).await.status, 409);
    assert_eq!(c.get(&api(&pip2, NET)).await.status, 200);
    assert_eq!(
        c.get(&api(&pip1, NET)).await.status,
        500,
        "the `always` rule stays"
    );
    arm.clear_faults();
    assert_eq!(c.get(&api(&pip1, NET)).await.status, 404);
}
