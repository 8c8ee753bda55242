//! Random sequences of calls, made on two identical worlds, one directly and one through
//! proxies over a connection: every outcome must be the same.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, FeeRate, Network, OutPoint, TxOut, Txid};
use interfaces::{BlockWhat, Chain, Init};
use proptest::prelude::*;

use super::keys::{Key, signed_tx};
use super::world::SUBSIDY;
use super::{TRANSPORTS, Watchdog, connected, fresh};

/// One call, with arguments drawn from small ranges so they hit both known and unknown
/// blocks, coins and transactions.
#[derive(Debug, Clone)]
enum Op {
    GetBlockHash(u32),
    FindBlock(u32, bool),
    FindAncestor(u32, u32, bool),
    LocatorFork(Vec<u32>),
    FindCoins(Vec<(u32, u32)>),
    IsInMempool(u32),
    EstimateFee(u32),
    /// Spend coinbase `n` paying `fee` satoshis; `forge` breaks the signature.
    Broadcast {
        coinbase: u32,
        fee: u64,
        forge: bool,
        max_fee_sat_kwu: u64,
    },
    Mine,
    TipInfo,
    MempoolInfo,
    RawTransaction(u32),
    Echo(Vec<u8>),
    Template,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..20u32).prop_map(Op::GetBlockHash),
        (0..20u32, any::<bool>()).prop_map(|(h, f)| Op::FindBlock(h, f)),
        (0..20u32, 0..20u32, any::<bool>()).prop_map(|(h, a, f)| Op::FindAncestor(h, a, f)),
        proptest::collection::vec(0..25u32, 0..4).prop_map(Op::LocatorFork),
        proptest::collection::vec((0..20u32, 0..2u32), 0..4).prop_map(Op::FindCoins),
        (0..20u32).prop_map(Op::IsInMempool),
        (0..40u32).prop_map(Op::EstimateFee),
        (
            1..12u32,
            0..2_000_000u64,
            any::<bool>(),
            prop_oneof![Just(0u64), 0..5_000_000u64]
        )
            .prop_map(|(coinbase, fee, forge, max_fee_sat_kwu)| Op::Broadcast {
                coinbase,
                fee,
                forge,
                max_fee_sat_kwu
            }),
        Just(Op::Mine),
        Just(Op::TipInfo),
        Just(Op::MempoolInfo),
        (0..20u32).prop_map(Op::RawTransaction),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Op::Echo),
        Just(Op::Template),
    ]
}

/// The hash of the active block at `height`, or a made-up one above the tip.
fn hash_at(chain: &Arc<dyn Chain>, height: u32) -> BlockHash {
    chain
        .get_block_hash(height)
        .ok()
        .flatten()
        .unwrap_or_else(|| BlockHash::from_byte_array([height as u8; 32]))
}

/// The txid of the coinbase at `height`, or a made-up one.
fn coinbase_at(chain: &Arc<dyn Chain>, height: u32) -> Txid {
    let found = chain
        .find_block(&hash_at(chain, height), BlockWhat::Full)
        .ok()
        .flatten();
    found
        .and_then(|f| f.block?.transaction(0)?.ok())
        .map(|coinbase| coinbase.compute_txid())
        .unwrap_or_else(|| Txid::from_byte_array([height as u8; 32]))
}

/// Applies `op` through `init` and describes the outcome.
fn apply(init: &Arc<dyn Init>, op: &Op) -> String {
    let chain = init.make_chain().expect("chain");
    let node = init.make_node().expect("node");
    let miner = Key::new(1);
    match op {
        Op::GetBlockHash(h) => format!("{:?}", chain.get_block_hash(*h)),
        Op::FindBlock(h, full) => {
            let what = if *full {
                BlockWhat::Full
            } else {
                BlockWhat::Header
            };
            format!("{:?}", chain.find_block(&hash_at(&chain, *h), what))
        }
        Op::FindAncestor(h, a, full) => {
            let what = if *full {
                BlockWhat::Full
            } else {
                BlockWhat::Header
            };
            format!(
                "{:?}",
                chain.find_ancestor_by_height(&hash_at(&chain, *h), *a, what)
            )
        }
        Op::LocatorFork(heights) => {
            let locator: Vec<BlockHash> = heights.iter().map(|h| hash_at(&chain, *h)).collect();
            format!("{:?}", chain.find_locator_fork(&locator))
        }
        Op::FindCoins(coins) => {
            let outpoints: Vec<OutPoint> = coins
                .iter()
                .map(|(h, vout)| OutPoint {
                    txid: coinbase_at(&chain, *h),
                    vout: *vout,
                })
                .collect();
            format!("{:?}", chain.find_coins(&outpoints))
        }
        Op::IsInMempool(h) => format!("{:?}", chain.is_in_mempool(&coinbase_at(&chain, *h))),
        Op::EstimateFee(target) => format!("{:?}", chain.estimate_fee_rate(*target)),
        Op::Broadcast {
            coinbase,
            fee,
            forge,
            max_fee_sat_kwu,
        } => {
            let outpoint = OutPoint {
                txid: coinbase_at(&chain, *coinbase),
                vout: 0,
            };
            let output = TxOut {
                value: SUBSIDY - Amount::from_sat(*fee),
                script_pubkey: Key::new(9).script(),
            };
            let mut tx = signed_tx(&miner, &[(outpoint, SUBSIDY)], vec![output]);
            if *forge {
                tx.output[0].value -= Amount::from_sat(1);
            }
            format!(
                "{:?}",
                chain.broadcast_transaction(&tx, FeeRate::from_sat_per_kwu(*max_fee_sat_kwu))
            )
        }
        Op::Mine => {
            let address = miner.address(Network::Regtest).into_unchecked();
            format!("{:?}", node.generate_to_address(1, &address))
        }
        Op::TipInfo => format!("{:?}", node.get_tip_info()),
        Op::MempoolInfo => format!("{:?}", node.get_mempool_info()),
        Op::RawTransaction(h) => {
            format!("{:?}", node.get_raw_transaction(&coinbase_at(&chain, *h)))
        }
        Op::Echo(bytes) => format!("{:?}", init.make_echo().expect("echo").echo(bytes)),
        Op::Template => {
            let mining = init.make_mining().expect("mining");
            let template = mining.create_new_block(&miner.script()).expect("template");
            let waited = mining.wait_tip_changed(&BlockHash::all_zeros(), Duration::from_secs(60));
            format!(
                "{:?} {:?} {:?}",
                template.get_block().map(|b| b.block_hash()),
                template.get_coinbase_merkle_path(),
                waited
            )
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::fuzz_cases(24), ..ProptestConfig::default() })]

    #[test]
    fn random_calls_match_in_process(ops in proptest::collection::vec(op(), 1..40), which in 0..2usize) {
        let _watchdog = Watchdog::new(Duration::from_secs(120));
        let (_direct_world, direct) = fresh();
        let (_remote_world, served) = fresh();
        let remote = connected(served, TRANSPORTS[which]);
        for (i, op) in ops.iter().enumerate() {
            let expected = apply(&direct, op);
            let found = apply(&remote.proxy, op);
            prop_assert_eq!(expected, found, "call {} ({:?}) over {:?}", i, op, TRANSPORTS[which]);
        }
    }
}
