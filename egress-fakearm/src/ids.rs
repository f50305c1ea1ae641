//! ARM resource ids: building them and comparing them the way ARM does (case-insensitively).

/// The map key for an ARM id: lower-case, without a trailing slash. ARM ids compare
/// case-insensitively, so every lookup goes through this.
pub fn key(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

/// `/subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/{kind}/{name}`.
pub fn resource_id(sub: &str, rg: &str, namespace: &str, kind: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/{kind}/{name}")
}

/// The id of a child resource: `{parent}/{kind}/{name}`.
pub fn child_id(parent: &str, kind: &str, name: &str) -> String {
    format!("{}/{kind}/{name}", parent.trim_end_matches('/'))
}

/// Splits `{parent}/{kind}/{name}` into the parent's key, the child kind (lower-case) and the
/// child name (lower-case). `None` when the id has fewer segments.
pub fn split_child(id: &str) -> Option<(String, String, String)> {
    let k = key(id);
    let (rest, name) = k.rsplit_once('/')?;
    let (parent, kind) = rest.rsplit_once('/')?;
    if parent.is_empty() || name.is_empty() || kind.is_empty() {
        return None;
    }
    Some((parent.to_owned(), kind.to_owned(), name.to_owned()))
}

/// The resource group key (`/subscriptions/{sub}/resourcegroups/{rg}`, lower-case) of an id,
/// or `None` when the id has no resource group.
pub fn resource_group_key(id: &str) -> Option<String> {
    let k = key(id);
    let parts: Vec<&str> = k.split('/').collect();
    // ["", "subscriptions", sub, "resourcegroups", rg, ...]
    if parts.len() >= 5 && parts[1] == "subscriptions" && parts[3] == "resourcegroups" {
        Some(parts[..5].join("/"))
    } else {
        None
    }
}

/// The last segment of an id (the resource's name).
pub fn last_segment(id: &str) -> &str {
    id.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_split_case_insensitively() {
        let id = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/loadBalancers/LB/backendAddressPools/Pool";
        let (parent, kind, name) = split_child(id).unwrap_or_default();
        assert_eq!(
            parent,
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/loadbalancers/lb"
        );
        assert_eq!(kind, "backendaddresspools");
        assert_eq!(name, "pool");
        assert_eq!(
            resource_group_key(id).as_deref(),
            Some("/subscriptions/s/resourcegroups/rg")
        );
        assert_eq!(last_segment(id), "Pool");
    }
}
