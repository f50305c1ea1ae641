//! `egressctl`: operator tooling for the egress gateway.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about = "Operator tooling for the static egress gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the CRD manifests from the Rust types.
    Crds {
        /// Write one YAML file per CRD into this directory.
        #[arg(long, conflicts_with = "check")]
        out: Option<PathBuf>,
        /// Fail unless this directory holds exactly the generated manifests.
        #[arg(long)]
        check: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Crds {
            out: Some(dir),
            check: None,
        } => {
            for file in egress_k8s::generate::write(&dir)
                .with_context(|| format!("writing CRDs to {}", dir.display()))?
            {
                writeln!(stdout, "wrote {}", dir.join(file).display())?;
            }
        }
        Command::Crds {
            check: Some(dir), ..
        } => {
            egress_k8s::generate::check(&dir)?;
            writeln!(stdout, "CRD manifests in {} are up to date", dir.display())?;
        }
        Command::Crds { .. } => {
            for text in egress_k8s::generate::manifests()?.values() {
                writeln!(stdout, "---\n{text}")?;
            }
        }
    }
    Ok(())
}
