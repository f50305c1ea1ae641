//! Validation of a configuration spec, one typed error per rule.
//!
//! It covers every rule upstream checks in its reconciler and those it misses:
//! prefix lengths Azure offers, prefix capacity against the pool, CIDR syntax,
//! the BYO prefix's ID and subscription, and the length of derived names.

use ipnet::IpNet;

use crate::Error;
use crate::arm::{ArmId, PUBLIC_IP_PREFIX};
use crate::model::{ConfigId, EgressMode, GatewayConfig, GatewaySpec, PoolSelector};
use crate::names::{AZURE_NAME_MAX, managed_resource_name, vm_pool_public_ip_name};
use crate::sizing::check_public_prefix;

pub(crate) const F_PREFIX_SIZE: &str = "spec.gatewayVmssProfile.publicIpPrefixSize";
/// Where a pool selected by name keeps its prefix length.
pub(crate) const F_PREFIX_TAG: &str = "tag aks-managed-gatewayIPPrefixSize of the gateway pool";
const F_PREFIX_ID: &str = "spec.publicIpPrefixId";

/// What validation needs to know beyond the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationContext {
    /// The subscription the controller manages; BYO prefixes must be in it.
    pub subscription_id: String,
    /// Gateway nodes in the target pool, when known.
    pub pool_nodes: Option<u32>,
    /// The pool's prefix length from its `aks-managed-gatewayIPPrefixSize`
    /// tag, when the pool is selected by name and the tag is known.
    pub pool_prefix_len: Option<u8>,
}

/// Validates `spec`, returning every violation at once.
pub fn validate(
    id: ConfigId,
    spec: &GatewaySpec,
    ctx: &ValidationContext,
) -> Result<GatewayConfig, Vec<Error>> {
    let mut errors = Vec::new();
    let pool = pool(spec, &mut errors);
    let public = spec.provision_public_ips;
    let byo = spec
        .public_ip_prefix_id
        .as_deref()
        .filter(|s| !s.is_empty());

    let egress = match (public, byo) {
        (false, Some(_)) => {
            errors.push(Error::PrefixWithoutPublicIps);
            EgressMode::Private
        }
        (false, None) => EgressMode::Private,
        (true, None) => EgressMode::Public { byo_prefix: None },
        (true, Some(text)) => EgressMode::Public {
            byo_prefix: byo_prefix(text, ctx, &mut errors),
        },
    };

    // A length already rejected as out of range is not checked again for capacity.
    let len_rejected = errors
        .iter()
        .any(|e| matches!(e, Error::PrefixLength { .. }));
    if public
        && !len_rejected
        && let Some(pool) = &pool
    {
        let len = match pool {
            PoolSelector::Vmss { prefix_len, .. } => Some((F_PREFIX_SIZE, *prefix_len)),
            PoolSelector::NodePool { .. } => ctx.pool_prefix_len.map(|l| (F_PREFIX_TAG, l)),
        };
        if let Some((field, len)) = len
            && let Err(e) = check_public_prefix(field, len, ctx.pool_nodes.unwrap_or(0))
        {
            errors.push(e);
        }
    }

    let exclude_cidrs = spec
        .exclude_cidrs
        .iter()
        .enumerate()
        .filter_map(|(index, text)| {
            let parsed = text.trim().parse::<IpNet>().ok();
            if parsed.is_none() {
                errors.push(Error::Cidr {
                    field: "spec.excludeCidrs",
                    index,
                    value: text.clone(),
                });
            }
            parsed
        })
        .collect();

    // The longest name derived from the UID is a VM pool's public IP:
    // `egressgateway-<uid>-<hash of the NIC name>`, the hash up to 16 digits.
    let longest = vm_pool_public_ip_name(&managed_resource_name(&id.uid), "");
    let longest_len = managed_resource_name(&id.uid).len() + 17;
    if longest_len > AZURE_NAME_MAX {
        errors.push(Error::NameTooLong {
            field: "metadata.uid",
            len: longest_len,
            name: longest,
            max: AZURE_NAME_MAX,
        });
    }

    match (pool, errors.is_empty()) {
        (Some(pool), true) => Ok(GatewayConfig {
            id,
            pool,
            egress,
            route_mode: spec.default_route,
            exclude_cidrs,
        }),
        _ => Err(errors),
    }
}

fn non_empty(value: Option<&String>) -> Option<String> {
    value
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_string())
}

fn pool(spec: &GatewaySpec, errors: &mut Vec<Error>) -> Option<PoolSelector> {
    let name = non_empty(spec.gateway_nodepool_name.as_ref());
    let profile = spec.vmss_profile.as_ref().filter(|p| p.is_set());
    match (name, profile) {
        (Some(name), None) => Some(PoolSelector::NodePool { name }),
        (None, Some(p)) => {
            let rg = non_empty(p.resource_group.as_ref());
            let vmss = non_empty(p.name.as_ref());
            if rg.is_none() {
                errors.push(Error::Required {
                    field: "spec.gatewayVmssProfile.vmssResourceGroup",
                });
            }
            if vmss.is_none() {
                errors.push(Error::Required {
                    field: "spec.gatewayVmssProfile.vmssName",
                });
            }
            let len = p.prefix_len.unwrap_or(0);
            let len = match u8::try_from(len) {
                Ok(l) if l <= 32 => l,
                _ => {
                    errors.push(Error::PrefixLength {
                        field: F_PREFIX_SIZE,
                        len,
                    });
                    0
                }
            };
            Some(PoolSelector::Vmss {
                resource_group: rg?,
                name: vmss?,
                prefix_len: len,
            })
        }
        _ => {
            errors.push(Error::PoolSelector);
            None
        }
    }
}

fn byo_prefix(text: &str, ctx: &ValidationContext, errors: &mut Vec<Error>) -> Option<ArmId> {
    let Some(id) = ArmId::parse(text.trim()).filter(|id| id.is_type(PUBLIC_IP_PREFIX)) else {
        errors.push(Error::ArmId {
            field: F_PREFIX_ID,
            value: text.to_string(),
            expected: PUBLIC_IP_PREFIX,
        });
        return None;
    };
    if !ctx.subscription_id.is_empty()
        && !id.subscription.eq_ignore_ascii_case(&ctx.subscription_id)
    {
        errors.push(Error::Subscription {
            field: F_PREFIX_ID,
            found: id.subscription.clone(),
            expected: ctx.subscription_id.clone(),
        });
    }
    Some(id)
}

#[cfg(test)]
mod tests;
