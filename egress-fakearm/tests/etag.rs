//! `ETags` change on every write; `If-Match` and `If-None-Match` failures answer 412.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{COMPUTE, NET, api, lb_body, setup};
use http::Method;
use serde_json::json;

#[tokio::test]
async fn if_match_with_a_stale_etag_is_refused_and_the_current_one_is_accepted() {
    let (_arm, c, ids) = setup().await;
    let first = c
        .write_ok(
            Method::PUT,
            &api(&ids.lb, NET),
            Some(&lb_body(&ids, &["a"])),
        )
        .await;
    let stale = first.etag();
    assert_eq!(first.header("etag").unwrap(), stale);
    let second = c
        .write_ok(
            Method::PUT,
            &api(&ids.lb, NET),
            Some(&lb_body(&ids, &["a", "b"])),
        )
        .await;
    assert_ne!(second.etag(), stale, "every write changes the ETag");
    let body = lb_body(&ids, &["a"]);
    let r = c
        .send(
            Method::PUT,
            &api(&ids.lb, NET),
            Some(&body),
            &[("If-Match", &stale)],
        )
        .await;
    assert_eq!((r.status, r.code()), (412, "PreconditionFailed"));
    let current = c.get(&api(&ids.lb, NET)).await;
    assert_eq!(
        current.body["properties"]["backendAddressPools"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing written"
    );
    let r = c
        .send(
            Method::PUT,
            &api(&ids.lb, NET),
            Some(&body),
            &[("If-Match", &current.etag())],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn if_match_on_a_scale_set_patch_and_an_instance_update() {
    let (_arm, c, ids) = setup().await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let patch = json!({"tags": {"x": "1"}});
    let r = c
        .send(
            Method::PATCH,
            &api(&ids.vmss, COMPUTE),
            Some(&patch),
            &[("If-Match", "\"999\"")],
        )
        .await;
    assert_eq!((r.status, r.code()), (412, "PreconditionFailed"));
    let r = c
        .send(
            Method::PATCH,
            &api(&ids.vmss, COMPUTE),
            Some(&patch),
            &[("If-Match", &vmss.etag())],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_ne!(r.etag(), vmss.etag());
    let inst = format!("{}/virtualMachines/1", ids.vmss);
    let r = c
        .send(
            Method::PUT,
            &api(&inst, COMPUTE),
            Some(&json!({"properties": {}})),
            &[("If-Match", &vmss.etag())],
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (412, "PreconditionFailed"),
        "the instance has its own ETag"
    );
}

#[tokio::test]
async fn if_none_match_star_creates_only() {
    let (_arm, c, ids) = setup().await;
    let pip = ids.net("publicIPAddresses", "pip1");
    let body = json!({"location": "westus"});
    let r = c
        .send(
            Method::PUT,
            &api(&pip, NET),
            Some(&body),
            &[("If-None-Match", "*")],
        )
        .await;
    assert_eq!(r.status, 201);
    let r = c
        .send(
            Method::PUT,
            &api(&pip, NET),
            Some(&body),
            &[("If-None-Match", "*")],
        )
        .await;
    assert_eq!((r.status, r.code()), (412, "PreconditionFailed"));
}

#[tokio::test]
async fn if_match_on_a_missing_resource_or_a_delete_is_checked() {
    let (_arm, c, ids) = setup().await;
    let r = c
        .send(
            Method::PUT,
            &api(&ids.lb, NET),
            Some(&lb_body(&ids, &[])),
            &[("If-Match", "W/\"x\"")],
        )
        .await;
    assert_eq!((r.status, r.code()), (412, "PreconditionFailed"));
    let lb = c
        .write_ok(Method::PUT, &api(&ids.lb, NET), Some(&lb_body(&ids, &[])))
        .await;
    let r = c
        .send(
            Method::DELETE,
            &api(&ids.lb, NET),
            None,
            &[("If-Match", "W/\"x\"")],
        )
        .await;
    assert_eq!((r.status, r.code()), (412, "PreconditionFailed"));
    let r = c
        .send(
            Method::DELETE,
            &api(&ids.lb, NET),
            None,
            &[("If-Match", &lb.etag())],
        )
        .await;
    assert_eq!(r.status, 202);
}
