//! Pieces shared by every model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The fields of an object that the model does not name, kept verbatim.
pub type Extra = Map<String, Value>;

/// Resource tags.
pub type Tags = BTreeMap<String, String>;

/// A reference to another resource: `{"id": "..."}`, plus anything else.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SubResource {
    /// ARM ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SubResource {
    /// A reference to `id`.
    pub fn to(id: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            extra: Extra::new(),
        }
    }

    /// The ID, or `""` when absent.
    pub fn id_str(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
}

/// One page of an ARM list: `{"value": [...], "nextLink": "..."}`.
#[derive(Clone, Debug, Deserialize)]
pub struct ListPage<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    /// The next page, if any.
    #[serde(default, rename = "nextLink")]
    pub next_link: Option<String>,
}
