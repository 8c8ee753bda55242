//! bitcoin-cli's commands over the interfaces: argument parsing (checked before anything
//! is sent to the node), execution, and bitcoin-cli's output shapes.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bitcoin::address::NetworkUnchecked;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{
    Address, Amount, Block, BlockHash, Denomination, FeeRate, Network, SignedAmount, Transaction,
    Txid,
};
use interfaces::{ErrorCode, FoundTransaction, Init, InterfaceError, Node, Wallet, WalletTx};

use crate::json::{Json, format_btc};
use crate::mine;

/// Blocks a coinbase output must wait before it can be spent, plus the block itself: Core
/// calls a coinbase "immature" below this many confirmations.
const COINBASE_MATURITY_CONFIRMATIONS: i64 = 101;

/// `sendrawtransaction`'s default `maxfeerate`: 0.10 BTC/kvB, as in Bitcoin Core.
const DEFAULT_MAX_RAW_TX_FEE_RATE: FeeRate = FeeRate::from_sat_per_kwu(10_000_000 / 4);

/// A failed command, printed as one line on stderr.
#[derive(Debug)]
pub(crate) enum CliError {
    /// An error in bitcoin-cli's terms: a bad argument or the node's or wallet's refusal.
    Rpc { code: ErrorCode, message: String },
    /// The connection failed or the node went away.
    Other(anyhow::Error),
}

impl CliError {
    fn rpc(code: ErrorCode, message: impl Into<String>) -> CliError {
        CliError::Rpc {
            code,
            message: message.into(),
        }
    }

    fn usage(usage: &str) -> CliError {
        CliError::rpc(ErrorCode::MISC_ERROR, format!("usage: {usage}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Rpc { code, message } => write!(f, "error code: {code}: {message}"),
            CliError::Other(e) => write!(f, "error: {}", one_line(e)),
        }
    }
}

/// An error and its causes on one line, `outer: inner: ...`, leaving out a cause whose
/// text its parent already includes (some errors print their source in their own text).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut parent = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parent.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        parent = text;
    }
    line
}

impl From<InterfaceError> for CliError {
    fn from(e: InterfaceError) -> CliError {
        match e {
            InterfaceError::Remote { code, message } => CliError::Rpc { code, message },
            InterfaceError::Disconnected => CliError::Other(anyhow::anyhow!(
                "the node closed the connection (it exited or was stopped; see its debug.log)"
            )),
            other => CliError::Other(other.into()),
        }
    }
}

/// What a command prints on success.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// A scalar, printed as is (a height, a hash, an amount).
    Plain(String),
    /// An object or array, pretty-printed.
    Json(Json),
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Plain(s) => f.write_str(s),
            Output::Json(j) => j.fmt(f),
        }
    }
}

/// A command with its arguments parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    GetBlockCount,
    GetBestBlockHash,
    GetBlockchainInfo,
    GetBlockHash(u32),
    GetBlock {
        hash: BlockHash,
        verbose: bool,
    },
    GetMempoolInfo,
    GetRawTransaction {
        txid: Txid,
        verbose: bool,
    },
    SendRawTransaction {
        tx: Transaction,
        max_fee_rate: FeeRate,
    },
    CreateWallet(String),
    LoadWallet(String),
    ListWallets,
    GetNewAddress,
    GetBalance,
    GetBalances,
    ListTransactions {
        count: usize,
        skip: usize,
    },
    SendToAddress {
        address: Address<NetworkUnchecked>,
        amount: Amount,
    },
    GenerateToAddress {
        n: u32,
        address: Address,
    },
    Echo(Vec<String>),
    Stop,
}

impl Command {
    /// Parses `name args...` as bitcoin-cli would, before anything reaches the node.
    pub(crate) fn parse(name: &str, args: &[String]) -> Result<Command, CliError> {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let command = match (name, a.as_slice()) {
            ("getblockcount", []) => Command::GetBlockCount,
            ("getbestblockhash", []) => Command::GetBestBlockHash,
            ("getblockchaininfo", []) => Command::GetBlockchainInfo,
            ("getblockhash", [h]) => Command::GetBlockHash(parse_height(h)?),
            ("getblock", [hash, rest @ ..]) if rest.len() <= 1 => Command::GetBlock {
                hash: parse_hash("blockhash", hash)?,
                verbose: parse_verbosity(rest.first(), true)?,
            },
            ("getmempoolinfo", []) => Command::GetMempoolInfo,
            ("getrawtransaction", [txid, rest @ ..]) if rest.len() <= 1 => {
                Command::GetRawTransaction {
                    txid: parse_hash("txid", txid)?,
                    verbose: parse_verbosity(rest.first(), false)?,
                }
            }
            ("sendrawtransaction", [hex, rest @ ..]) if rest.len() <= 1 => {
                Command::SendRawTransaction {
                    tx: deserialize_hex(hex).map_err(|_| {
                        CliError::rpc(ErrorCode::DESERIALIZATION_ERROR, "TX decode failed")
                    })?,
                    max_fee_rate: match rest.first() {
                        Some(rate) => parse_fee_rate_btc_kvb(rate)?,
                        None => DEFAULT_MAX_RAW_TX_FEE_RATE,
                    },
                }
            }
            ("createwallet", [name]) => Command::CreateWallet((*name).to_owned()),
            ("loadwallet", [name]) => Command::LoadWallet((*name).to_owned()),
            ("listwallets", []) => Command::ListWallets,
            ("getnewaddress", []) => Command::GetNewAddress,
            ("getbalance", []) => Command::GetBalance,
            ("getbalances", []) => Command::GetBalances,
            ("listtransactions", rest) if rest.len() <= 3 => {
                if let Some(label) = rest.first().filter(|l| **l != "*") {
                    return Err(CliError::rpc(
                        ErrorCode::WALLET_ERROR,
                        format!("label {label:?} is not supported; use \"*\""),
                    ));
                }
                Command::ListTransactions {
                    count: rest
                        .get(1)
                        .map(|c| parse_count("count", c))
                        .transpose()?
                        .unwrap_or(10),
                    skip: rest
                        .get(2)
                        .map(|s| parse_count("skip", s))
                        .transpose()?
                        .unwrap_or(0),
                }
            }
            ("sendtoaddress", [address, amount]) => Command::SendToAddress {
                address: parse_address(address)?.as_unchecked().clone(),
                amount: parse_send_amount(amount)?,
            },
            ("generatetoaddress", [n, address]) => Command::GenerateToAddress {
                n: u32::try_from(parse_count("nblocks", n)?).map_err(|_| {
                    CliError::rpc(
                        ErrorCode::INVALID_PARAMETER,
                        format!("nblocks out of range: {n}"),
                    )
                })?,
                address: parse_address(address)?,
            },
            ("echo", args) => Command::Echo(args.iter().map(|s| (*s).to_owned()).collect()),
            ("stop", []) => Command::Stop,
            (name, _) => return Err(usage_error(name)),
        };
        Ok(command)
    }

    /// Runs the command against the node reached through `ctx`.
    pub(crate) fn run(&self, ctx: &Context) -> Result<Output, CliError> {
        let plain = |s: String| Ok(Output::Plain(s));
        match self {
            Command::GetBlockCount => plain(ctx.node()?.get_tip_info()?.height.to_string()),
            Command::GetBestBlockHash => plain(ctx.node()?.get_tip_info()?.hash.to_string()),
            Command::GetBlockchainInfo => blockchain_info(ctx.node()?.as_ref()).map(Output::Json),
            Command::GetBlockHash(height) => match ctx.node()?.get_block_hash(*height)? {
                Some(hash) => plain(hash.to_string()),
                None => Err(CliError::rpc(
                    ErrorCode::INVALID_PARAMETER,
                    "Block height out of range",
                )),
            },
            Command::GetBlock { hash, verbose } => get_block(ctx.node()?.as_ref(), hash, *verbose),
            Command::GetMempoolInfo => {
                let info = ctx.node()?.get_mempool_info()?;
                Ok(Output::Json(Json::Object(vec![
                    ("loaded", Json::Bool(true)),
                    ("size", Json::int(saturating_i64(info.size))),
                    ("bytes", Json::int(saturating_i64(info.bytes))),
                    ("usage", Json::int(saturating_i64(info.usage))),
                    ("total_fee", Json::amount(info.total_fee)),
                    (
                        "mempoolminfee",
                        Json::amount(btc_per_kvb(info.mempool_min_fee)),
                    ),
                    (
                        "minrelaytxfee",
                        Json::amount(btc_per_kvb(info.min_relay_tx_fee)),
                    ),
                ])))
            }
            Command::GetRawTransaction { txid, verbose } => {
                let node = ctx.node()?;
                let found = node.get_raw_transaction(txid)?.ok_or_else(|| {
                    CliError::rpc(
                        ErrorCode::INVALID_ADDRESS_OR_KEY,
                        "No such mempool or blockchain transaction",
                    )
                })?;
                if *verbose {
                    raw_transaction_json(node.as_ref(), &found).map(Output::Json)
                } else {
                    plain(serialize_hex(&found.tx))
                }
            }
            Command::SendRawTransaction { tx, max_fee_rate } => plain(
                ctx.node()?
                    .send_raw_transaction(tx, *max_fee_rate)?
                    .to_string(),
            ),
            Command::CreateWallet(name) => {
                let wallet = ctx.node()?.wallet_loader()?.create_wallet(name)?;
                wallet_name_json(wallet.as_ref())
            }
            Command::LoadWallet(name) => {
                let wallet = ctx.node()?.wallet_loader()?.load_wallet(name)?;
                wallet_name_json(wallet.as_ref())
            }
            Command::ListWallets => {
                let names = ctx.node()?.wallet_loader()?.list_wallets()?;
                Ok(Output::Json(Json::Array(
                    names.into_iter().map(Json::Str).collect(),
                )))
            }
            Command::GetNewAddress => plain(
                ctx.wallet()?
                    .get_new_address()?
                    .assume_checked()
                    .to_string(),
            ),
            Command::GetBalance => plain(format_btc(ctx.wallet()?.get_balances()?.trusted)),
            Command::GetBalances => {
                let b = ctx.wallet()?.get_balances()?;
                Ok(Output::Json(Json::Object(vec![(
                    "mine",
                    Json::Object(vec![
                        ("trusted", Json::amount(b.trusted)),
                        ("untrusted_pending", Json::amount(b.untrusted_pending)),
                        ("immature", Json::amount(b.immature)),
                    ]),
                )])))
            }
            Command::ListTransactions { count, skip } => {
                let wallet = ctx.wallet()?;
                let tip = ctx.node()?.get_tip_info()?.height;
                let entries = wallet_entries(&wallet.list_transactions()?, tip);
                let end = entries.len().saturating_sub(*skip);
                let start = end.saturating_sub(*count);
                Ok(Output::Json(Json::Array(entries[start..end].to_vec())))
            }
            Command::SendToAddress { address, amount } => plain(
                ctx.wallet()?
                    .send_to_address(address, *amount, None)?
                    .to_string(),
            ),
            Command::GenerateToAddress { n, address } => {
                let mining = ctx.init.make_mining()?;
                let hashes = mine::generate(mining.as_ref(), &address.script_pubkey(), *n)?;
                Ok(Output::Json(Json::Array(
                    hashes.iter().map(|h| Json::str(h.to_string())).collect(),
                )))
            }
            Command::Echo(args) => {
                let echo = ctx.init.make_echo()?;
                let back = args
                    .iter()
                    .map(|a| {
                        let bytes = echo.echo(a.as_bytes())?;
                        Ok(Json::str(String::from_utf8_lossy(&bytes)))
                    })
                    .collect::<Result<Vec<_>, InterfaceError>>()?;
                Ok(Output::Json(Json::Array(back)))
            }
            Command::Stop => {
                ctx.node()?.shutdown()?;
                plain("bitcoin-node stopping".to_owned())
            }
        }
    }
}

/// The node's interfaces, reached through its `Init`, and the wallet `-rpcwallet` selects.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) init: Arc<dyn Init>,
    /// `-rpcwallet`; `None` is the node's default wallet.
    pub(crate) rpcwallet: Option<String>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("rpcwallet", &self.rpcwallet)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn node(&self) -> Result<Arc<dyn Node>, InterfaceError> {
        self.init.make_node()
    }

    /// The `-rpcwallet` wallet, else the default wallet (also when others are loaded).
    pub(crate) fn wallet(&self) -> Result<Arc<dyn Wallet>, InterfaceError> {
        let loader = self.node()?.wallet_loader()?;
        match &self.rpcwallet {
            Some(name) => loader.get_wallet(name),
            None => loader.get_default_wallet(),
        }
    }
}

fn usage_error(name: &str) -> CliError {
    match name {
        "getblockhash" => CliError::usage("getblockhash HEIGHT"),
        "getblock" => CliError::usage("getblock HASH [0|1]"),
        "getrawtransaction" => CliError::usage("getrawtransaction TXID [0|1]"),
        "sendrawtransaction" => CliError::usage("sendrawtransaction HEX [MAXFEERATE]"),
        "createwallet" => CliError::usage("createwallet NAME"),
        "loadwallet" => CliError::usage("loadwallet NAME"),
        "listtransactions" => CliError::usage("listtransactions [\"*\" [COUNT [SKIP]]]"),
        "sendtoaddress" => CliError::usage("sendtoaddress ADDRESS AMOUNT"),
        "generatetoaddress" => CliError::usage("generatetoaddress N ADDRESS"),
        "getblockcount" | "getbestblockhash" | "getblockchaininfo" | "getmempoolinfo"
        | "listwallets" | "getnewaddress" | "getbalance" | "getbalances" | "stop" => {
            CliError::usage(&format!("{name} (takes no arguments)"))
        }
        _ => CliError::rpc(
            ErrorCode::METHOD_NOT_FOUND,
            format!("Method not found: {name}"),
        ),
    }
}

fn parse_height(s: &str) -> Result<u32, CliError> {
    match s.parse::<i64>() {
        Ok(h) => u32::try_from(h)
            .map_err(|_| CliError::rpc(ErrorCode::INVALID_PARAMETER, "Block height out of range")),
        Err(_) => Err(CliError::rpc(
            ErrorCode::INVALID_PARAMETER,
            format!("invalid height: {s}"),
        )),
    }
}

fn parse_count(what: &str, s: &str) -> Result<usize, CliError> {
    s.parse::<usize>()
        .map_err(|_| CliError::rpc(ErrorCode::INVALID_PARAMETER, format!("invalid {what}: {s}")))
}

/// A 64-hex-digit hash, with Core's message for a wrong length.
fn parse_hash<H: FromStr>(what: &str, s: &str) -> Result<H, CliError> {
    if s.len() != 64 {
        return Err(CliError::rpc(
            ErrorCode::INVALID_PARAMETER,
            format!("{what} must be of length 64 (not {}, for '{s}')", s.len()),
        ));
    }
    s.parse().map_err(|_| {
        CliError::rpc(
            ErrorCode::INVALID_PARAMETER,
            format!("{what} must be hexadecimal string (not '{s}')"),
        )
    })
}

/// `0|1` (also `false|true`), `default` when absent.
fn parse_verbosity(s: Option<&&str>, default: bool) -> Result<bool, CliError> {
    match s.copied() {
        None => Ok(default),
        Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => Err(CliError::rpc(
            ErrorCode::INVALID_PARAMETER,
            format!("verbosity must be 0 or 1, not {other}"),
        )),
    }
}

/// A regtest address.
pub(crate) fn parse_address(s: &str) -> Result<Address, CliError> {
    let invalid = || {
        CliError::rpc(
            ErrorCode::INVALID_ADDRESS_OR_KEY,
            format!("Invalid address: {s}"),
        )
    };
    s.parse::<Address<NetworkUnchecked>>()
        .map_err(|_| invalid())?
        .require_network(Network::Regtest)
        .map_err(|_| invalid())
}

/// A positive amount in BTC with at most eight decimals.
pub(crate) fn parse_send_amount(s: &str) -> Result<Amount, CliError> {
    match Amount::from_str_in(s, Denomination::Bitcoin) {
        Ok(a) if a > Amount::ZERO => Ok(a),
        Ok(_) => Err(CliError::rpc(ErrorCode(-3), "Invalid amount for send")),
        Err(_) => Err(CliError::rpc(ErrorCode(-3), format!("Invalid amount: {s}"))),
    }
}

/// A fee rate given in BTC/kvB (Core's `maxfeerate`); `0` means no limit.
fn parse_fee_rate_btc_kvb(s: &str) -> Result<FeeRate, CliError> {
    let per_kvb = Amount::from_str_in(s, Denomination::Bitcoin)
        .map_err(|_| CliError::rpc(ErrorCode(-3), format!("Invalid amount: {s}")))?;
    if per_kvb == Amount::ZERO {
        return Ok(FeeRate::MAX);
    }
    Ok(FeeRate::from_sat_per_kwu(per_kvb.to_sat() / 4))
}

/// A fee rate as Core prints it: BTC per 1000 virtual bytes.
fn btc_per_kvb(rate: FeeRate) -> Amount {
    Amount::from_sat(rate.to_sat_per_kwu().saturating_mul(4))
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn wallet_name_json(wallet: &dyn Wallet) -> Result<Output, CliError> {
    Ok(Output::Json(Json::Object(vec![(
        "name",
        Json::Str(wallet.get_wallet_name()?),
    )])))
}

fn blockchain_info(node: &dyn Node) -> Result<Json, CliError> {
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

fn get_block(node: &dyn Node, hash: &BlockHash, verbose: bool) -> Result<Output, CliError> {
    let not_found = || CliError::rpc(ErrorCode::INVALID_ADDRESS_OR_KEY, "Block not found");
    let found = node.get_block(hash)?.ok_or_else(not_found)?;
    let block = found.block.as_ref().ok_or_else(not_found)?;
    if !verbose {
        return Ok(Output::Plain(serialize_hex(block)));
    }
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
        block,
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
fn raw_transaction_json(node: &dyn Node, found: &FoundTransaction) -> Result<Json, CliError> {
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

/// `listtransactions`' entries for `txs` (oldest first), one per output as Core lists them:
/// a transaction that spends our coins lists its outputs to others as `send` (our outputs
/// are change); any other lists its outputs to us as `receive`, or for a coinbase
/// `generate`/`immature`.
pub(crate) fn wallet_entries(txs: &[WalletTx], tip_height: u32) -> Vec<Json> {
    let mut entries = Vec::new();
    for wtx in txs {
        let confirmations = match &wtx.block {
            Some(b) => i64::from(tip_height) - i64::from(b.height) + 1,
            None => 0,
        };
        let is_send = wtx.debit > Amount::ZERO;
        for (vout, output) in wtx.tx.output.iter().enumerate() {
            let mine = wtx.txout_is_mine.get(vout).copied().unwrap_or(false);
            if mine == is_send {
                continue;
            }
            let category = if is_send {
                "send"
            } else if !wtx.tx.is_coinbase() {
                "receive"
            } else if confirmations < COINBASE_MATURITY_CONFIRMATIONS {
                "immature"
            } else {
                "generate"
            };
            let value = output.value.to_signed().unwrap_or(SignedAmount::MAX);
            let mut fields = Vec::new();
            if let Ok(address) = Address::from_script(&output.script_pubkey, Network::Regtest) {
                fields.push(("address", Json::str(address.to_string())));
            }
            fields.push(("category", Json::str(category)));
            fields.push(("amount", Json::Amount(if is_send { -value } else { value })));
            fields.push(("vout", Json::int(saturating_i64(vout as u64))));
            if let (true, Some(fee)) = (is_send, wtx.fee) {
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

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use bitcoin::consensus::encode::deserialize_hex;
    use bitcoin::hashes::Hash;
    use bitcoin::{BlockHash, Txid};

    use interfaces::BlockRef;

    use super::*;
    use crate::testnode;

    pub(crate) const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

    /// A test node served over a session pair, the client's context, and both sessions.
    pub(crate) fn start() -> (
        Arc<testnode::TestNode>,
        Context,
        (ipc_shm::call::Session, ipc_shm::call::Session),
    ) {
        let node = testnode::TestNode::new();
        let (init, sessions) = node.serve_pair();
        (
            node,
            Context {
                init,
                rpcwallet: None,
            },
            sessions,
        )
    }

    fn run(ctx: &Context, line: &[&str]) -> Result<Output, CliError> {
        let args: Vec<String> = line[1..].iter().map(|s| (*s).to_owned()).collect();
        Command::parse(line[0], &args)?.run(ctx)
    }

    fn plain(ctx: &Context, line: &[&str]) -> String {
        match run(ctx, line) {
            Ok(Output::Plain(s)) => s,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn json(ctx: &Context, line: &[&str]) -> Json {
        match run(ctx, line) {
            Ok(Output::Json(j)) => j,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn rpc_error(result: Result<impl fmt::Debug, CliError>) -> (i32, String) {
        match result {
            Err(CliError::Rpc { code, message }) => (code.0, message),
            other => panic!("expected an RPC error, got {other:?}"),
        }
    }

    fn field<'a>(j: &'a Json, key: &str) -> &'a Json {
        match j {
            Json::Object(fields) => {
                &fields
                    .iter()
                    .find(|(k, _)| *k == key)
                    .unwrap_or_else(|| panic!("no {key} in {j}"))
                    .1
            }
            _ => panic!("{j} is not an object"),
        }
    }

    fn strings(j: &Json) -> Vec<String> {
        match j {
            Json::Array(items) => items
                .iter()
                .map(|i| match i {
                    Json::Str(s) => s.clone(),
                    other => panic!("{other} is not a string"),
                })
                .collect(),
            _ => panic!("{j} is not an array"),
        }
    }

    #[test]
    fn chain_commands_over_a_session() {
        let (node, ctx, _sessions) = start();
        assert_eq!(plain(&ctx, &["getblockcount"]), "0");

        let hashes = strings(&json(&ctx, &["generatetoaddress", "3", ADDRESS]));
        assert_eq!(hashes.len(), 3);
        assert_eq!(plain(&ctx, &["getblockcount"]), "3");
        assert_eq!(plain(&ctx, &["getbestblockhash"]), hashes[2]);
        assert_eq!(plain(&ctx, &["getblockhash", "3"]), hashes[2]);
        assert_eq!(
            rpc_error(run(&ctx, &["getblockhash", "4"])),
            (-8, "Block height out of range".into())
        );

        let info = json(&ctx, &["getblockchaininfo"]);
        assert_eq!(field(&info, "blocks"), &Json::Int(3));
        assert_eq!(field(&info, "bestblockhash"), &Json::str(hashes[2].clone()));
        assert_eq!(field(&info, "chain"), &Json::str("regtest"));

        let block = json(&ctx, &["getblock", &hashes[1]]);
        assert_eq!(field(&block, "hash"), &Json::str(hashes[1].clone()));
        assert_eq!(field(&block, "height"), &Json::Int(2));
        assert_eq!(field(&block, "confirmations"), &Json::Int(2));
        assert_eq!(
            field(&block, "previousblockhash"),
            &Json::str(hashes[0].clone())
        );
        assert_eq!(
            field(&block, "nextblockhash"),
            &Json::str(hashes[2].clone())
        );
        assert_eq!(field(&block, "nTx"), &Json::Int(1));
        let coinbase_txid = strings(field(&block, "tx")).remove(0);

        // Verbosity 0 is the consensus encoding of a block that meets its target.
        let raw: bitcoin::Block =
            deserialize_hex(&plain(&ctx, &["getblock", &hashes[1], "0"])).unwrap();
        assert_eq!(raw.block_hash().to_string(), hashes[1]);
        assert!(raw.header.validate_pow(raw.header.target()).is_ok());

        let tx = json(&ctx, &["getrawtransaction", &coinbase_txid, "1"]);
        assert_eq!(field(&tx, "confirmations"), &Json::Int(2));
        let Json::Array(vout) = field(&tx, "vout") else {
            panic!("vout")
        };
        assert_eq!(field(&vout[0], "value").to_string(), "50.00000000");
        assert_eq!(
            field(field(&vout[0], "scriptPubKey"), "address"),
            &Json::str(ADDRESS)
        );
        let hex = plain(&ctx, &["getrawtransaction", &coinbase_txid]);
        let decoded: Transaction = deserialize_hex(&hex).unwrap();
        assert_eq!(decoded.compute_txid().to_string(), coinbase_txid);
        assert_eq!(
            rpc_error(run(
                &ctx,
                &["getrawtransaction", &Txid::all_zeros().to_string()]
            )),
            (-5, "No such mempool or blockchain transaction".into())
        );
        assert_eq!(
            rpc_error(run(
                &ctx,
                &["getblock", &BlockHash::all_zeros().to_string()]
            )),
            (-5, "Block not found".into())
        );
        // The node's rejection comes back with its code and reason.
        assert_eq!(
            rpc_error(run(&ctx, &["sendrawtransaction", &hex])),
            (-26, "bad-txns-inputs-missingorspent".into())
        );

        let mempool = json(&ctx, &["getmempoolinfo"]);
        assert_eq!(field(&mempool, "size"), &Json::Int(0));
        assert_eq!(field(&mempool, "minrelaytxfee").to_string(), "0.00001000");

        assert_eq!(
            strings(&json(&ctx, &["echo", "a", "b c", ""])),
            ["a", "b c", ""]
        );
        // Wallet commands without a wallet process: the node's error, as bitcoin-cli shows it.
        let err = run(&ctx, &["getnewaddress"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error code: -18: no wallet process is attached"
        );

        assert_eq!(plain(&ctx, &["stop"]), "bitcoin-node stopping");
        assert!(node.shutdown_requested());
    }

    #[test]
    fn wallet_commands_go_to_the_default_wallet_unless_rpcwallet_says_otherwise() {
        let (node, ctx, _sessions) = start();
        let wallets = node.attach_wallets(Amount::from_int_btc(50));
        assert_eq!(strings(&json(&ctx, &["listwallets"])), ["default"]);
        assert_eq!(
            json(&ctx, &["createwallet", "w2"]).to_string(),
            "{\n  \"name\": \"w2\"\n}"
        );
        assert_eq!(rpc_error(run(&ctx, &["createwallet", "w2"])).0, -36);
        assert_eq!(rpc_error(run(&ctx, &["loadwallet", "w2"])).0, -35);
        assert_eq!(strings(&json(&ctx, &["listwallets"])), ["default", "w2"]);

        // Without -rpcwallet: the default wallet, although w2 was loaded after it.
        assert_eq!(plain(&ctx, &["getbalance"]), "50.00000000");
        assert_eq!(
            json(&ctx, &["getbalances"]).to_string(),
            "{\n  \"mine\": {\n    \"trusted\": 50.00000000,\n    \"untrusted_pending\": 0.00000000,\n    \"immature\": 0.00000000\n  }\n}"
        );
        let w2 = Context {
            rpcwallet: Some("w2".into()),
            ..ctx.clone()
        };
        assert_eq!(plain(&w2, &["getbalance"]), "0.00000000");
        let to_w2 = plain(&w2, &["getnewaddress"]);
        assert!(parse_address(&to_w2).is_ok(), "{to_w2}");
        assert_ne!(
            plain(&w2, &["getnewaddress"]),
            to_w2,
            "a fresh address each time"
        );

        let txid = plain(&ctx, &["sendtoaddress", &to_w2, "1.5"]);
        assert_eq!(txid.len(), 64);
        assert_eq!(plain(&ctx, &["getbalance"]), "48.50000000");
        assert_eq!(
            wallets.wallet("default").sent(),
            [(to_w2.clone(), Amount::from_sat(150_000_000), None)]
        );
        assert_eq!(
            rpc_error(run(&w2, &["sendtoaddress", &to_w2, "1"])),
            (-6, "Insufficient funds".into())
        );
        assert_eq!(
            strings(&json(&ctx, &["listtransactions"])),
            Vec::<String>::new()
        );

        let missing = Context {
            rpcwallet: Some("nope".into()),
            ..ctx.clone()
        };
        assert_eq!(
            run(&missing, &["getbalance"]).unwrap_err().to_string(),
            "error code: -18: Requested wallet does not exist or is not loaded"
        );
    }

    #[test]
    fn mined_blocks_reach_tip_subscribers_across_the_session() {
        let (_node, ctx, _sessions) = start();
        let (tx, rx) = mpsc::channel();
        let _handler = ctx
            .node()
            .unwrap()
            .handle_notify_block_tip(Arc::new(move |tip: &interfaces::TipInfo| {
                let _ = tx.send(tip.height);
            }))
            .unwrap();
        json(&ctx, &["generatetoaddress", "2", ADDRESS]);
        let heights: Vec<u32> = (0..2)
            .map(|_| {
                rx.recv_timeout(Duration::from_secs(30))
                    .expect("notification")
            })
            .collect();
        assert_eq!(heights, [1, 2]);
    }

    #[test]
    fn error_chains_print_each_cause_once() {
        #[derive(Debug)]
        struct Inner;
        impl fmt::Display for Inner {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("peer closed")
            }
        }
        impl std::error::Error for Inner {}
        /// Prints its source in its own text and returns it as `source()` too.
        #[derive(Debug)]
        struct Outer(Inner);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "handshake failed: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = anyhow::Error::new(Outer(Inner)).context("cannot start bitcoin-node");
        assert_eq!(
            CliError::Other(e).to_string(),
            "error: cannot start bitcoin-node: handshake failed: peer closed"
        );
    }

    #[test]
    fn a_gone_node_is_one_clear_error() {
        let (_node, ctx, (server, _client)) = start();
        drop(server);
        let err = run(&ctx, &["getblockcount"]).unwrap_err();
        assert!(matches!(err, CliError::Other(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "error: the node closed the connection (it exited or was stopped; see its debug.log)"
        );
    }

    #[test]
    fn argument_errors_come_before_any_call() {
        let cases: &[(&[&str], i32, &str)] = &[
            (&["frobnicate"], -32601, "Method not found: frobnicate"),
            (
                &["getblockcount", "1"],
                -1,
                "usage: getblockcount (takes no arguments)",
            ),
            (&["getblockhash"], -1, "usage: getblockhash HEIGHT"),
            (&["getblockhash", "-1"], -8, "Block height out of range"),
            (&["getblockhash", "x"], -8, "invalid height: x"),
            (
                &["getblock", "abc"],
                -8,
                "blockhash must be of length 64 (not 3, for 'abc')",
            ),
            (
                &["getblock", &"z".repeat(64)],
                -8,
                &format!(
                    "blockhash must be hexadecimal string (not '{}')",
                    "z".repeat(64)
                ),
            ),
            (
                &["getblock", &"0".repeat(64), "2"],
                -8,
                "verbosity must be 0 or 1, not 2",
            ),
            (&["sendrawtransaction", "00"], -22, "TX decode failed"),
            (&["sendtoaddress", "nope", "1"], -5, "Invalid address: nope"),
            (
                &[
                    "sendtoaddress",
                    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                    "1",
                ],
                -5,
                "Invalid address: bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            ),
            (
                &["sendtoaddress", ADDRESS, "0"],
                -3,
                "Invalid amount for send",
            ),
            (
                &["sendtoaddress", ADDRESS, "1.000000001"],
                -3,
                "Invalid amount: 1.000000001",
            ),
            (
                &["sendtoaddress", ADDRESS],
                -1,
                "usage: sendtoaddress ADDRESS AMOUNT",
            ),
            (
                &["generatetoaddress", "x", ADDRESS],
                -8,
                "invalid nblocks: x",
            ),
            (
                &["listtransactions", "label"],
                -4,
                "label \"label\" is not supported; use \"*\"",
            ),
        ];
        for (line, code, message) in cases {
            let args: Vec<String> = line[1..].iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(
                rpc_error(Command::parse(line[0], &args)),
                (*code, (*message).to_owned()),
                "{line:?}"
            );
        }
        assert_eq!(
            Command::parse("sendtoaddress", &[ADDRESS.into(), "0.5".into()]).unwrap(),
            Command::SendToAddress {
                address: ADDRESS.parse().unwrap(),
                amount: Amount::from_sat(50_000_000)
            }
        );
        assert_eq!(
            Command::parse("listtransactions", &["*".into(), "2".into(), "1".into()]).unwrap(),
            Command::ListTransactions { count: 2, skip: 1 }
        );
    }

    fn wallet_tx(
        coinbase: bool,
        outputs: &[(u64, bool)],
        debit: u64,
        height: Option<u32>,
    ) -> WalletTx {
        use bitcoin::{OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};
        let script = parse_address(ADDRESS).unwrap().script_pubkey();
        let tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: if coinbase {
                    OutPoint::null()
                } else {
                    OutPoint {
                        txid: Txid::all_zeros(),
                        vout: 7,
                    }
                },
                script_sig: ScriptBuf::from_bytes(vec![1, 1]),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: outputs
                .iter()
                .map(|(sat, _)| TxOut {
                    value: Amount::from_sat(*sat),
                    script_pubkey: script.clone(),
                })
                .collect(),
        };
        let credit = outputs
            .iter()
            .filter(|(_, mine)| *mine)
            .map(|(s, _)| *s)
            .sum();
        let total: u64 = outputs.iter().map(|(s, _)| *s).sum();
        WalletTx {
            tx,
            credit: Amount::from_sat(credit),
            debit: Amount::from_sat(debit),
            fee: (debit > 0).then(|| Amount::from_sat(debit - total)),
            txout_is_mine: outputs.iter().map(|(_, mine)| *mine).collect(),
            block: height.map(|height| BlockRef {
                hash: BlockHash::all_zeros(),
                height,
            }),
            time: 1_700_000_000,
        }
    }

    #[test]
    fn listtransactions_entries_follow_core() {
        let coinbase = wallet_tx(true, &[(5_000_000_000, true)], 0, Some(1));
        let send = wallet_tx(
            false,
            &[(100_000_000, false), (3_899_999_000, true)],
            4_000_000_000,
            Some(2),
        );
        let receive = wallet_tx(false, &[(7, false), (25_000, true)], 0, None);
        let txs = [coinbase, send, receive];

        let entries = wallet_entries(&txs, 100);
        assert_eq!(entries.len(), 3, "one entry per listed output");
        let summary: Vec<(String, String, String)> = entries
            .iter()
            .map(|e| {
                (
                    field(e, "category").to_string(),
                    field(e, "amount").to_string(),
                    field(e, "confirmations").to_string(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("\"immature\"".into(), "50.00000000".into(), "100".into()),
                ("\"send\"".into(), "-1.00000000".into(), "99".into()),
                ("\"receive\"".into(), "0.00025000".into(), "0".into()),
            ]
        );
        assert_eq!(field(&entries[1], "fee").to_string(), "-0.00001000");
        assert_eq!(field(&entries[1], "vout"), &Json::Int(0));
        assert_eq!(field(&entries[2], "vout"), &Json::Int(1));
        assert_eq!(field(&entries[0], "generated"), &Json::Bool(true));
        assert_eq!(field(&entries[0], "address"), &Json::str(ADDRESS));

        // At 101 confirmations a coinbase is spendable: "generate".
        let mature = wallet_entries(&txs[..1], 101);
        assert_eq!(field(&mature[0], "category"), &Json::str("generate"));
    }
}
