//! The node agent's decisions for one pod, as data: what the pod should
//! have ([`Want`]), what it has ([`Have`], observed from the kernel and the
//! API), and the next [`Step`] that brings one closer to the other.
//!
//! The order of steps is the safety argument:
//!
//! - on the way onto the tunnel, the device comes first, then the
//!   PodEndpoint (so the gateway learns the pod's key), and the pod's routes
//!   go into the tunnel only once the endpoint the API holds is the one
//!   wanted. A failed endpoint write therefore leaves the pod on its own
//!   path (it egresses with its own address for a while), never with a
//!   default route into a tunnel the gateway does not know;
//! - on the way off, the routes and the device go first (the pod's own
//!   default is put back before `wg0` is removed), then the endpoint.
//!
//! Every step is idempotent and [`converge`] re-plans after each one, so an
//! agent that fails halfway simply resumes from what it observes next time.

use std::net::SocketAddr;

use async_trait::async_trait;
use ipnet::IpNet;

use crate::Error;
use crate::pod::{PodTunnel, TunnelPeer};
use crate::routes::RouteMode;

/// A pod, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRef {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The spec of a pod's PodEndpoint (upstream's three fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    /// The configuration the pod uses.
    pub gateway: String,
    /// The pod's address as a host prefix.
    pub pod_ip: IpNet,
    /// The pod's WireGuard public key.
    pub public_key: String,
}

/// The status the agent writes on a PodEndpoint: the pod's effective egress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    /// The gateway endpoint the pod's tunnel uses.
    pub gateway_endpoint: Option<SocketAddr>,
    /// The configuration's egress addresses.
    pub egress_ip_prefix: Option<String>,
    /// The configuration's default route.
    pub mode: RouteMode,
}

/// What a pod should have.
#[derive(Clone, Debug, PartialEq, Eq)]
// One value per pod, built once per pass: boxing the tunnel would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Want {
    /// Its own routes only, no device, no PodEndpoint: the pod did not opt
    /// in, its configuration is gone or not published yet, or it finished.
    Off,
    /// On the tunnel.
    On {
        /// The device, peer and routes.
        tunnel: PodTunnel,
        /// Its PodEndpoint.
        endpoint: EndpointSpec,
        /// The status on its PodEndpoint.
        status: EndpointStatus,
    },
}

/// What a pod has, as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Have {
    /// `wg0` is in the pod with this peer (`None`: no device).
    pub device: Option<TunnelPeer>,
    /// The tunnel whose routes and reply path are installed (`None`: the
    /// pod's own routes). Only meaningful while the device exists.
    pub routes: Option<PodTunnel>,
    /// The pod's PodEndpoint as the API holds it.
    pub endpoint: Option<EndpointSpec>,
    /// Its status as the API holds it.
    pub status: Option<EndpointStatus>,
}

impl Have {
    /// Whether the pod is fully on the tunnel `want` describes.
    pub fn satisfies(&self, want: &Want) -> bool {
        next_step(want, self).is_none()
    }

    /// Whether the pod's traffic goes into its tunnel.
    pub fn on_tunnel(&self) -> bool {
        self.device.is_some() && self.routes.is_some()
    }
}

/// One idempotent step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create `wg0` with the wanted peer (replacing a stray one).
    CreateDevice(PodTunnel),
    /// Give the existing device the wanted peer (a new gateway address,
    /// port or key).
    SetPeer(PodTunnel),
    /// Create or update the PodEndpoint.
    WriteEndpoint(EndpointSpec),
    /// Install the wanted routes and reply path, replacing `from`.
    InstallRoutes {
        /// What is installed now.
        from: Option<PodTunnel>,
        /// What to install.
        to: PodTunnel,
    },
    /// Write the PodEndpoint's status.
    WriteStatus(EndpointStatus),
    /// Put the pod's own default route back and remove `wg0`, its routes and
    /// the reply path (`installed`: what was installed, if known).
    RemoveTunnel {
        /// The tunnel whose routes are installed.
        installed: Option<PodTunnel>,
    },
    /// Delete the PodEndpoint.
    DeleteEndpoint,
}

/// The next step from `have` towards `want`, or `None` when they agree.
pub fn next_step(want: &Want, have: &Have) -> Option<Step> {
    match want {
        Want::Off => {
            if have.device.is_some() || have.routes.is_some() {
                Some(Step::RemoveTunnel {
                    installed: have.routes.clone(),
                })
            } else if have.endpoint.is_some() {
                Some(Step::DeleteEndpoint)
            } else {
                None
            }
        }
        Want::On {
            tunnel,
            endpoint,
            status,
        } => {
            let Some(peer) = &have.device else {
                return Some(Step::CreateDevice(tunnel.clone()));
            };
            if have.endpoint.as_ref() != Some(endpoint) {
                return Some(Step::WriteEndpoint(endpoint.clone()));
            }
            if *peer != tunnel.peer {
                return Some(Step::SetPeer(tunnel.clone()));
            }
            if have.routes.as_ref() != Some(tunnel) {
                return Some(Step::InstallRoutes {
                    from: have.routes.clone(),
                    to: tunnel.clone(),
                });
            }
            if have.status.as_ref() != Some(status) {
                return Some(Step::WriteStatus(status.clone()));
            }
            None
        }
    }
}

impl Have {
    /// What the pod has after `step` succeeded.
    pub fn after(&mut self, step: &Step) {
        match step {
            Step::CreateDevice(t) => {
                self.device = Some(t.peer.clone());
                // A new device carries no routes of ours.
                self.routes = None;
            }
            Step::SetPeer(t) => self.device = Some(t.peer.clone()),
            Step::WriteEndpoint(e) => self.endpoint = Some(e.clone()),
            Step::InstallRoutes { to, .. } => self.routes = Some(to.clone()),
            Step::WriteStatus(s) => self.status = Some(s.clone()),
            Step::RemoveTunnel { .. } => {
                self.device = None;
                self.routes = None;
            }
            Step::DeleteEndpoint => {
                self.endpoint = None;
                self.status = None;
            }
        }
    }
}

/// The sandbox a pod's tunnel lives in, as the agent bound it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    /// The runtime's container ID of the sandbox.
    pub container_id: String,
    /// Path of the sandbox's network namespace.
    pub netns: String,
    /// The pod's primary interface.
    pub ifname: String,
}

/// The kernel side of a pod's tunnel (the Linux adapter in `egress-net`).
#[async_trait]
pub trait PodDataplane: Send + Sync {
    /// Whether `wg0` is in the sandbox, and with which peer (`Ok(None)`: no
    /// device, or a device the agent did not make).
    async fn device(&self, sandbox: &Sandbox) -> Result<Option<TunnelPeer>, Error>;
    /// Creates `wg0` with `tunnel`'s peer and MTU, keyed by `private_key`.
    async fn create_device(
        &self,
        sandbox: &Sandbox,
        tunnel: &PodTunnel,
        private_key: &str,
    ) -> Result<(), Error>;
    /// Sets the device's peer.
    async fn set_peer(
        &self,
        sandbox: &Sandbox,
        tunnel: &PodTunnel,
        private_key: &str,
    ) -> Result<(), Error>;
    /// Installs `to`'s routes and reply path, replacing `from`'s.
    async fn install_routes(
        &self,
        sandbox: &Sandbox,
        from: Option<&PodTunnel>,
        to: &PodTunnel,
    ) -> Result<(), Error>;
    /// Restores the pod's own routes and removes `wg0` and the reply path;
    /// what is already gone (the sandbox included) is not an error.
    async fn remove(&self, sandbox: &Sandbox, installed: Option<&PodTunnel>) -> Result<(), Error>;
}

/// The API side: the pod's PodEndpoint (the Kubernetes adapter).
#[async_trait]
pub trait EndpointStore: Send + Sync {
    /// Creates or updates the pod's PodEndpoint.
    async fn write_endpoint(&self, pod: &PodRef, spec: &EndpointSpec) -> Result<(), Error>;
    /// Writes its status.
    async fn write_status(&self, pod: &PodRef, status: &EndpointStatus) -> Result<(), Error>;
    /// Deletes it; absent is success.
    async fn delete_endpoint(&self, pod: &PodRef) -> Result<(), Error>;
}

/// Most steps a pod can need (remove, then create, endpoint, peer, routes,
/// status): a bound on [`converge`]'s loop, in case an adapter reports
/// success without effect.
const MAX_STEPS: usize = 8;

/// Takes steps from `have` towards `want` until they agree, updating `have`
/// after each success. On a failure `have` holds what was done, so the next
/// call resumes. Returns the steps taken.
pub async fn converge<D, E>(
    dataplane: &D,
    endpoints: &E,
    pod: &PodRef,
    sandbox: &Sandbox,
    private_key: &str,
    want: &Want,
    have: &mut Have,
) -> Result<Vec<Step>, Error>
where
    D: PodDataplane + ?Sized,
    E: EndpointStore + ?Sized,
{
    let mut taken = Vec::new();
    while let Some(step) = next_step(want, have) {
        if taken.len() >= MAX_STEPS {
            break;
        }
        match &step {
            Step::CreateDevice(t) => dataplane.create_device(sandbox, t, private_key).await?,
            Step::SetPeer(t) => dataplane.set_peer(sandbox, t, private_key).await?,
            Step::WriteEndpoint(e) => endpoints.write_endpoint(pod, e).await?,
            Step::InstallRoutes { from, to } => {
                dataplane.install_routes(sandbox, from.as_ref(), to).await?;
            }
            Step::WriteStatus(s) => endpoints.write_status(pod, s).await?,
            Step::RemoveTunnel { installed } => {
                dataplane.remove(sandbox, installed.as_ref()).await?;
            }
            Step::DeleteEndpoint => endpoints.delete_endpoint(pod).await?,
        }
        have.after(&step);
        taken.push(step);
    }
    Ok(taken)
}

#[cfg(test)]
mod tests;
