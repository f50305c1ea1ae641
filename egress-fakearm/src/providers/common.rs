//! What every resource handler shares: resource-group checks, body hygiene, the view of a
//! stored entry, and committing a write as a long-running operation.

use serde_json::{Value, json};

use crate::arm_error::ArmError;
use crate::exchange::{Reply, Req};
use crate::ids::{key, last_segment, resource_group_key};
use crate::json::{set_at, str_at};
use crate::lro::{self, OpShape};
use crate::state::{Entry, Kind, Provider, State, Target};

/// What a write handler needs besides the state.
#[derive(Debug)]
pub struct WriteCtx<'a> {
    /// The request.
    pub req: &'a Req,
    /// Azure's operation name.
    pub operation: &'static str,
    /// How faults shape the operation.
    pub shape: OpShape,
}

/// 404 `ResourceGroupNotFound` unless the id's resource group exists.
pub fn require_rg(state: &State, id: &str) -> Result<(), ArmError> {
    let rg = resource_group_key(id).unwrap_or_default();
    if state.resource_groups.contains(&rg) {
        return Ok(());
    }
    let name = id.split('/').nth(4).unwrap_or_default();
    Err(ArmError::new(
        404,
        "ResourceGroupNotFound",
        format!("Resource group '{name}' could not be found."),
    ))
}

/// The stored body with its `ETag` and provisioning state filled in.
pub fn decorate(entry: &Entry) -> Value {
    let mut body = entry.body.clone();
    set_at(&mut body, &["etag"], json!(entry.etag));
    set_at(
        &mut body,
        &["properties", "provisioningState"],
        json!(entry.provisioning_state()),
    );
    body
}

/// Removes the top-level fields a client may echo back but never sets.
pub fn strip_top_read_only(body: &mut Value) {
    crate::json::remove(body, "etag");
    if let Some(p) = body.get_mut("properties") {
        crate::json::remove(p, "provisioningState");
    }
}

/// Sets `id`, `name` and `type`, and checks `location`: required on create, unchangeable on
/// update (Azure's `LocationRequired` and `InvalidResourceLocation`).
pub fn identity(
    body: &mut Value,
    id: &str,
    type_name: &str,
    existing: Option<&Value>,
) -> Result<(), ArmError> {
    let given = body
        .get("location")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let old = existing
        .and_then(|e| e.get("location"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let location = match (given, old) {
        (None, None) => {
            return Err(ArmError::bad_request(
                "LocationRequired",
                format!("The location property is required for resource {id}."),
            ));
        }
        (Some(g), Some(o)) if norm_location(&g) != norm_location(&o) => {
            return Err(ArmError::bad_request(
                "InvalidResourceLocation",
                format!(
                    "The resource {id} already exists in location '{o}'; it cannot be moved to '{g}'."
                ),
            ));
        }
        (Some(g), _) => g,
        (None, Some(o)) => o,
    };
    set_at(body, &["location"], json!(location));
    set_at(body, &["id"], json!(id));
    set_at(body, &["name"], json!(last_segment(id)));
    set_at(body, &["type"], json!(type_name));
    Ok(())
}

fn norm_location(l: &str) -> String {
    l.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Stores a top-level resource written by a PUT and starts its operation; answers 201 for a
/// create and 200 for an update (Azure's network and compute providers both do), with the
/// long-running headers and the body reading `Updating`.
pub fn commit(
    state: &mut State,
    ctx: &WriteCtx<'_>,
    kind: Kind,
    provider: Provider,
    id: &str,
    body: Value,
) -> Reply {
    let k = key(id);
    let etag = state.next_etag(provider);
    let Some(map) = state.map_mut(kind) else {
        // Scale sets are committed by their own handler, never through here.
        let e = ArmError::new(
            500,
            "InternalServerError",
            format!("{id} cannot be stored as a plain resource."),
        );
        return Reply::error(&e);
    };
    let existing = map.get(&k).map(|e| e.seeded);
    let created = existing.is_none();
    map.insert(k.clone(), Entry::new(body, etag, existing.unwrap_or(false)));
    let op = lro::start(
        state,
        provider,
        ctx.operation,
        &ctx.req.path,
        vec![Target::Resource(kind, k.clone())],
        false,
        &ctx.shape,
    );
    let view = crate::view::of(state, kind, &k).unwrap_or(Value::Null);
    accepted(
        state,
        ctx.req,
        &op,
        if created { 201 } else { 200 },
        Some(view),
    )
}

/// Starts the DELETE of a top-level resource: 202 with the long-running headers; the
/// resource reads `Deleting` and disappears when the operation settles.
pub fn delete(
    state: &mut State,
    ctx: &WriteCtx<'_>,
    kind: Kind,
    provider: Provider,
    id: &str,
) -> Reply {
    let op = lro::start(
        state,
        provider,
        ctx.operation,
        &ctx.req.path,
        vec![Target::Resource(kind, key(id))],
        true,
        &ctx.shape,
    );
    accepted(state, ctx.req, &op, 202, None)
}

/// An accepted long-running write.
pub fn accepted(state: &State, req: &Req, op: &str, status: u16, body: Option<Value>) -> Reply {
    let etag = body
        .as_ref()
        .and_then(|b| str_at(b, &["etag"]))
        .map(str::to_owned);
    let mut reply = Reply {
        status,
        headers: lro::headers(state, req, op),
        body,
    };
    if let Some(e) = etag {
        reply.headers.push(("ETag".into(), e));
    }
    reply
}

/// A GET answer with the `ETag` header.
pub fn got(view: Value) -> Reply {
    let etag = str_at(&view, &["etag"]).map(str::to_owned);
    let reply = Reply::ok(view);
    match etag {
        Some(e) => reply.with_header("ETag", e),
        None => reply,
    }
}

/// Entries of a map that live in a resource group scope (`/subscriptions/s/resourceGroups/rg`).
pub fn in_scope<'a>(
    map: &'a std::collections::BTreeMap<String, Entry>,
    scope: &str,
) -> impl Iterator<Item = (&'a String, &'a Entry)> {
    let prefix = format!("{}/", key(scope));
    map.iter().filter(move |(k, _)| k.starts_with(&prefix))
}

/// 404 for a list in a resource group that does not exist.
pub fn list_scope(state: &State, scope: &str) -> Result<(), ArmError> {
    require_rg(state, &format!("{scope}/providers"))
}

/// Child names must be unique in a collection. Chosen code: `DuplicateResourceName`.
pub fn unique_names(items: &[Value], collection: &str, owner: &str) -> Result<(), ArmError> {
    let mut seen = std::collections::BTreeSet::new();
    for item in items {
        let Some(name) = item
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            return Err(ArmError::invalid_body(format!(
                "An item of {collection} of {owner} has no name."
            )));
        };
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(ArmError::bad_request(
                "DuplicateResourceName",
                format!("Resource {owner} has two {collection} with the same name ({name})."),
            ));
        }
    }
    Ok(())
}

/// Starts a write or delete only when the preconditions hold and nothing runs on the resource.
pub fn preflight(
    state: &State,
    req: &Req,
    id: &str,
    existing: Option<&Entry>,
) -> Result<(), ArmError> {
    crate::etag::check(req, existing.map(|e| e.etag.as_str()), id)?;
    lro::ensure_idle(state, existing.and_then(Entry::busy_op), id)
}
