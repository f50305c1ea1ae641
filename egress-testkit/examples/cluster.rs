//! Starts a local test cluster by hand, or measures one.
//!
//! ```text
//! eval "$(bash scripts/setup.sh)"
//! cargo run -p egress-testkit --example cluster -- --workers 2 --gateways 1
//!     # prints the kubeconfig and the node directories, runs until Ctrl-C;
//!     # --image TAR (from scripts/mkimage.sh) imports an image on every node
//! cargo run -p egress-testkit --example cluster -- --figures
//!     # start-up time, pod create to Running, memory per node; then exits
//! ```
//!
//! Needs root. Everything is torn down on exit, including on Ctrl-C.
#![allow(clippy::print_stdout, reason = "a harness that reports to its user")]

use std::time::{Duration, Instant};

use egress_testkit::cluster::{BUSYBOX_IMAGE, Cluster};

struct Args {
    workers: u8,
    gateways: u8,
    figures: bool,
    images: Vec<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        workers: 2,
        gateways: 1,
        figures: false,
        images: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut count = |what: &str| -> Result<u8, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number from 0 to 200"))
        };
        match arg.as_str() {
            "--workers" => args.workers = count("--workers")?,
            "--gateways" => args.gateways = count("--gateways")?,
            "--figures" => args.figures = true,
            "--image" => args.images.push(
                it.next()
                    .ok_or("--image needs an OCI image tarball (scripts/mkimage.sh)")?
                    .into(),
            ),
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: cluster [--workers N] [--gateways N] [--image TAR]... [--figures]"
                ));
            }
        }
    }
    Ok(args)
}

fn pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: '{BUSYBOX_IMAGE}', imagePullPolicy: Never, command: [sleep, '3600']}}
"
    )
}

fn mb(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss, reason = "display only")]
    let mb = bytes as f64 / 1_048_576.0;
    format!("{mb:.0} MB")
}

async fn figures(cluster: &Cluster, started: Duration) -> Result<(), egress_testkit::Error> {
    let nodes = cluster.node_names();
    println!(
        "cluster start to all {} nodes Ready: {:.2} s",
        nodes.len(),
        started.as_secs_f64()
    );
    for node in cluster.nodes_with_role(egress_testkit::cluster::Role::Worker) {
        let name = format!("probe-{node}");
        let t = Instant::now();
        cluster.apply(&pod(&name, &node)).await?;
        cluster
            .wait_pod_running("default", &name, Duration::from_mins(1))
            .await?;
        println!(
            "pod create to Running on {node}: {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    if let Some(node) = nodes.first() {
        let t = Instant::now();
        let mut all = String::new();
        for i in 0..10 {
            all.push_str(&pod(&format!("batch-{i}"), node));
            all.push_str("---\n");
        }
        cluster.apply(&all).await?;
        for i in 0..10 {
            cluster
                .wait_pod_running("default", &format!("batch-{i}"), Duration::from_mins(2))
                .await?;
        }
        println!(
            "10 pods at once on {node}, create to all Running: {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    println!(
        "memory (RSS) of the control plane (etcd, apiserver, controller-manager, scheduler): {}",
        mb(cluster.control_plane_rss_bytes())
    );
    println!("memory (RSS) per node:");
    for node in &nodes {
        let by_process = cluster.node_rss_by_process(node)?;
        let detail: Vec<String> = by_process
            .iter()
            .map(|(name, bytes)| format!("{name} {}", mb(*bytes)))
            .collect();
        println!(
            "  {node}: {} total ({})",
            mb(cluster.node_rss_bytes(node)?),
            detail.join(", ")
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let t = Instant::now();
    let mut builder = Cluster::builder()
        .workers(args.workers)
        .gateways(args.gateways);
    for image in &args.images {
        builder = builder.image(image);
    }
    let cluster = builder.start().await?;
    let started = t.elapsed();
    if args.figures {
        return Ok(figures(&cluster, started).await?);
    }
    println!("cluster Ready in {:.2} s", started.as_secs_f64());
    println!(
        "kubectl:   {} --kubeconfig {} get nodes -o wide",
        egress_testkit::tools::k8s_binary("kubectl")?.display(),
        cluster.kubeconfig_path().display()
    );
    println!(
        "logs:      {}/control-plane/*.log, {}/<node>/{{kubelet,containerd,node}}.log",
        cluster.dir().display(),
        cluster.dir().display()
    );
    for node in cluster.node_names() {
        println!(
            "{node}: ip {}, pods {}, netns {}, cni {} (its /etc/cni/net.d)",
            cluster.node_ip(&node)?,
            cluster.pod_cidr(&node)?,
            cluster.node_netns(&node)?.name(),
            cluster.cni_conf_dir(&node)?.display(),
        );
    }
    println!("Ctrl-C tears the cluster down.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
