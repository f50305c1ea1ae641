use std::sync::Mutex;

use futures::executor::block_on;
use proptest::prelude::*;

use super::*;
use crate::FailureKind;
use crate::Layer;
use crate::model::{SecretRef, ServerProfile};
use crate::pod::{DEFAULT_KEEPALIVE, PodInputs, plan};
use crate::routes::{RouteInputs, RoutePlan};

fn tunnel(port: u16, key: &str, excl: &[&str]) -> PodTunnel {
    plan(&PodInputs {
        server: ServerProfile {
            ip: "10.0.0.4".parse().unwrap(),
            port,
            public_key: key.into(),
            key_secret: SecretRef {
                namespace: "sys".into(),
                name: "sgw-u".into(),
            },
        },
        routes: RoutePlan::new(&RouteInputs {
            mode: RouteMode::Gateway,
            exclude_cidrs: excl.iter().map(|s| s.parse().unwrap()).collect(),
            node_exceptions: vec!["169.254.169.254/32".parse().unwrap()],
            primary_gateway: Some("10.244.1.1".parse().unwrap()),
        }),
        primary_iface: "eth0".into(),
        primary_gateway: "10.244.1.1".parse().unwrap(),
        underlay_mtu: 1500,
        ipv6_egress: false,
        keepalive: Some(DEFAULT_KEEPALIVE),
    })
}

fn on(t: &PodTunnel, gateway: &str) -> Want {
    Want::On {
        tunnel: t.clone(),
        endpoint: EndpointSpec {
            gateway: gateway.into(),
            pod_ip: "10.244.1.5/32".parse().unwrap(),
            public_key: "pod-pk".into(),
        },
        status: EndpointStatus {
            gateway_endpoint: Some(t.peer.endpoint),
            egress_ip_prefix: Some("203.0.113.0/28".into()),
            mode: RouteMode::Gateway,
        },
    }
}

fn pod() -> PodRef {
    PodRef {
        namespace: "apps".into(),
        name: "web".into(),
    }
}

fn sandbox() -> Sandbox {
    Sandbox {
        container_id: "c1".into(),
        netns: "/var/run/netns/cni-1".into(),
        ifname: "eth0".into(),
    }
}

/// The pod's kernel and its PodEndpoint in memory, with every call
/// recorded and the calls named in `fail` failing (each once per entry).
#[derive(Default)]
struct World {
    kernel: Mutex<Have>,
    fail: Mutex<Vec<&'static str>>,
    calls: Mutex<Vec<&'static str>>,
    /// Whether routes were ever in the tunnel while the API's endpoint was
    /// not the one the routes' tunnel belongs to.
    blackholed: Mutex<bool>,
}

impl World {
    fn call(&self, name: &'static str) -> Result<(), Error> {
        self.calls.lock().unwrap().push(name);
        let mut fail = self.fail.lock().unwrap();
        if let Some(i) = fail.iter().position(|f| *f == name) {
            fail.remove(i);
            return Err(Error::adapter(
                Layer::Dataplane,
                name,
                FailureKind::Transient,
                std::io::Error::other("injected"),
            ));
        }
        Ok(())
    }

    fn check_invariant(&self) {
        let k = self.kernel.lock().unwrap();
        if k.routes.is_some() && k.endpoint.is_none() {
            *self.blackholed.lock().unwrap() = true;
        }
    }

    fn observe(&self) -> Have {
        self.kernel.lock().unwrap().clone()
    }
}

#[async_trait]
impl PodDataplane for World {
    async fn device(&self, _: &Sandbox) -> Result<Option<TunnelPeer>, Error> {
        self.call("device")?;
        Ok(self.kernel.lock().unwrap().device.clone())
    }
    async fn create_device(&self, _: &Sandbox, t: &PodTunnel, _: &str) -> Result<(), Error> {
        self.call("create_device")?;
        let mut k = self.kernel.lock().unwrap();
        k.device = Some(t.peer.clone());
        k.routes = None;
        Ok(())
    }
    async fn set_peer(&self, _: &Sandbox, t: &PodTunnel, _: &str) -> Result<(), Error> {
        self.call("set_peer")?;
        self.kernel.lock().unwrap().device = Some(t.peer.clone());
        Ok(())
    }
    async fn install_routes(
        &self,
        _: &Sandbox,
        _: Option<&PodTunnel>,
        to: &PodTunnel,
    ) -> Result<(), Error> {
        self.call("install_routes")?;
        self.kernel.lock().unwrap().routes = Some(to.clone());
        self.check_invariant();
        Ok(())
    }
    async fn remove(&self, _: &Sandbox, _: Option<&PodTunnel>) -> Result<(), Error> {
        self.call("remove")?;
        let mut k = self.kernel.lock().unwrap();
        k.device = None;
        k.routes = None;
        Ok(())
    }
}

#[async_trait]
impl EndpointStore for World {
    async fn write_endpoint(&self, _: &PodRef, spec: &EndpointSpec) -> Result<(), Error> {
        self.call("write_endpoint")?;
        self.kernel.lock().unwrap().endpoint = Some(spec.clone());
        Ok(())
    }
    async fn write_status(&self, _: &PodRef, status: &EndpointStatus) -> Result<(), Error> {
        self.call("write_status")?;
        self.kernel.lock().unwrap().status = Some(status.clone());
        Ok(())
    }
    async fn delete_endpoint(&self, _: &PodRef) -> Result<(), Error> {
        self.call("delete_endpoint")?;
        let mut k = self.kernel.lock().unwrap();
        k.endpoint = None;
        k.status = None;
        drop(k);
        self.check_invariant();
        Ok(())
    }
}

fn run(world: &World, want: &Want, have: &mut Have) -> Result<Vec<Step>, Error> {
    block_on(converge(
        world,
        world,
        &pod(),
        &sandbox(),
        "pod-private",
        want,
        have,
    ))
}

#[test]
fn a_new_pod_gets_device_then_endpoint_then_routes_then_status() {
    let w = World::default();
    let want = on(&tunnel(6000, "gw", &[]), "egress");
    let mut have = Have::default();
    run(&w, &want, &mut have).unwrap();
    assert_eq!(
        *w.calls.lock().unwrap(),
        [
            "create_device",
            "write_endpoint",
            "install_routes",
            "write_status"
        ]
    );
    assert!(have.satisfies(&want));
    assert_eq!(have, w.observe());
    // Nothing to do the second time.
    assert!(run(&w, &want, &mut have).unwrap().is_empty());
}

#[test]
fn a_failed_endpoint_write_leaves_the_pod_on_its_own_routes_and_is_retried() {
    let w = World::default();
    w.fail.lock().unwrap().push("write_endpoint");
    let want = on(&tunnel(6000, "gw", &[]), "egress");
    let mut have = Have::default();
    assert!(run(&w, &want, &mut have).is_err());
    // The device exists, but no route leads into it.
    assert!(have.device.is_some());
    assert!(!have.on_tunnel());
    assert_eq!(w.observe().routes, None);
    // The retry writes the endpoint and only then the routes.
    run(&w, &want, &mut have).unwrap();
    assert!(have.satisfies(&want));
    assert!(!*w.blackholed.lock().unwrap());
}

#[test]
fn a_gateway_change_writes_the_endpoint_before_moving_the_peer() {
    let w = World::default();
    let first = on(&tunnel(6000, "gw", &[]), "egress");
    let mut have = Have::default();
    run(&w, &first, &mut have).unwrap();
    w.calls.lock().unwrap().clear();
    let second = on(&tunnel(6001, "gw2", &["203.0.113.0/24"]), "other");
    run(&w, &second, &mut have).unwrap();
    assert_eq!(
        *w.calls.lock().unwrap(),
        [
            "write_endpoint",
            "set_peer",
            "install_routes",
            "write_status"
        ]
    );
    assert!(have.satisfies(&second));
}

#[test]
fn leaving_removes_the_tunnel_before_the_endpoint() {
    let w = World::default();
    let want = on(&tunnel(6000, "gw", &[]), "egress");
    let mut have = Have::default();
    run(&w, &want, &mut have).unwrap();
    w.calls.lock().unwrap().clear();
    run(&w, &Want::Off, &mut have).unwrap();
    assert_eq!(*w.calls.lock().unwrap(), ["remove", "delete_endpoint"]);
    assert_eq!(have, Have::default());
    assert!(!*w.blackholed.lock().unwrap());
}

#[test]
fn a_device_lost_behind_the_agents_back_is_made_again_with_its_routes() {
    let w = World::default();
    let want = on(&tunnel(6000, "gw", &[]), "egress");
    let mut have = Have::default();
    run(&w, &want, &mut have).unwrap();
    // Someone deleted wg0: observation says no device.
    w.kernel.lock().unwrap().device = None;
    w.kernel.lock().unwrap().routes = None;
    have.device = None;
    have.routes = None;
    w.calls.lock().unwrap().clear();
    run(&w, &want, &mut have).unwrap();
    assert_eq!(
        *w.calls.lock().unwrap(),
        ["create_device", "install_routes"]
    );
}

#[derive(Clone, Debug)]
enum Event {
    Want(u8),
    Fail(&'static str),
}

fn wants() -> Vec<Want> {
    vec![
        Want::Off,
        on(&tunnel(6000, "gw", &[]), "egress"),
        on(&tunnel(6001, "gw", &["203.0.113.0/24"]), "egress"),
        on(&tunnel(6002, "gw2", &[]), "other"),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0u8..4).prop_map(Event::Want),
        prop::sample::select(vec![
            "create_device",
            "set_peer",
            "install_routes",
            "remove",
            "write_endpoint",
            "write_status",
            "delete_endpoint",
        ])
        .prop_map(Event::Fail),
    ]
}

proptest! {
    /// Whatever the sequence of wanted states and failures, the pod's
    /// routes never lead into the tunnel while the API holds no endpoint,
    /// `have` never claims more than the world holds, and once failures stop
    /// one more pass reaches the wanted state.
    #[test]
    fn converge_is_safe_and_resumes_after_any_failure(events in prop::collection::vec(event(), 1..30)) {
        let w = World::default();
        let wants = wants();
        let mut want = Want::Off;
        let mut have = Have::default();
        for e in events {
            match e {
                Event::Want(i) => want = wants[usize::from(i)].clone(),
                Event::Fail(name) => w.fail.lock().unwrap().push(name),
            }
            let _ = run(&w, &want, &mut have);
            prop_assert_eq!(&have, &w.observe());
            prop_assert!(!*w.blackholed.lock().unwrap());
        }
        w.fail.lock().unwrap().clear();
        run(&w, &want, &mut have).unwrap();
        prop_assert!(have.satisfies(&want));
        prop_assert_eq!(&have, &w.observe());
    }
}
