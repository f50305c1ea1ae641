//! Writes are long-running: accepted at once with `Azure-AsyncOperation` and `Location`, the
//! resource reads `Updating` (or `Deleting`) for the operation latency, then `Succeeded`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{COMPUTE, NET, api, lb_body, setup_with};
use serde_json::json;

const LATENCY: Duration = Duration::from_millis(400);

#[tokio::test]
async fn a_put_reads_updating_until_the_latency_has_passed_then_succeeded() {
    let (_arm, c, ids) = setup_with(LATENCY).await;
    let start = Instant::now();
    let r = c.put(&api(&ids.lb, NET), &lb_body(&ids, &["a"])).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.state(), "Updating");
    let status_url = r.header("azure-asyncoperation").unwrap();
    let location = r.header("location").unwrap();
    assert!(
        status_url.contains("/providers/Microsoft.Network/locations/westus/operations/"),
        "{status_url}"
    );
    assert!(status_url.ends_with(&format!("api-version={NET}")));
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));

    let mid = c.get(&api(&ids.lb, NET)).await;
    assert_eq!(mid.state(), "Updating");
    assert_eq!(
        mid.body["properties"]["backendAddressPools"][0]["name"], "a",
        "the new body is visible at once"
    );
    assert_eq!(c.get(&status_url).await.body["status"], "InProgress");
    let pending = c.get(&location).await;
    assert_eq!(pending.status, 202);

    let done = c.wait(&r).await;
    assert_eq!(done["status"], "Succeeded");
    assert!(
        start.elapsed() >= LATENCY,
        "settled after {:?}",
        start.elapsed()
    );
    assert_eq!(c.get(&api(&ids.lb, NET)).await.state(), "Succeeded");
    let result = c.get(&location).await;
    assert_eq!(result.status, 200);
    assert_eq!(result.body["id"], json!(ids.lb));
}

#[tokio::test]
async fn a_second_write_while_the_first_runs_is_refused() {
    let (_arm, c, ids) = setup_with(LATENCY).await;
    let r = c.put(&api(&ids.lb, NET), &lb_body(&ids, &["a"])).await;
    let again = c.put(&api(&ids.lb, NET), &lb_body(&ids, &["a", "b"])).await;
    assert_eq!(
        (again.status, again.code()),
        (409, "AnotherOperationInProgress")
    );
    c.wait(&r).await;
    let ok = c.put(&api(&ids.lb, NET), &lb_body(&ids, &["a", "b"])).await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn a_delete_reads_deleting_then_the_resource_is_gone() {
    let (_arm, c, ids) = setup_with(LATENCY).await;
    let r = c.put(&api(&ids.lb, NET), &lb_body(&ids, &[])).await;
    c.wait(&r).await;
    let d = c.delete(&api(&ids.lb, NET)).await;
    assert_eq!(d.status, 202);
    assert_eq!(c.get(&api(&ids.lb, NET)).await.state(), "Deleting");
    assert_eq!(c.wait(&d).await["status"], "Succeeded");
    assert_eq!(c.get(&api(&ids.lb, NET)).await.status, 404);
    assert_eq!(c.get(&d.header("location").unwrap()).await.status, 204);
}

#[tokio::test]
async fn compute_writes_poll_through_the_compute_provider() {
    let (arm, c, ids) = setup_with(LATENCY).await;
    let r = c
        .patch(&api(&ids.vmss, COMPUTE), &json!({"tags": {"k": "v"}}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.state(), "Updating");
    assert!(
        r.header("azure-asyncoperation")
            .unwrap()
            .contains("/providers/Microsoft.Compute/locations/")
    );
    assert_eq!(c.get(&api(&ids.vmss, COMPUTE)).await.state(), "Updating");
    let up = c
        .post(
            &api(&format!("{}/manualupgrade", ids.vmss), COMPUTE),
            &json!({"instanceIds": ["0"]}),
        )
        .await;
    assert_eq!(up.status, 202);
    assert_eq!(up.body, serde_json::Value::Null);
    assert_eq!(
        c.get(&api(&format!("{}/virtualMachines/0", ids.vmss), COMPUTE))
            .await
            .state(),
        "Updating"
    );
    assert_eq!(
        c.get(&api(&format!("{}/virtualMachines/1", ids.vmss), COMPUTE))
            .await
            .state(),
        "Succeeded"
    );
    c.wait(&r).await;
    c.wait(&up).await;
    assert_eq!(arm.operations_in_progress(), 0);
    let counts = arm.counts();
    assert_eq!(counts.writes, 2);
    assert!(counts.polls >= 2);
}

#[tokio::test]
async fn latency_can_be_changed_while_running() {
    let (arm, c, ids) = setup_with(Duration::ZERO).await;
    let r = c.put(&api(&ids.lb, NET), &lb_body(&ids, &[])).await;
    assert_eq!(
        c.get(&r.header("azure-asyncoperation").unwrap()).await.body["status"],
        "Succeeded"
    );
    arm.set_latency(LATENCY);
    let r = c.put(&api(&ids.lb, NET), &lb_body(&ids, &["a"])).await;
    assert_eq!(
        c.get(&r.header("azure-asyncoperation").unwrap()).await.body["status"],
        "InProgress"
    );
}

#[tokio::test]
async fn the_handle_waits_for_running_operations() {
    let (arm, c, ids) = setup_with(LATENCY).await;
    let start = Instant::now();
    c.put(&api(&ids.lb, NET), &lb_body(&ids, &[])).await;
    assert_eq!(arm.operations_in_progress(), 1);
    assert!(
        !arm.wait_for_operations(Duration::from_millis(50)).await,
        "not within 50 ms"
    );
    assert!(arm.wait_for_operations(Duration::from_secs(5)).await);
    assert!(start.elapsed() >= LATENCY);
    assert_eq!(arm.operations_in_progress(), 0);
    assert_eq!(
        arm.resource(&ids.lb).unwrap()["properties"]["provisioningState"],
        "Succeeded"
    );
}
