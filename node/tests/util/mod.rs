//! Shared helpers of the node's chain tests: real keys, real signatures, real blocks.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bitcoin::ecdsa;
use bitcoin::hashes::Hash;
use bitcoin::key::{CompressedPublicKey, Keypair, TapTweak};
use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness, absolute, taproot, transaction,
};
use node::chainstate::ChainState;
use node::mining::grind;
use node::notify::{ChainEvent, Subscription};
use node::validation;

/// Height of the shared fixture chain: coinbases of blocks 1..=10 are mature at 111.
pub const FIXTURE_HEIGHT: u32 = 110;

/// Deterministic keys with a P2WPKH and a P2TR (key path) output script.
pub struct Keys {
    pub secp: Secp256k1<All>,
    pub sk: SecretKey,
    pub pk: CompressedPublicKey,
    pub keypair: Keypair,
    pub wpkh: ScriptBuf,
    pub tr: ScriptBuf,
}

impl Keys {
    pub fn new() -> Self {
        let secp = Secp256k1::new();
        let sk = SecretKey::from_slice(&[0x11; 32]).unwrap();
        let pk = CompressedPublicKey(sk.public_key(&secp));
        let keypair = Keypair::from_secret_key(&secp, &SecretKey::from_slice(&[0x22; 32]).unwrap());
        let wpkh = ScriptBuf::new_p2wpkh(&pk.wpubkey_hash());
        let tr = ScriptBuf::new_p2tr(&secp, keypair.x_only_public_key().0, None);
        Self {
            secp,
            sk,
            pk,
            keypair,
            wpkh,
            tr,
        }
    }

    /// An unsigned version-2 transaction spending `inputs` to `outputs`.
    pub fn unsigned(inputs: &[OutPoint], outputs: Vec<TxOut>) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: inputs
                .iter()
                .map(|op| TxIn {
                    previous_output: *op,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs,
        }
    }

    /// Signs every input of `tx`; `spent[i]` is the output input `i` spends (P2WPKH or P2TR
    /// of these keys).
    pub fn sign(&self, tx: &mut Transaction, spent: &[TxOut]) {
        let mut witnesses = Vec::new();
        {
            let mut cache = SighashCache::new(&*tx);
            for (i, prev) in spent.iter().enumerate() {
                if prev.script_pubkey.is_p2tr() {
                    let hash = cache
                        .taproot_key_spend_signature_hash(
                            i,
                            &Prevouts::All(spent),
                            TapSighashType::Default,
                        )
                        .unwrap();
                    let tweaked = self.keypair.tap_tweak(&self.secp, None).to_keypair();
                    let sig = self.secp.sign_schnorr_no_aux_rand(
                        &Message::from_digest(hash.to_byte_array()),
                        &tweaked,
                    );
                    witnesses.push(Witness::p2tr_key_spend(&taproot::Signature {
                        signature: sig,
                        sighash_type: TapSighashType::Default,
                    }));
                } else {
                    let hash = cache
                        .p2wpkh_signature_hash(
                            i,
                            &prev.script_pubkey,
                            prev.value,
                            EcdsaSighashType::All,
                        )
                        .unwrap();
                    let sig = self
                        .secp
                        .sign_ecdsa(&Message::from_digest(hash.to_byte_array()), &self.sk);
                    witnesses.push(Witness::p2wpkh(
                        &ecdsa::Signature {
                            signature: sig,
                            sighash_type: EcdsaSighashType::All,
                        },
                        &self.pk.0,
                    ));
                }
            }
        }
        for (input, w) in tx.input.iter_mut().zip(witnesses) {
            input.witness = w;
        }
    }

    /// A signed transaction spending `inputs` (with their outputs `spent`) to `outputs`.
    pub fn spend(&self, inputs: &[(OutPoint, TxOut)], outputs: Vec<TxOut>) -> Transaction {
        let ops: Vec<OutPoint> = inputs.iter().map(|(op, _)| *op).collect();
        let spent: Vec<TxOut> = inputs.iter().map(|(_, o)| o.clone()).collect();
        let mut tx = Self::unsigned(&ops, outputs);
        self.sign(&mut tx, &spent);
        tx
    }
}

pub fn out(sats: u64, script: &ScriptBuf) -> TxOut {
    TxOut {
        value: Amount::from_sat(sats),
        script_pubkey: script.clone(),
    }
}

/// The coinbase output (outpoint and output) of the active block at `height`.
pub fn coinbase_output(chain: &ChainState, height: u32) -> (OutPoint, TxOut) {
    let block = chain
        .block(&chain.block_hash(height).unwrap())
        .unwrap()
        .unwrap();
    let cb = &block.txdata[0];
    (
        OutPoint {
            txid: cb.compute_txid(),
            vout: 0,
        },
        cb.output[0].clone(),
    )
}

/// Recomputes a block's witness commitment (if it has one) and merkle root, then grinds the
/// nonce: call after changing transactions.
pub fn finish(mut block: Block) -> Block {
    let cb = &mut block.txdata[0];
    cb.output.retain(|o| {
        !(o.script_pubkey.len() >= 38
            && o.script_pubkey.as_bytes()[..6] == [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed])
    });
    if let Some(root) = block.witness_root() {
        let c = Block::compute_witness_commitment(&root, &[0u8; 32]);
        block.txdata[0].output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: validation::witness_commitment_script(c),
        });
    }
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    grind(block)
}

/// A block on the tip holding `txs` (after the coinbase), paying the subsidy plus `fees`.
pub fn block_with(chain: &ChainState, keys: &Keys, txs: Vec<Transaction>, fees: Amount) -> Block {
    let template = chain.create_new_block(&keys.wpkh);
    let mut block = template.block().clone();
    block.txdata.truncate(1);
    block.txdata[0].output[0].value = validation::block_subsidy(template.height()) + fees;
    block.txdata.extend(txs);
    finish(block)
}

/// A block on an arbitrary known `parent` (for side branches), with `txs` and an extra
/// nonce `tag` so sibling blocks differ.
pub fn block_on(
    chain: &ChainState,
    keys: &Keys,
    parent: BlockHash,
    txs: Vec<Transaction>,
    tag: u8,
) -> Block {
    let pe = chain.entry(&parent).unwrap();
    let height = pe.height + 1;
    let mut template = chain.create_new_block(&keys.wpkh).block().clone();
    template.txdata.truncate(1);
    let cb = &mut template.txdata[0];
    let mut sig = validation::bip34_prefix(height).into_bytes();
    sig.extend_from_slice(&[1, tag]);
    cb.input[0].script_sig = ScriptBuf::from(sig);
    cb.output[0].value = validation::block_subsidy(height);
    template.header.prev_blockhash = parent;
    template.header.time = chain.median_time_past(&parent).max(pe.header.time) + 1;
    template.txdata.extend(txs);
    finish(template)
}

/// Path of a fixture chain of [`FIXTURE_HEIGHT`] blocks: block `h` pays its coinbase to the
/// P2TR key when `h` is even and to the P2WPKH key when odd. Built once per test binary,
/// then copied by [`fixture`].
fn fixture_template() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_fixtures(root);
        let dir = root.join(format!("node-fixture-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let keys = Keys::new();
        let mut chain = ChainState::open(&dir).unwrap();
        for h in 1..=FIXTURE_HEIGHT {
            let script = if h % 2 == 0 { &keys.tr } else { &keys.wpkh };
            chain.generate_to_script(1, script).unwrap();
        }
        dir
    })
}

/// Removes fixture directories of test processes that no longer run (statics are never
/// dropped, so each process leaves its fixture behind).
fn remove_stale_fixtures(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("node-fixture-")) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh copy of the fixture chain in its own temporary data directory.
pub fn fixture() -> (tempfile::TempDir, ChainState) {
    let src = fixture_template();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != ".lock" {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let chain = ChainState::open(dir.path()).unwrap();
    assert_eq!(chain.height(), FIXTURE_HEIGHT);
    (dir, chain)
}

/// Records every event delivered to a subscriber.
pub fn record(chain: &ChainState) -> (Arc<Mutex<Vec<ChainEvent>>>, Subscription) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let sub = chain
        .subscribe(Arc::new(move |ev: &ChainEvent| {
            s.lock().unwrap().push(ev.clone())
        }))
        .unwrap();
    (seen, sub)
}

pub fn txid(tx: &Transaction) -> Txid {
    tx.compute_txid()
}

/// Aborts the test process if the test runs past `secs`; dropping the guard (when the test
/// ends) calls it off, so that one test's limit does not bound the tests that run after it.
#[must_use = "the watchdog is called off when the guard is dropped"]
pub fn watchdog(secs: u64) -> Watchdog {
    let (done, called_off) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let limit = std::time::Duration::from_secs(secs);
        if !matches!(
            called_off.recv_timeout(limit),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        ) {
            return;
        }
        // Straight to stderr: libtest captures eprintln! in test threads, and the abort
        // below would throw the capture away.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "watchdog: test still running after {secs} s"
        );
        // Aborting runs no destructor, so the guards that kill our nodes would not run.
        for child in children_of(std::process::id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.0 as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::process::abort();
    });
    Watchdog { _done: done }
}

/// Calls its watchdog off when dropped.
#[derive(Debug)]
pub struct Watchdog {
    _done: std::sync::mpsc::Sender<()>,
}

/// The child processes of `pid` with their names, from `/proc`.
pub fn children_of(pid: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let child = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let (head, tail) = stat.rsplit_once(')')?;
            let comm = head.split_once('(').map(|(_, c)| c)?;
            let ppid = tail.split_whitespace().nth(1)?.parse::<u32>().ok()?;
            (ppid == pid).then(|| (child, comm.to_owned()))
        })
        .collect()
}

/// The stored UTXO set, sorted.
pub fn sorted_coins(chain: &ChainState) -> Vec<(OutPoint, node::store::Coin)> {
    let mut v = chain.store().all_coins().unwrap();
    v.sort_by_key(|(op, _)| (op.txid, op.vout));
    v
}

/// The UTXO set obtained by replaying the active chain's blocks from genesis, sorted.
pub fn recompute_utxos(chain: &ChainState) -> Vec<(OutPoint, node::store::Coin)> {
    let mut utxos = std::collections::HashMap::new();
    for h in 1..=chain.height() {
        let block = chain.block(&chain.block_hash(h).unwrap()).unwrap().unwrap();
        for tx in &block.txdata {
            for input in &tx.input {
                utxos.remove(&input.previous_output);
            }
            for (vout, o) in tx.output.iter().enumerate() {
                if !validation::is_unspendable(&o.script_pubkey) {
                    let op = OutPoint {
                        txid: tx.compute_txid(),
                        vout: vout as u32,
                    };
                    let coin = node::store::Coin {
                        output: o.clone(),
                        height: h,
                        is_coinbase: tx.is_coinbase(),
                    };
                    utxos.insert(op, coin);
                }
            }
        }
    }
    let mut v: Vec<_> = utxos.into_iter().collect();
    v.sort_by_key(|(op, _)| (op.txid, op.vout));
    v
}

/// A signed version-2 spend of the coinbase of block `h` with input sequence `seq` (BIP68).
pub fn relative_spend(chain: &ChainState, keys: &Keys, h: u32, seq: u32) -> Transaction {
    let (op, prev) = coinbase_output(chain, h);
    let mut tx = Keys::unsigned(&[op], vec![out(prev.value.to_sat() - 1_000, &keys.wpkh)]);
    tx.input[0].sequence = Sequence::from_consensus(seq);
    keys.sign(&mut tx, &[prev]);
    tx
}
