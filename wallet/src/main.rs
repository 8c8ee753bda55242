//! `bitcoin-wallet`: not implemented yet; see the project's issues.

use clap::Parser;

/// Bitcoin wallet process: a descriptor wallet kept in sync with bitcoin-node over ipc-shm.
#[derive(Debug, Parser)]
#[command(name = "bitcoin-wallet", version)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("bitcoin-wallet is not implemented yet")
}
