//! `bitcoin-node`: not implemented yet; see the project's issues.

use clap::Parser;

/// Bitcoin node process: owns chain state, validates blocks and serves the Chain, Node and Mining interfaces over ipc-shm.
#[derive(Debug, Parser)]
#[command(name = "bitcoin-node", version)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("bitcoin-node is not implemented yet")
}
