//! Shared test helpers: a regtest chain of real blocks (BIP34 coinbase, merkle root, witness
//! commitment, proof of work ground against the regtest target) whose transactions are
//! checked with Bitcoin Core's script interpreter before they go into a block.
//!
//! `TestChain` is a small chain for the wallet core's own tests through its [`ChainSource`];
//! it keeps every block it ever mined, so stale branches stay findable as on a real node.
//! The wallet against the real node is tested in `tests/real_node.rs`.

#![allow(dead_code)] // each test binary uses a different part of the helpers

pub(crate) mod node;
pub(crate) mod scenario;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::blockdata::opcodes::OP_0;
use bitcoin::blockdata::script::Builder;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, Block, BlockHash, CompactTarget, FeeRate, Network, OutPoint, ScriptBuf,
    Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Witness, absolute,
};
use interfaces::BlockRef;
use wallet::{ChainSource, Wallet, WalletStore};

/// Aborts the test process if a test outlives `limit` (a connection that never answers, a
/// process that never exits), first killing the processes it started: aborting runs no
/// destructor, and a wallet left running would keep trying to reach its node.
pub(crate) struct Watchdog(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

impl Watchdog {
    pub(crate) fn new(limit: std::time::Duration) -> Self {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                // Straight to stderr: libtest captures eprintln! in test threads, and the abort
                // below would throw the capture away.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "watchdog: test still running after {limit:?}; aborting"
                );
                let _ = std::process::Command::new("pkill")
                    .args(["-KILL", "-P", &std::process::id().to_string()])
                    .status();
                std::process::abort();
            }
        });
        Watchdog(done)
    }
}

/// Regtest's proof-of-work limit, as compact bits.
const REGTEST_BITS: u32 = 0x207f_ffff;

/// Regtest halves the subsidy every 150 blocks.
const HALVING_INTERVAL: u32 = 150;

/// The minimum relay fee rate of a default node: 1 sat/vB.
pub(crate) const MIN_RELAY: FeeRate = FeeRate::from_sat_per_kwu(250);

pub(crate) fn btc(n: u64) -> Amount {
    Amount::from_int_btc(n)
}

/// A store in `dir` on regtest.
pub(crate) fn store(dir: &Path) -> WalletStore {
    WalletStore::open(dir, Network::Regtest).expect("open store")
}

/// A script nobody in the tests owns, for coinbases that must not pay a test wallet.
pub(crate) fn stranger() -> ScriptBuf {
    ScriptBuf::new_op_return([0x51u8; 4])
}

/// The regtest block chain of a test.
pub(crate) struct TestChain {
    /// The active chain; index = height, `[0]` = regtest genesis.
    active: Vec<Block>,
    /// Every block ever mined, active or stale, with its height.
    all: HashMap<BlockHash, (u32, Block)>,
    /// Unspent outputs of the active chain.
    utxos: HashMap<OutPoint, TxOut>,
    /// Makes every coinbase unique, so blocks of competing branches differ.
    extra_nonce: i64,
}

impl Default for TestChain {
    fn default() -> Self {
        Self::new()
    }
}

impl TestChain {
    pub(crate) fn new() -> Self {
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let mut all = HashMap::new();
        all.insert(genesis.block_hash(), (0, genesis.clone()));
        Self {
            active: vec![genesis],
            all,
            utxos: HashMap::new(),
            extra_nonce: 0,
        }
    }

    pub(crate) fn height(&self) -> u32 {
        (self.active.len() - 1) as u32
    }

    pub(crate) fn tip(&self) -> &Block {
        self.active.last().expect("genesis is always there")
    }

    pub(crate) fn block(&self, height: u32) -> &Block {
        &self.active[height as usize]
    }

    /// Any block ever mined, with its height and whether it is in the active chain.
    pub(crate) fn lookup(&self, hash: &BlockHash) -> Option<(u32, &Block, bool)> {
        let (height, block) = self.all.get(hash)?;
        let active = self
            .active
            .get(*height as usize)
            .is_some_and(|b| b.block_hash() == *hash);
        Some((*height, block, active))
    }

    /// The unspent output at `outpoint` in the active chain.
    pub(crate) fn utxo(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        self.utxos.get(outpoint)
    }

    /// The fee of `tx`, whose inputs must be confirmed coins of the active chain.
    pub(crate) fn fee(&self, tx: &Transaction) -> Amount {
        let value_in: Amount = tx
            .input
            .iter()
            .map(|input| self.utxos[&input.previous_output].value)
            .sum();
        value_in - tx.output.iter().map(|o| o.value).sum()
    }

    /// Mines a block on the tip paying the subsidy plus fees to `coinbase_to`, including
    /// `txs` after checking every input against the chain's UTXO set with libbitcoinconsensus.
    pub(crate) fn mine(&mut self, coinbase_to: &ScriptBuf, txs: Vec<Transaction>) -> Block {
        let height = self.height() + 1;
        let mut fees = Amount::ZERO;
        let mut created = HashMap::new();
        for tx in &txs {
            let spent: Vec<TxOut> = tx
                .input
                .iter()
                .map(|input| {
                    let outpoint = &input.previous_output;
                    created
                        .get(outpoint)
                        .or_else(|| self.utxos.get(outpoint))
                        .cloned()
                        .unwrap_or_else(|| panic!("{outpoint} is not in the UTXO set"))
                })
                .collect();
            interfaces::script::verify_scripts(tx, &spent)
                .unwrap_or_else(|err| panic!("invalid transaction {}: {err}", tx.compute_txid()));
            let mut value_in = Amount::ZERO;
            for input in &tx.input {
                let prevout = created
                    .get(&input.previous_output)
                    .or_else(|| self.utxos.get(&input.previous_output))
                    .unwrap_or_else(|| panic!("{} spends a missing coin", tx.compute_txid()));
                value_in += prevout.value;
            }
            let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
            fees += value_in
                .checked_sub(value_out)
                .expect("outputs exceed inputs");
            for (vout, out) in (0u32..).zip(&tx.output) {
                created.insert(OutPoint::new(tx.compute_txid(), vout), out.clone());
            }
        }
        let subsidy = btc(50) / 2u64.pow(height / HALVING_INTERVAL);
        self.extra_nonce += 1;
        let block = build_block(
            self.tip().block_hash(),
            height,
            self.tip().header.time + 600,
            self.extra_nonce,
            vec![TxOut {
                value: subsidy + fees,
                script_pubkey: coinbase_to.clone(),
            }],
            txs,
        );
        self.push(block.clone());
        block
    }

    /// Mines an empty block whose coinbase pays its subsidy split `n` ways to `to`.
    pub(crate) fn mine_split(&mut self, to: &ScriptBuf, n: u64) -> Block {
        let height = self.height() + 1;
        let subsidy = btc(50) / 2u64.pow(height / HALVING_INTERVAL);
        self.extra_nonce += 1;
        let share = TxOut {
            value: subsidy / n,
            script_pubkey: to.clone(),
        };
        let block = build_block(
            self.tip().block_hash(),
            height,
            self.tip().header.time + 600,
            self.extra_nonce,
            vec![share; n as usize],
            Vec::new(),
        );
        self.push(block.clone());
        block
    }

    /// Mines a block paying to `address`.
    pub(crate) fn mine_to(&mut self, address: &Address, txs: Vec<Transaction>) -> Block {
        self.mine(&address.script_pubkey(), txs)
    }

    /// Disconnects the active blocks above `height` (a reorg's first half); returns them,
    /// highest first, as the node announces them.
    pub(crate) fn rewind(&mut self, height: u32) -> Vec<Block> {
        let removed: Vec<Block> = self.active.drain(height as usize + 1..).rev().collect();
        self.rebuild_utxos();
        removed
    }

    fn push(&mut self, block: Block) {
        apply_to_utxos(&mut self.utxos, &block);
        self.all
            .insert(block.block_hash(), (self.height() + 1, block.clone()));
        self.active.push(block);
    }

    fn rebuild_utxos(&mut self) {
        self.utxos.clear();
        for block in &self.active[1..] {
            apply_to_utxos(&mut self.utxos, block);
        }
    }
}

fn apply_to_utxos(utxos: &mut HashMap<OutPoint, TxOut>, block: &Block) {
    for tx in &block.txdata {
        for input in &tx.input {
            utxos.remove(&input.previous_output);
        }
        let txid = tx.compute_txid();
        for (vout, out) in (0u32..).zip(&tx.output) {
            utxos.insert(OutPoint::new(txid, vout), out.clone());
        }
    }
}

/// A valid regtest block at `height` on `prev`.
fn build_block(
    prev: BlockHash,
    height: u32,
    time: u32,
    extra_nonce: i64,
    reward: Vec<TxOut>,
    txs: Vec<Transaction>,
) -> Block {
    let segwit = txs
        .iter()
        .any(|tx| tx.input.iter().any(|input| !input.witness.is_empty()));
    // BIP34: the height is the coinbase's first push, serialized as Core's `CScript() << h`.
    let script_sig = Builder::new()
        .push_int(i64::from(height))
        .push_int(extra_nonce)
        .push_opcode(OP_0)
        .into_script();
    let reserved = [0u8; 32];
    let coinbase = Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness: if segwit {
                Witness::from_slice(&[reserved])
            } else {
                Witness::new()
            },
        }],
        output: reward,
    };
    let mut block = Block {
        header: Header {
            version: BlockVersion::from_consensus(0x2000_0000),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time,
            bits: CompactTarget::from_consensus(REGTEST_BITS),
            nonce: 0,
        },
        txdata: std::iter::once(coinbase).chain(txs).collect(),
    };
    if segwit {
        let root = block.witness_root().expect("block has transactions");
        let commitment = Block::compute_witness_commitment(&root, &reserved);
        let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
        script.extend_from_slice(commitment.as_byte_array());
        block.txdata[0].output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(script),
        });
    }
    block.header.merkle_root = block.compute_merkle_root().expect("block has transactions");
    let target = block.header.target();
    while block.header.validate_pow(target).is_err() {
        block.header.nonce += 1;
    }
    assert!(block.check_merkle_root());
    assert!(block.check_witness_commitment());
    block
}

impl ChainSource for TestChain {
    type Error = Infallible;

    fn get_height(&self) -> Result<Option<u32>, Infallible> {
        Ok(Some(self.height()))
    }

    fn get_block_hash(&self, height: u32) -> Result<Option<BlockHash>, Infallible> {
        Ok(self.active.get(height as usize).map(Block::block_hash))
    }

    fn find_block(&self, hash: &BlockHash) -> Result<Option<Block>, Infallible> {
        Ok(self.all.get(hash).map(|(_, block)| block.clone()))
    }

    fn find_locator_fork(&self, locator: &[BlockHash]) -> Result<Option<BlockRef>, Infallible> {
        Ok(locator.iter().find_map(|hash| {
            let height = self.active.iter().position(|b| b.block_hash() == *hash)?;
            Some(BlockRef {
                height: height as u32,
                hash: *hash,
            })
        }))
    }
}

/// Mines `n` blocks paying to fresh addresses of `wallet` and feeds each to it, as the
/// node's `block_connected` notifications would.
pub(crate) fn mine_to_wallet(chain: &mut TestChain, wallet: &Wallet, n: u32) {
    for _ in 0..n {
        let address = wallet.get_new_address().expect("address");
        let block = chain.mine_to(&address, vec![]);
        wallet
            .block_connected(&block, chain.height())
            .expect("block connects");
    }
}

/// Mines one block with `txs` (coinbase to nobody) and feeds it to every wallet.
pub(crate) fn confirm(
    chain: &mut TestChain,
    wallets: &[&Arc<Wallet>],
    txs: Vec<Transaction>,
) -> Block {
    let block = chain.mine(&stranger(), txs);
    for wallet in wallets {
        wallet
            .block_connected(&block, chain.height())
            .expect("block connects");
    }
    block
}
