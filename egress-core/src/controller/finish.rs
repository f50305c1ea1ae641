//! Step 7 of a pass: status, outcomes, and the end of deletions and moves.

use crate::Error;
use crate::lb::LoadBalancer;
use crate::model::{EgressAddresses, EgressMode, GatewayStatus, ServerProfile};
use crate::names::same_name;
use crate::traits::ClusterApi;

use super::pools::Pools;
use super::{After, Entry, Outcome, PassReport, Role};

pub(super) async fn finish<K: ClusterApi + ?Sized>(
    cluster: &K,
    entries: &mut [Entry],
    lb: Option<&LoadBalancer>,
    pools: &Pools,
) -> PassReport {
    let mut report = PassReport::default();
    for e in entries.iter_mut() {
        let outcome = match e.role {
            Role::Leave(after) => leave(cluster, e, pools, after).await,
            Role::Provision => provision(cluster, e, lb, pools).await,
            Role::Hold if e.obj.status.is_ready() => Outcome::Held(std::mem::take(&mut e.errors)),
            Role::Hold | Role::Idle if e.rejected => {
                Outcome::Invalid(std::mem::take(&mut e.errors))
            }
            Role::Hold | Role::Idle => Outcome::Failed(std::mem::take(&mut e.errors)),
        };
        report.outcomes.insert(e.obj.id.clone(), outcome);
    }
    report
}

async fn leave<K: ClusterApi + ?Sized>(
    cluster: &K,
    e: &mut Entry,
    pools: &Pools,
    after: After,
) -> Outcome {
    if let (Some(p), Some(name)) = (e.pool, e.managed_name())
        && pools.list[p].has_ip_config(&name)
    {
        e.errors.push(Error::Pool(format!(
            "ipConfig {name} is still on gateway pool {}",
            pools.list[p].info.uid
        )));
    }
    let id = e.obj.id.clone();
    match after {
        After::Finalize if e.errors.is_empty() => {
            let done = async {
                cluster.delete_children(&id).await?;
                cluster.delete_key_secret(&id).await?;
                cluster.remove_finalizer(&id).await
            };
            match done.await {
                Ok(()) => Outcome::Deleted,
                Err(err) => Outcome::DeletePending(vec![err]),
            }
        }
        After::Finalize => Outcome::DeletePending(std::mem::take(&mut e.errors)),
        After::Reapply if e.errors.is_empty() => {
            match cluster.ensure_children(&id, &e.obj.spec).await {
                Ok(_) => Outcome::Moving,
                Err(err) => Outcome::Failed(vec![err]),
            }
        }
        After::Reapply => Outcome::Failed(std::mem::take(&mut e.errors)),
    }
}

async fn provision<K: ClusterApi + ?Sized>(
    cluster: &K,
    e: &mut Entry,
    lb: Option<&LoadBalancer>,
    pools: &Pools,
) -> Outcome {
    let status = status_of(e, lb, pools);
    // A pass with errors saw only part of the picture: keep the last known
    // status rather than overwrite it with gaps.
    if e.errors.is_empty()
        && (status != e.obj.status || e.nodes != e.obj.nodes)
        && let Err(err) = cluster.write_status(&e.obj.id, &status, &e.nodes).await
    {
        e.errors.push(err);
    }
    if !e.errors.is_empty() {
        Outcome::Failed(std::mem::take(&mut e.errors))
    } else if status.is_ready() {
        Outcome::Ready
    } else {
        Outcome::Pending
    }
}

fn status_of(e: &Entry, lb: Option<&LoadBalancer>, pools: &Pools) -> GatewayStatus {
    let Some(cfg) = &e.desired else {
        return e.obj.status.clone();
    };
    let egress = match &cfg.egress {
        EgressMode::Public { .. } => e
            .prefix
            .as_ref()
            .and_then(|p| p.prefix)
            .map(EgressAddresses::Prefix),
        EgressMode::Private if e.nodes.is_empty() => None,
        EgressMode::Private => Some(EgressAddresses::Private(
            e.nodes.iter().map(|n| n.secondary_ip).collect(),
        )),
    };
    let pool_uid = e.pool.map(|p| pools.list[p].info.uid.as_str());
    let frontend_ip = lb.and_then(|lb| {
        lb.frontends
            .iter()
            .find(|f| pool_uid.is_some_and(|u| same_name(&f.name, u)))
            .and_then(|f| f.private_ip)
    });
    let server = match (frontend_ip, e.port, &e.key) {
        (Some(ip), Some(port), Some(key)) => Some(ServerProfile {
            ip,
            port,
            public_key: key.public_key.clone(),
            key_secret: key.secret.clone(),
        }),
        _ => None,
    };
    GatewayStatus { egress, server }
}
