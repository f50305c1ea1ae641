//! Azure Resource Manager resource IDs.

use std::fmt;

/// A parsed ARM ID `/subscriptions/<s>/resourceGroups/<g>/providers/<ns>/<type>/<name>`.
/// Keywords match case-insensitively, as ARM does; values keep their case.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArmId {
    /// Subscription ID.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Provider namespace and type, e.g. `Microsoft.Network/publicIPPrefixes`.
    pub provider_type: String,
    /// Resource name.
    pub name: String,
}

/// Provider and type of a public IP prefix.
pub const PUBLIC_IP_PREFIX: &str = "Microsoft.Network/publicIPPrefixes";

impl ArmId {
    /// Parses a top-level resource ID; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let parts: Vec<&str> = text.strip_prefix('/')?.split('/').collect();
        let [subs, sub, rgs, rg, providers, ns, kind, name] = parts.as_slice() else {
            return None;
        };
        let ok = subs.eq_ignore_ascii_case("subscriptions")
            && rgs.eq_ignore_ascii_case("resourceGroups")
            && providers.eq_ignore_ascii_case("providers")
            && [sub, rg, ns, kind, name].iter().all(|s| !s.is_empty());
        ok.then(|| Self {
            subscription: (*sub).to_string(),
            resource_group: (*rg).to_string(),
            provider_type: format!("{ns}/{kind}"),
            name: (*name).to_string(),
        })
    }

    /// Whether this is a resource of `provider_type` (case-insensitive).
    pub fn is_type(&self, provider_type: &str) -> bool {
        self.provider_type.eq_ignore_ascii_case(provider_type)
    }
}

impl fmt::Display for ArmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/subscriptions/{}/resourceGroups/{}/providers/{}/{}",
            self.subscription, self.resource_group, self.provider_type, self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitive_keywords() {
        let id = ArmId::parse(
            "/subscriptions/sub/resourcegroups/RG/providers/Microsoft.Network/publicipprefixes/p",
        )
        .unwrap();
        assert_eq!(id.subscription, "sub");
        assert_eq!(id.resource_group, "RG");
        assert!(id.is_type(PUBLIC_IP_PREFIX));
        assert_eq!(id.name, "p");
        assert_eq!(
            id.to_string(),
            "/subscriptions/sub/resourceGroups/RG/providers/Microsoft.Network/publicipprefixes/p"
        );
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "my-prefix",
            "subscriptions/s/resourceGroups/g/providers/Microsoft.Network/publicIPPrefixes/p",
            "/subscriptions//resourceGroups/g/providers/Microsoft.Network/publicIPPrefixes/p",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/publicIPPrefixes",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/publicIPPrefixes/p/extra",
            "/subs/s/resourceGroups/g/providers/Microsoft.Network/publicIPPrefixes/p",
        ] {
            assert_eq!(ArmId::parse(bad), None, "{bad}");
        }
    }
}
