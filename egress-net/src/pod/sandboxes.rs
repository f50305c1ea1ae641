//! [`egress_core::agent::PodDataplane`] on Linux: the node agent's pod
//! devices, one per sandbox, with the operations of [`super`] behind the
//! core's seam.
//!
//! The adapter holds each sandbox's [`PodLink`] (a userspace device lives as
//! long as its handle) and the peer it last gave it. What it reports comes
//! from the kernel: a device whose `wg0` has gone from the sandbox, or whose
//! process has stopped, is reported absent and forgotten, and a device whose
//! key or endpoint differs from the peer set is reported with what it has, so
//! the core sets the peer again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use egress_core::agent::{PodDataplane, Sandbox};
use egress_core::pod::{POD_INTERFACE, PodTunnel, TunnelPeer};
use egress_core::{FailureKind, Layer};

use super::{CounterReader, PodLink};
use crate::Error;
use crate::netns::{NsRef, NsWorker};
use crate::rtnl::Rtnl;
use crate::wgctl::Control;
use crate::wireguard::Backend;

/// One sandbox's device and the peer it was given.
struct Held {
    link: PodLink,
    peer: TunnelPeer,
}

/// The node's pod devices.
pub struct PodDevices {
    node: NsWorker,
    backend: Backend,
    held: Mutex<HashMap<String, Held>>,
}

impl std::fmt::Debug for PodDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodDevices")
            .field("devices", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// The node-side name of a sandbox's device: unique per sandbox (a hash of
/// its id), at most 15 bytes.
pub fn node_name(container_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("eg-{:011x}", h & 0xfff_ffff_ffff)
}

fn core(op: &'static str, e: Error) -> egress_core::Error {
    let kind = match &e {
        Error::Netns { .. } | Error::MissingLink(_) => FailureKind::NotFound,
        Error::Key { .. } | Error::InterfaceName(_) => FailureKind::Permanent,
        _ => FailureKind::Transient,
    };
    egress_core::Error::adapter(Layer::Dataplane, op, kind, e)
}

async fn enter(netns: &str) -> Result<NsWorker, Error> {
    NsWorker::start(NsRef::Path(PathBuf::from(netns))).await
}

impl PodDevices {
    /// Devices made in `node` (the agent's own namespace) with `backend`.
    pub fn new(node: NsWorker, backend: Backend) -> Self {
        Self {
            node,
            backend,
            held: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The sandboxes that have a device, and where to read its counters.
    pub fn counter_readers(&self, sandboxes: &[Sandbox]) -> Vec<(String, CounterReader)> {
        let held = self.lock();
        sandboxes
            .iter()
            .filter_map(|s| {
                let h = held.get(&s.container_id)?;
                Some((
                    s.container_id.clone(),
                    h.link.counter_reader(Path::new(&s.netns)),
                ))
            })
            .collect()
    }

    /// How many devices the agent holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets the device of a sandbox whose namespace is gone (a userspace
    /// device's process is stopped by the drop).
    fn forget(&self, container_id: &str) {
        drop(self.lock().remove(container_id));
    }

    async fn observe(&self, sandbox: &Sandbox) -> Result<Option<TunnelPeer>, Error> {
        let Some((peer, pid)) = self
            .lock()
            .get(&sandbox.container_id)
            .map(|h| (h.peer.clone(), h.link.pid()))
        else {
            return Ok(None);
        };
        if !Path::new(&sandbox.netns).exists() {
            self.forget(&sandbox.container_id);
            return Ok(None);
        }
        let worker = enter(&sandbox.netns).await?;
        let present = Rtnl::new(worker.rtnl().clone(), Arc::default())
            .link(POD_INTERFACE)
            .await?
            .is_some();
        let running = pid.is_none_or(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !present || !running {
            self.forget(&sandbox.container_id);
            return Ok(None);
        }
        let (control, name) = {
            let held = self.lock();
            let Some(h) = held.get(&sandbox.container_id) else {
                return Ok(None);
            };
            (h.link.control(), h.link.node_name().to_string())
        };
        // A userspace device answers on its control socket wherever it is;
        // a kernel device is asked in the pod's namespace.
        let host = match control {
            Control::Uapi => crate::wgctl::read(Control::Uapi, &name)?,
            Control::Kernel => {
                worker
                    .run(|| crate::wgctl::read(Control::Kernel, POD_INTERFACE))
                    .await??
            }
        };
        let Some(actual) = host.peers.values().next() else {
            // A device without a peer: report a peer that matches nothing.
            return Ok(Some(TunnelPeer {
                public_key: String::new(),
                ..peer
            }));
        };
        if actual.public_key.to_string() == peer.public_key
            && actual.endpoint == Some(peer.endpoint)
        {
            Ok(Some(peer))
        } else {
            Ok(Some(TunnelPeer {
                public_key: actual.public_key.to_string(),
                endpoint: actual.endpoint.unwrap_or(peer.endpoint),
                ..peer
            }))
        }
    }
}

#[async_trait]
impl PodDataplane for PodDevices {
    async fn device(&self, sandbox: &Sandbox) -> Result<Option<TunnelPeer>, egress_core::Error> {
        self.observe(sandbox).await.map_err(|e| core("device", e))
    }

    async fn create_device(
        &self,
        sandbox: &Sandbox,
        tunnel: &PodTunnel,
        private_key: &str,
    ) -> Result<(), egress_core::Error> {
        let worker = enter(&sandbox.netns)
            .await
            .map_err(|e| core("create_device", e))?;
        // A device held for the sandbox is replaced (its `wg0` is removed by
        // `create` before the new one is moved in).
        let old = self.lock().remove(&sandbox.container_id);
        drop(old);
        let link = super::create(
            &self.node,
            &worker,
            self.backend.clone(),
            &node_name(&sandbox.container_id),
            tunnel,
            private_key,
        )
        .await
        .map_err(|e| core("create_device", e))?;
        self.lock().insert(
            sandbox.container_id.clone(),
            Held {
                link,
                peer: tunnel.peer.clone(),
            },
        );
        Ok(())
    }

    async fn set_peer(
        &self,
        sandbox: &Sandbox,
        tunnel: &PodTunnel,
        private_key: &str,
    ) -> Result<(), egress_core::Error> {
        let worker = enter(&sandbox.netns)
            .await
            .map_err(|e| core("set_peer", e))?;
        let taken = self.lock().remove(&sandbox.container_id);
        let Some(mut held) = taken else {
            return Err(core(
                "set_peer",
                Error::MissingLink(node_name(&sandbox.container_id)),
            ));
        };
        let done = super::set_peer(&held.link, &worker, tunnel, private_key).await;
        if done.is_ok() {
            held.peer = tunnel.peer.clone();
        }
        self.lock().insert(sandbox.container_id.clone(), held);
        done.map_err(|e| core("set_peer", e))
    }

    async fn install_routes(
        &self,
        sandbox: &Sandbox,
        from: Option<&PodTunnel>,
        to: &PodTunnel,
    ) -> Result<(), egress_core::Error> {
        let worker = enter(&sandbox.netns)
            .await
            .map_err(|e| core("install_routes", e))?;
        super::apply_routes(&worker, from, to)
            .await
            .map_err(|e| core("install_routes", e))
    }

    async fn remove(
        &self,
        sandbox: &Sandbox,
        installed: Option<&PodTunnel>,
    ) -> Result<(), egress_core::Error> {
        let link = self.lock().remove(&sandbox.container_id).map(|h| h.link);
        if !Path::new(&sandbox.netns).exists() {
            // The sandbox is gone, and with it wg0 and every route.
            drop(link);
            return Ok(());
        }
        let worker = match enter(&sandbox.netns).await {
            Ok(w) => w,
            Err(Error::Netns { .. }) => return Ok(()),
            Err(e) => return Err(core("remove", e)),
        };
        super::remove(&worker, link, installed)
            .await
            .map_err(|e| core("remove", e))
    }
}
