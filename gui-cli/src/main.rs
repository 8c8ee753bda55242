//! `bitcoin-gui`: not implemented yet; see the project's issues.

use clap::Parser;

/// Bitcoin front end: spawns bitcoin-node (or connects to one) and talks to it over ipc-shm.
#[derive(Debug, Parser)]
#[command(name = "bitcoin-gui", version)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("bitcoin-gui is not implemented yet")
}
