//! What the user sees of a pass: standard conditions on the SGC and events,
//! both on transitions only.
//!
//! - `Ready`: `True` while the configuration serves (its status is complete),
//!   including while its latest spec cannot be applied: traffic still flows.
//!   `False` with reason `InvalidSpec`, `Provisioning`, `ReconcileError` or
//!   `Moving` otherwise.
//! - `Degraded`: `True` while a serving configuration's latest spec is not
//!   applied, with reason `InvalidSpec` (the message names the field) or
//!   `SpecNotApplied`/`ReconcileError` (something failed; retried).
//!
//! Events (events.k8s.io/v1) carry the same reasons, and are published only
//! when a verdict changes, never once per pass. Messages come from core's
//! errors, which never hold key material.

use std::error::Error as _;

use egress_core::Error as CoreError;
use egress_core::controller::{Outcome, PassReport};
use egress_core::model::ConfigId;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::cluster::{KubeCluster, kube_err};
use crate::crd::StaticGatewayConfiguration;

/// Longest condition message and event note (events allow 1 kB).
const MESSAGE_MAX: usize = 1000;

/// What the conditions of one configuration say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    ready: bool,
    reason: String,
    message: String,
    /// `Degraded=True` with this reason and message.
    degraded: Option<(String, String)>,
}

fn describe(errors: &[CoreError]) -> String {
    let mut out = String::new();
    for e in errors {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&e.to_string());
        let mut src = e.source();
        while let Some(s) = src {
            out.push_str(": ");
            out.push_str(&s.to_string());
            src = s.source();
        }
    }
    if out.len() > MESSAGE_MAX {
        let mut cut = MESSAGE_MAX - 3;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// A spec problem (as opposed to a call that failed).
fn is_spec_error(e: &CoreError) -> bool {
    !matches!(
        e,
        CoreError::Adapter { .. } | CoreError::Blocked { .. } | CoreError::Pool(_)
    )
}

const READY_MESSAGE: &str =
    "provisioned in Azure; status.egressIpPrefix and status.gatewayServerProfile are complete";

impl Verdict {
    pub(crate) fn invalid(errors: &[CoreError]) -> Self {
        Self {
            ready: false,
            reason: "InvalidSpec".into(),
            message: describe(errors),
            degraded: None,
        }
    }

    fn ready() -> Self {
        Self {
            ready: true,
            reason: "Provisioned".into(),
            message: READY_MESSAGE.into(),
            degraded: None,
        }
    }

    fn not_ready(reason: &str, message: String) -> Self {
        Self {
            ready: false,
            reason: reason.into(),
            message,
            degraded: None,
        }
    }

    fn degraded(reason: &str, message: String) -> Self {
        Self {
            degraded: Some((reason.into(), message)),
            ..Self::ready()
        }
    }

    /// The verdict for an outcome; `serving`: the status is complete.
    /// `None`: no condition to write (the object is going away).
    fn of(outcome: &Outcome, serving: bool) -> Option<Self> {
        Some(match outcome {
            Outcome::Ready => Self::ready(),
            Outcome::Pending => Self::not_ready(
                "Provisioning",
                "waiting for Azure to provide the gateway's addresses".into(),
            ),
            Outcome::Invalid(e) => Self::invalid(e),
            Outcome::Held(e) if e.iter().any(is_spec_error) => Self::degraded(
                "InvalidSpec",
                format!(
                    "serving the previously applied spec; the latest spec is rejected: {}",
                    describe(e)
                ),
            ),
            Outcome::Held(e) => Self::degraded(
                "SpecNotApplied",
                format!(
                    "serving the previously applied spec; the latest spec is not applied yet: {}",
                    describe(e)
                ),
            ),
            Outcome::Failed(e) if serving => Self::degraded("ReconcileError", describe(e)),
            Outcome::Failed(e) => Self::not_ready("ReconcileError", describe(e)),
            Outcome::Moving => Self::not_ready(
                "Moving",
                "moving to another gateway pool: the old pool is clean, the new one is provisioned next".into(),
            ),
            Outcome::Deleted | Outcome::DeletePending(_) => return None,
        })
    }

    /// The verdict the stored conditions express.
    fn from_conditions(conditions: &[Condition]) -> Option<Self> {
        let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
        let degraded = conditions
            .iter()
            .find(|c| c.type_ == "Degraded" && c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()));
        Some(Self {
            ready: ready.status == "True",
            reason: ready.reason.clone(),
            message: ready.message.clone(),
            degraded,
        })
    }

    /// The event for a change to this verdict.
    fn event(&self) -> Event {
        let (type_, reason, note) = match &self.degraded {
            Some((reason, message)) => (EventType::Warning, reason.clone(), message.clone()),
            None if self.ready => (EventType::Normal, self.reason.clone(), self.message.clone()),
            None if self.reason == "Provisioning" || self.reason == "Moving" => {
                (EventType::Normal, self.reason.clone(), self.message.clone())
            }
            None => (
                EventType::Warning,
                self.reason.clone(),
                self.message.clone(),
            ),
        };
        Event {
            type_,
            reason,
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    fn conditions(&self, previous: &[Condition], generation: Option<i64>) -> Vec<Condition> {
        let now = Time(Timestamp::now());
        let since = |type_: &str, status: &str| {
            previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone())
        };
        let ready_status = if self.ready { "True" } else { "False" };
        let (d_status, d_reason, d_message) = match &self.degraded {
            Some((r, m)) => ("True", r.clone(), m.clone()),
            None => (
                "False",
                "AsSpecified".to_string(),
                "the latest spec is applied".to_string(),
            ),
        };
        vec![
            Condition {
                type_: "Ready".into(),
                status: ready_status.into(),
                reason: self.reason.clone(),
                message: self.message.clone(),
                last_transition_time: since("Ready", ready_status),
                observed_generation: generation,
            },
            Condition {
                type_: "Degraded".into(),
                status: d_status.into(),
                reason: d_reason,
                message: d_message,
                last_transition_time: since("Degraded", d_status),
                observed_generation: generation,
            },
        ]
    }
}

impl KubeCluster {
    /// Writes the conditions and events for a pass's outcomes, where they
    /// changed.
    pub async fn report(&self, report: &PassReport) -> Vec<CoreError> {
        let mut errors = Vec::new();
        for (id, outcome) in &report.outcomes {
            match outcome {
                Outcome::DeletePending(e) => {
                    self.delete_pending(id, e).await;
                    continue;
                }
                Outcome::Deleted => {
                    self.verdicts
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&id.uid);
                    continue;
                }
                _ => {}
            }
            let serving = self
                .sgc(id)
                .is_some_and(|s| super::convert::sgc_status(s.status.as_ref()).is_ready());
            if let Some(v) = Verdict::of(outcome, serving)
                && let Err(e) = self.apply_verdict(id, &v).await
            {
                errors.push(e);
            }
        }
        errors
    }

    /// The verdict for a spec the pass rejects: the same one [`Self::report`]
    /// writes for the pass's outcome, so the two never alternate.
    pub(super) async fn rejected(
        &self,
        id: &ConfigId,
        errors: &[CoreError],
    ) -> Result<(), CoreError> {
        let serving = self
            .sgc(id)
            .is_some_and(|s| super::convert::sgc_status(s.status.as_ref()).is_ready());
        let outcome = if serving {
            Outcome::Held(errors.to_vec())
        } else {
            Outcome::Invalid(errors.to_vec())
        };
        match Verdict::of(&outcome, serving) {
            Some(v) => self.apply_verdict(id, &v).await,
            None => Ok(()),
        }
    }

    fn sgc(&self, id: &ConfigId) -> Option<std::sync::Arc<StaticGatewayConfiguration>> {
        self.stores
            .sgc
            .get(&ObjectRef::new(&id.name).within(&id.namespace))
            .filter(|s| s.uid().as_deref() == Some(id.uid.as_str()))
    }

    fn last_verdict(&self, id: &ConfigId) -> Option<Verdict> {
        let known = self
            .verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id.uid)
            .cloned();
        known.or_else(|| {
            let sgc = self.sgc(id)?;
            Verdict::from_conditions(sgc.status.as_ref()?.conditions.as_deref()?)
        })
    }

    fn remember(&self, id: &ConfigId, v: Verdict) {
        self.verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.uid.clone(), v);
    }

    fn reference(id: &ConfigId) -> ObjectReference {
        ObjectReference {
            api_version: Some(StaticGatewayConfiguration::api_version(&()).into_owned()),
            kind: Some(StaticGatewayConfiguration::kind(&()).into_owned()),
            name: Some(id.name.clone()),
            namespace: Some(id.namespace.clone()),
            uid: Some(id.uid.clone()),
            ..ObjectReference::default()
        }
    }

    /// Writes `v` as conditions and publishes its event, unless it is what
    /// the conditions already say.
    pub(super) async fn apply_verdict(&self, id: &ConfigId, v: &Verdict) -> Result<(), CoreError> {
        if self.last_verdict(id).as_ref() == Some(v) {
            return Ok(());
        }
        let sgc = self.sgc(id);
        let previous = sgc
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let generation = sgc.as_ref().and_then(|s| s.meta().generation);
        let patch = json!({
            "metadata": {"uid": id.uid},
            "status": {"conditions": v.conditions(&previous, generation)},
        });
        let api: Api<StaticGatewayConfiguration> =
            Api::namespaced(self.client.clone(), &id.namespace);
        self.count("write_conditions");
        api.patch_status(&id.name, &Self::params(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err("write_conditions", id.to_string()))?;
        self.remember(id, v.clone());
        let event = v.event();
        tracing::info!(config = %id, reason = %event.reason, ready = v.ready, "condition changed");
        self.count("event");
        if let Err(e) = self.recorder.publish(&event, &Self::reference(id)).await {
            // An event is informative only: the condition holds the state.
            tracing::warn!(config = %id, error = %e, "could not publish an event");
        }
        Ok(())
    }

    async fn delete_pending(&self, id: &ConfigId, errors: &[CoreError]) {
        let v = Verdict::not_ready("DeleteError", describe(errors));
        if self.last_verdict(id).as_ref() == Some(&v) {
            return;
        }
        self.remember(id, v.clone());
        self.count("event");
        if let Err(e) = self
            .recorder
            .publish(&v.event(), &Self::reference(id))
            .await
        {
            tracing::warn!(config = %id, error = %e, "could not publish an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_invalid_spec_stays_ready_and_is_degraded_naming_the_field() {
        let e = CoreError::PrefixCapacity {
            field: "spec.gatewayVmssProfile.publicIpPrefixSize",
            len: 31,
            capacity: 2,
            nodes: 4,
            suggested: "30".into(),
        };
        let v = Verdict::of(&Outcome::Held(vec![e.clone()]), true).unwrap_or_else(Verdict::ready);
        assert!(v.ready);
        let (reason, message) = v.degraded.clone().unwrap_or_default();
        assert_eq!(reason, "InvalidSpec");
        assert!(message.contains("spec.gatewayVmssProfile.publicIpPrefixSize"));
        let c = v.conditions(&[], Some(2));
        assert_eq!(Verdict::from_conditions(&c), Some(v));
        let invalid = Verdict::of(&Outcome::Invalid(vec![e]), false).unwrap_or_else(Verdict::ready);
        assert!(!invalid.ready);
        assert!(invalid.message.contains("publicIpPrefixSize"));
        assert_eq!(invalid.event().type_, EventType::Warning);
    }
}
