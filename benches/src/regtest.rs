//! A regtest chain mined once into a temporary datadir, and wallets that catch up with it:
//! the real node's chain state (`NodeContext`, in this process or served by a peer process)
//! and the real wallet's `Wallet::sync_with_chain`, as `bitcoin-wallet` runs it when it loads
//! a wallet that is behind the node.
//!
//! The blocks pay a wallet created before they were mined, and a copy of that wallet's
//! database as it was then (at the genesis block) is what each catch-up starts from, so every
//! catch-up applies the same blocks and finds the same coinbases.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bitcoin::Network;
use interfaces::Chain;
use interfaces::remote::{ChainProxy, ChainServer};
use node::chainstate::ChainState;
use node::service::NodeContext;
use wallet::{DATABASE_FILE, Wallet, WalletStore, chain_dir_name};

use crate::conn::Setup;
use crate::peer::arg;
use crate::remote::{self, Remote};

/// The peer role that serves the node's `Chain` over a datadir (`--datadir=DIR`).
pub const ROLE: &str = "node";

/// The wallet's name in its datadir.
const WALLET: &str = "bench";

/// A mined regtest chain and the wallet state its blocks pay to.
#[derive(Debug)]
pub struct MinedChain {
    dir: tempfile::TempDir,
    /// The wallet's database as it was before mining.
    template: PathBuf,
    blocks: u32,
    mining: Duration,
}

impl MinedChain {
    /// Creates a wallet, then mines `blocks` blocks paying to its first address on a fresh
    /// chain state, through the node's own mining path.
    pub fn mine(blocks: u32) -> anyhow::Result<MinedChain> {
        let dir = tempfile::tempdir().context("make a temporary directory")?;
        let store = WalletStore::open(&dir.path().join("wallet"), Network::Regtest)
            .context("open the wallet store")?;
        let template = store.wallets_dir().join(WALLET).join(DATABASE_FILE);
        let script = store
            .create_wallet(WALLET)
            .and_then(|w| w.get_new_address())
            .context("create the wallet the blocks pay to")?
            .script_pubkey();
        // Closes the wallet's database, so that its file holds all of it.
        drop(store);

        let start = Instant::now();
        let chain_dir = regtest_dir(&dir.path().join("node"));
        let mut chain = ChainState::open(&chain_dir).context("open the chain state")?;
        chain.generate_to_script(blocks, &script).context("mine")?;
        let mining = start.elapsed();
        Ok(MinedChain {
            dir,
            template,
            blocks,
            mining,
        })
    }

    /// Blocks above the genesis block: the height a catch-up reaches.
    pub fn blocks(&self) -> u32 {
        self.blocks
    }

    /// How long mining took.
    pub fn mining_time(&self) -> Duration {
        self.mining
    }

    fn datadir(&self) -> PathBuf {
        self.dir.path().join("node")
    }

    /// The node on this chain, in this process. The chain state is locked while it lives:
    /// drop it before a peer opens the same datadir.
    pub fn node(&self) -> anyhow::Result<Arc<NodeContext>> {
        open_node(&self.datadir())
    }

    /// A peer process serving the node's `Chain` on this chain.
    pub fn spawn_node(&self, setup: Setup) -> anyhow::Result<Remote<ChainProxy>> {
        let datadir = format!("--datadir={}", self.datadir().display());
        Remote::spawn(ROLE, setup, &[datadir], ChainProxy::new)
    }

    /// The wallet as it was before the blocks were mined, in a new datadir of its own (kept
    /// by the returned guard).
    pub fn fresh_wallet(&self) -> anyhow::Result<(Arc<Wallet>, tempfile::TempDir)> {
        let datadir = tempfile::tempdir().context("make a wallet datadir")?;
        let store =
            WalletStore::open(datadir.path(), Network::Regtest).context("open the wallet store")?;
        let wallet_dir = store.wallets_dir().join(WALLET);
        std::fs::create_dir(&wallet_dir)
            .with_context(|| format!("create {}", wallet_dir.display()))?;
        let to = wallet_dir.join(DATABASE_FILE);
        std::fs::copy(&self.template, &to)
            .with_context(|| format!("copy {} to {}", self.template.display(), to.display()))?;
        let wallet = store.load_wallet(WALLET).context("load the wallet")?;
        Ok((wallet, datadir))
    }
}

/// Catches `wallet` up with `chain` and checks that it reached `height`.
pub fn sync(wallet: &Wallet, chain: &dyn Chain, height: u32) -> anyhow::Result<()> {
    let reached = wallet
        .sync_with_chain(chain)
        .context("Wallet::sync_with_chain")?;
    anyhow::ensure!(
        reached == height,
        "the wallet synced to height {reached}, not {height}"
    );
    Ok(())
}

fn regtest_dir(datadir: &Path) -> PathBuf {
    datadir.join(chain_dir_name(Network::Regtest))
}

fn open_node(datadir: &Path) -> anyhow::Result<Arc<NodeContext>> {
    let chain_dir = regtest_dir(datadir);
    let chain = ChainState::open(&chain_dir)
        .with_context(|| format!("open the chain state in {}", chain_dir.display()))?;
    NodeContext::new(chain).context("start the node context")
}

/// The peer: opens the chain state of `--datadir` and serves the node's `Chain` until the
/// client hangs up.
pub(crate) fn serve() -> anyhow::Result<()> {
    let datadir = arg("datadir").context("no --datadir argument")?;
    let node = open_node(Path::new(&datadir))?;
    remote::serve(Arc::new(ChainServer::new(node)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fresh_wallet_catches_up_and_finds_its_coinbases() {
        let mined = MinedChain::mine(5).expect("mine");
        let node = mined.node().expect("node");
        for _ in 0..2 {
            let (wallet, _datadir) = mined.fresh_wallet().expect("fresh wallet");
            assert_eq!(wallet.last_block().map(|b| b.height).ok(), Some(0));
            sync(&wallet, node.as_ref(), 5).expect("sync");
            assert_eq!(wallet.list_transactions().map(|t| t.len()).ok(), Some(5));
        }
        assert!(
            sync(
                &mined.fresh_wallet().expect("fresh wallet").0,
                node.as_ref(),
                6
            )
            .is_err()
        );
    }
}
