//! bitcoin-cli's output shapes for blocks, transactions, chain state and wallet history.

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hex::DisplayHex;
use bitcoin::{Address, Amount, Block, BlockHash, FeeRate, Network, SignedAmount};
use interfaces::{ErrorCode, FoundTransaction, InterfaceError, Node, Wallet, WalletTx};

use super::{CliError, Output};
use crate::json::Json;

/// Blocks a coinbase output must wait before it can be spent, plus the block itself: Core
/// calls a coinbase "immature" below this many confirmations.
const COINBASE_MATURITY_CONFIRMATIONS: i64 = 101;

/// A fee rate as Core prints it: BTC per 1000 virtual bytes.
pub(super) fn btc_per_kvb(rate: FeeRate) -> Amount {
    Amount::from_sat(rate.to_sat_per_kwu().saturating_mul(4))
}

pub(super) fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn wallet_name_json(wallet: &dyn Wallet) -> Result<Output, CliError> {
    Ok(Output::Json(Json::Object(vec![(
        "name",
        Json::Str(wallet.get_wallet_name()?),
    )])))
}

pub(super) fn blockchain_info(node: &dyn Node) -> Result<Json, CliError> {
    let tip = node.get_tip_info()?;
    Ok(Json::Object(vec![
        ("chain", Json::str("regtest")),
        ("blocks", Json::int(tip.height)),
        ("headers", Json::int(tip.height)),
        ("bestblockhash", Json::str(tip.hash.to_string())),
        ("time", Json::int(tip.time)),
        ("mediantime", Json::int(tip.median_time_past)),
        ("verificationprogress", Json::Float(1.0)),
        ("chainwork", Json::str(hex(&tip.chain_work.to_be_bytes()))),
        ("pruned", Json::Bool(false)),
        ("warnings", Json::Array(vec![])),
    ]))
}

pub(super) fn get_block(
    node: &dyn Node,
    hash: &BlockHash,
    verbose: bool,
) -> Result<Output, CliError> {
    let not_found = || CliError::rpc(ErrorCode::INVALID_ADDRESS_OR_KEY, "Block not found");
    let found = node.get_block(hash)?.ok_or_else(not_found)?;
    let block = found.block.as_ref().ok_or_else(not_found)?;
    if !verbose {
        // The bytes as they came, but only if they frame a block.
        block.check().map_err(InterfaceError::from)?;
        return Ok(Output::Plain(block.as_bytes().to_lower_hex_string()));
    }
    let block = block.to_block().map_err(InterfaceError::from)?;
    let tip = node.get_tip_info()?.height;
    let confirmations = if found.in_active_chain {
        i64::from(tip) - i64::from(found.height) + 1
    } else {
        -1
    };
    let next = match found.in_active_chain {
        true => node.get_block_hash(found.height.saturating_add(1))?,
        false => None,
    };
    Ok(Output::Json(block_json(
        &block,
        found.height,
        found.median_time_past,
        confirmations,
        next,
    )))
}

/// `getblock HASH 1`'s object.
fn block_json(
    block: &Block,
    height: u32,
    median_time_past: u32,
    confirmations: i64,
    next: Option<BlockHash>,
) -> Json {
    let h = &block.header;
    let mut fields = vec![
        ("hash", Json::str(h.block_hash().to_string())),
        ("confirmations", Json::Int(confirmations)),
        ("height", Json::int(height)),
        ("version", Json::int(h.version.to_consensus())),
        (
            "versionHex",
            Json::str(format!("{:08x}", h.version.to_consensus())),
        ),
        ("merkleroot", Json::str(h.merkle_root.to_string())),
        ("time", Json::int(h.time)),
        ("mediantime", Json::int(median_time_past)),
        ("nonce", Json::int(h.nonce)),
        ("bits", Json::str(format!("{:08x}", h.bits.to_consensus()))),
        ("difficulty", Json::Float(h.difficulty_float())),
        ("nTx", Json::int(saturating_i64(block.txdata.len() as u64))),
        ("size", Json::int(saturating_i64(block.total_size() as u64))),
        ("weight", Json::int(saturating_i64(block.weight().to_wu()))),
        (
            "tx",
            Json::Array(
                block
                    .txdata
                    .iter()
                    .map(|tx| Json::str(tx.compute_txid().to_string()))
                    .collect(),
            ),
        ),
    ];
    if height > 0 {
        fields.push(("previousblockhash", Json::str(h.prev_blockhash.to_string())));
    }
    if let Some(next) = next {
        fields.push(("nextblockhash", Json::str(next.to_string())));
    }
    Json::Object(fields)
}

/// `getrawtransaction TXID 1`'s object.
pub(super) fn raw_transaction_json(
    node: &dyn Node,
    found: &FoundTransaction,
) -> Result<Json, CliError> {
    let tx = &found.tx;
    let vin = tx
        .input
        .iter()
        .map(|input| {
            let mut fields = Vec::new();
            if tx.is_coinbase() {
                fields.push(("coinbase", Json::str(hex(input.script_sig.as_bytes()))));
            } else {
                fields.push(("txid", Json::str(input.previous_output.txid.to_string())));
                fields.push(("vout", Json::int(input.previous_output.vout)));
                fields.push((
                    "scriptSig",
                    Json::Object(vec![("hex", Json::str(hex(input.script_sig.as_bytes())))]),
                ));
            }
            if !input.witness.is_empty() {
                let items = input.witness.iter().map(|w| Json::str(hex(w))).collect();
                fields.push(("txinwitness", Json::Array(items)));
            }
            fields.push(("sequence", Json::int(input.sequence.0)));
            Json::Object(fields)
        })
        .collect();
    let vout = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, output)| {
            let mut script = vec![("hex", Json::str(hex(output.script_pubkey.as_bytes())))];
            if let Ok(address) = Address::from_script(&output.script_pubkey, Network::Regtest) {
                script.push(("address", Json::str(address.to_string())));
            }
            Json::Object(vec![
                ("value", Json::amount(output.value)),
                ("n", Json::int(saturating_i64(n as u64))),
                ("scriptPubKey", Json::Object(script)),
            ])
        })
        .collect();
    let mut fields = vec![
        ("txid", Json::str(tx.compute_txid().to_string())),
        ("hash", Json::str(tx.compute_wtxid().to_string())),
        ("version", Json::int(tx.version.0)),
        ("size", Json::int(saturating_i64(tx.total_size() as u64))),
        ("vsize", Json::int(saturating_i64(tx.vsize() as u64))),
        ("weight", Json::int(saturating_i64(tx.weight().to_wu()))),
        ("locktime", Json::int(tx.lock_time.to_consensus_u32())),
        ("vin", Json::Array(vin)),
        ("vout", Json::Array(vout)),
        ("hex", Json::str(serialize_hex(tx))),
    ];
    if let Some(block) = &found.block {
        let tip = node.get_tip_info()?.height;
        fields.push(("blockhash", Json::str(block.hash.to_string())));
        fields.push((
            "confirmations",
            Json::int(i64::from(tip) - i64::from(block.height) + 1),
        ));
    }
    Ok(Json::Object(fields))
}

/// `listtransactions`' entries for `txs` (oldest first), as Core's `ListTransactions` makes
/// them: a transaction that spends our coins lists each output that is not change as
/// `send` (negative, with the fee); then every output of ours that is not such change is
/// listed as `receive`, or for a coinbase `generate`/`immature`. A payment to one of our own
/// addresses is thus both a `send` and a `receive`.
pub(super) fn wallet_entries(txs: &[WalletTx], tip_height: u32) -> Vec<Json> {
    let mut entries = Vec::new();
    for wtx in txs {
        let confirmations = match &wtx.block {
            Some(b) => i64::from(tip_height) - i64::from(b.height) + 1,
            None => 0,
        };
        let is_send = wtx.debit > Amount::ZERO;
        let flag = |v: &[bool], vout: usize| v.get(vout).copied().unwrap_or(false);
        let listed = |vout: usize| !(is_send && flag(&wtx.txout_is_change, vout));
        let mut sent = Vec::new();
        let mut received = Vec::new();
        for (vout, _) in wtx
            .tx
            .output
            .iter()
            .enumerate()
            .filter(|&(vout, _)| listed(vout))
        {
            if is_send {
                sent.push(vout);
            }
            if flag(&wtx.txout_is_mine, vout) {
                received.push(vout);
            }
        }
        let receive_category = if !wtx.tx.is_coinbase() {
            "receive"
        } else if confirmations < COINBASE_MATURITY_CONFIRMATIONS {
            "immature"
        } else {
            "generate"
        };
        let outputs = sent
            .into_iter()
            .map(|vout| ("send", vout))
            .chain(received.into_iter().map(|vout| (receive_category, vout)));
        for (category, vout) in outputs {
            let output = &wtx.tx.output[vout];
            let send = category == "send";
            let value = output.value.to_signed().unwrap_or(SignedAmount::MAX);
            let mut fields = Vec::new();
            if let Ok(address) = Address::from_script(&output.script_pubkey, Network::Regtest) {
                fields.push(("address", Json::str(address.to_string())));
            }
            fields.push(("category", Json::str(category)));
            fields.push(("amount", Json::Amount(if send { -value } else { value })));
            fields.push(("vout", Json::int(saturating_i64(vout as u64))));
            if let (true, Some(fee)) = (send, wtx.fee) {
                fields.push((
                    "fee",
                    Json::Amount(-fee.to_signed().unwrap_or(SignedAmount::MAX)),
                ));
            }
            fields.push(("confirmations", Json::Int(confirmations)));
            if wtx.tx.is_coinbase() {
                fields.push(("generated", Json::Bool(true)));
            }
            if let Some(block) = &wtx.block {
                fields.push(("blockhash", Json::str(block.hash.to_string())));
                fields.push(("blockheight", Json::int(block.height)));
            }
            fields.push(("txid", Json::str(wtx.tx.compute_txid().to_string())));
            fields.push(("time", Json::int(saturating_i64(wtx.time))));
            entries.push(Json::Object(fields));
        }
    }
    entries
}
