//! Small helpers for walking and editing ARM JSON bodies.

use serde_json::{Map, Value};

/// The value at a path of object keys, if every step exists.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(*k))
}

/// The string at a path.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// The array at a path, or an empty slice when absent or not an array.
pub fn arr_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The `id` of a sub-resource reference object such as `{"id": "..."}`.
pub fn ref_id(value: &Value) -> Option<&str> {
    value.get("id").and_then(Value::as_str)
}

/// The ids of a list of sub-resource references at a path.
pub fn ref_ids<'a>(value: &'a Value, path: &[&str]) -> Vec<&'a str> {
    arr_at(value, path).iter().filter_map(ref_id).collect()
}

/// The value at a path, mutable, if every step exists.
pub fn at_mut<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, k| v.get_mut(*k))
}

/// Sets the value at a path of object keys, creating (or replacing non-object) parents.
pub fn set_at(value: &mut Value, path: &[&str], new: Value) {
    let Some((last, parents)) = path.split_last() else {
        *value = new;
        return;
    };
    let mut cur = value;
    for k in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        // Indexing an object by key inserts `null` when absent; `cur` is an object here.
        cur = &mut cur[*k];
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    cur[*last] = new;
}

/// Removes `key` from an object value, if it is one.
pub fn remove(obj: &mut Value, key: &str) {
    if let Value::Object(map) = obj {
        map.remove(key);
    }
}

/// JSON merge patch (RFC 7386): objects merge key by key, `null` removes a key, anything else
/// (arrays included) replaces the target whole.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_map) = target {
        for (k, v) in patch_map {
            if v.is_null() {
                target_map.remove(k);
            } else {
                merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_at_creates_parents() {
        let mut v = json!({"a": 1});
        set_at(&mut v, &["p", "q"], json!(2));
        assert_eq!(v, json!({"a": 1, "p": {"q": 2}}));
    }

    #[test]
    fn merge_patch_replaces_arrays_and_removes_nulls() {
        let mut t = json!({"a": {"b": [1, 2], "c": 1, "d": 2}, "e": 1});
        merge_patch(&mut t, &json!({"a": {"b": [3], "d": null}}));
        assert_eq!(t, json!({"a": {"b": [3], "c": 1}, "e": 1}));
    }
}
