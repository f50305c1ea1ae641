//! Leader election on a `coordination.k8s.io/v1` Lease, with the semantics
//! of client-go's lease lock, so an upstream controller holding the same
//! Lease (`0a299682.microsoft.com`) and this one exclude each other during a
//! migration.
//!
//! - A candidate takes the Lease when it is free, released, or when its
//!   holder has not renewed it for `duration`, measured on the candidate's
//!   own clock from when it last saw the Lease change (no clock skew).
//! - Every write carries the resource version it read: two candidates
//!   cannot both win.
//! - The leader renews every `retry_period`. When it has not renewed for
//!   `renew_deadline` (shorter than `duration`), or reads that someone else
//!   holds the Lease, it stops leading at once: before another candidate
//!   can take over.
//! - On shutdown the leader releases the Lease (empty holder), so a
//!   successor takes over at its next try instead of after `duration`.
//!
//! Written here rather than taken from a crate: the maintained ones
//! (`kube-leader-election`, `kube-lease-manager`, `kubert`) target older
//! kube releases than the 5.x this workspace uses, and the lock is short.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

/// Leader-election settings.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    pub renew_deadline: Duration,
    /// Time between tries.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Checks that the timings make sense together.
    pub fn check(&self) -> Result<(), String> {
        if self.renew_deadline >= self.duration {
            return Err(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the retry period ({:?}) must be shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }
}

/// What a try found.
#[derive(Debug, PartialEq, Eq)]
enum Try {
    /// We hold the Lease (taken or renewed).
    Held,
    /// Someone else holds it.
    Other,
    /// The call failed; nothing is known.
    Unknown,
}

/// A participant in the election.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The holder and renew time last seen, and when we saw them change.
    observed: Option<(Option<String>, Option<Timestamp>, Instant)>,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl Elector {
    /// A candidate for the Lease `settings` names.
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    async fn try_once(&mut self) -> Try {
        let me = self.settings.identity.clone();
        let lease = match self.api.get_opt(&self.settings.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the leader-election lease");
                return Try::Unknown;
            }
        };
        let Some(mut lease) = lease else {
            let fresh = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(secs(self.settings.duration)),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &fresh).await {
                Ok(_) => Try::Held,
                Err(kube::Error::Api(s)) if s.code == 409 => Try::Other,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create the leader-election lease");
                    Try::Unknown
                }
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let renewed = spec.renew_time.as_ref().map(|t| t.0);
        let seen = (holder.clone(), renewed);
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(h, r, _)| (h.clone(), *r) != seen);
        if changed {
            self.observed = Some((seen.0, seen.1, Instant::now()));
        }
        let ours = holder.as_deref() == Some(me.as_str());
        if !ours && let Some(other) = &holder {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.settings.duration, Duration::from_secs);
            let since = self
                .observed
                .as_ref()
                .map_or_else(Instant::now, |(_, _, at)| *at);
            if since.elapsed() < duration {
                tracing::debug!(holder = %other, "the lease is held by another replica");
                return Try::Other;
            }
        }
        let mut spec = spec;
        if !ours {
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(me);
        }
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(secs(self.settings.duration));
        lease.spec = Some(spec);
        // `replace` sends the resource version read above: a concurrent
        // writer makes this fail with 409 instead of both winning.
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(l) => {
                let spec = l.spec.unwrap_or_default();
                self.observed = Some((
                    spec.holder_identity,
                    spec.renew_time.map(|t| t.0),
                    Instant::now(),
                ));
                Try::Held
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Try::Other,
            Err(e) => {
                tracing::warn!(error = %e, lease = %lease.name_any(), "cannot write the leader-election lease");
                Try::Unknown
            }
        }
    }

    /// Runs the election until `stop` turns true, publishing whether this
    /// replica leads on `leading`. Releases the Lease on the way out if it
    /// holds it.
    pub async fn run(mut self, leading: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        let s = self.settings.clone();
        let mut last_renew: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            // A call that hangs must not keep a leader past its deadline.
            let result = tokio::time::timeout(s.retry_period, self.try_once())
                .await
                .unwrap_or(Try::Unknown);
            let is_leader = *leading.borrow();
            match (result, is_leader) {
                (Try::Held, false) => {
                    tracing::info!(identity = %s.identity, lease = %s.name, "became the leader");
                    last_renew = Some(Instant::now());
                    leading.send_replace(true);
                }
                (Try::Held, true) => last_renew = Some(Instant::now()),
                (Try::Other, true) => {
                    tracing::warn!(identity = %s.identity, "another replica holds the lease: stopped leading");
                    leading.send_replace(false);
                    last_renew = None;
                }
                (Try::Unknown, true)
                    if last_renew.is_none_or(|t| t.elapsed() >= s.renew_deadline) =>
                {
                    tracing::warn!(identity = %s.identity, "could not renew the lease within the renew deadline: stopped leading");
                    leading.send_replace(false);
                    last_renew = None;
                }
                _ => {}
            }
            // A leader that cannot renew must notice the deadline on time,
            // even when the API server does not answer: bound the wait.
            let wait = match last_renew {
                Some(t) if *leading.borrow() => s
                    .retry_period
                    .min(s.renew_deadline.saturating_sub(t.elapsed())),
                _ => s.retry_period,
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        if *leading.borrow() {
            leading.send_replace(false);
            self.release().await;
        }
    }

    /// Gives the Lease up: empty holder, as client-go releases it.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await else {
            return;
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(identity = %self.settings.identity, "released the lease"),
            Err(e) => tracing::warn!(error = %e, "could not release the lease"),
        }
    }
}
