//! bitcoin-cli's commands over the interfaces: argument parsing ([`args`], all checked
//! before anything is sent to the node), execution, and output ([`shapes`]).

mod args;
mod shapes;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::address::NetworkUnchecked;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{Address, Amount, BlockHash, FeeRate, Transaction, Txid};
use interfaces::{ErrorCode, Init, InterfaceError, Node, Wallet, WalletLoader};

#[cfg(test)]
pub(crate) use self::args::COMMANDS;
use self::args::{
    command_help, parse_count, parse_fee_rate_btc_kvb, parse_hash, parse_height, parse_verbosity,
    usage_error,
};
pub(crate) use self::args::{commands_list, parse_address, parse_send_amount};
use self::shapes::{
    blockchain_info, btc_per_kvb, get_block, raw_transaction_json, saturating_i64, wallet_entries,
    wallet_name_json,
};
use crate::json::{Json, format_btc};
use crate::mine;

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
            CliError::Other(e) => write!(f, "error: {}", with_causes(e)),
        }
    }
}

/// An error and its causes, `outer: inner: ...`, leaving out a cause whose text its parent
/// already includes (some errors print their source in their own text).
fn with_causes(e: &anyhow::Error) -> String {
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

/// A command with its arguments parsed and checked; each variant is the bitcoin-cli command
/// of the same name.
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
    /// The wallet named, else the one `-rpcwallet` names.
    UnloadWallet(Option<String>),
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
    /// bitcoin-cli's `help [COMMAND]`: the command list, or one command's usage. Runs
    /// without a node.
    Help(Option<String>),
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
            ("unloadwallet", []) => Command::UnloadWallet(None),
            ("unloadwallet", [name]) => Command::UnloadWallet(Some((*name).to_owned())),
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
            ("help", []) => Command::Help(None),
            ("help", [topic]) => {
                help(Some(topic))?;
                Command::Help(Some((*topic).to_owned()))
            }
            (name, _) => return Err(usage_error(name)),
        };
        Ok(command)
    }

    /// The outcome of a command that needs no node (`help`); `None` for the others.
    pub(crate) fn run_without_node(&self) -> Option<Result<Output, CliError>> {
        match self {
            Command::Help(topic) => Some(help(topic.as_deref())),
            _ => None,
        }
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
                let wallet = ctx.wallet_loader()?.create_wallet(name)?;
                wallet_name_json(wallet.as_ref())
            }
            Command::LoadWallet(name) => {
                let wallet = ctx.wallet_loader()?.load_wallet(name)?;
                wallet_name_json(wallet.as_ref())
            }
            Command::UnloadWallet(name) => {
                let Some(name) = name.as_ref().or(ctx.rpcwallet.as_ref()) else {
                    return Err(CliError::rpc(
                        ErrorCode::INVALID_PARAMETER,
                        "Either the RPC endpoint wallet or the wallet name parameter must be \
                         provided",
                    ));
                };
                ctx.wallet_loader()?.unload_wallet(name)?;
                Ok(Output::Json(Json::Object(Vec::new())))
            }
            Command::ListWallets => {
                let names = ctx.wallet_loader()?.list_wallets()?;
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
            Command::Help(topic) => help(topic.as_deref()),
        }
    }
}

/// `help`: the command list; `help COMMAND`: its usage and what it does.
fn help(topic: Option<&str>) -> Result<Output, CliError> {
    let text = match topic {
        None => format!("Commands:\n{}", commands_list().trim_end()),
        Some(name) => {
            let c = command_help(name).ok_or_else(|| {
                // Core's words (which Core prints as a result, exiting 0).
                CliError::rpc(
                    ErrorCode::MISC_ERROR,
                    format!("help: unknown command: {name}"),
                )
            })?;
            format!("{}\n  {}", c.usage(), c.about)
        }
    };
    Ok(Output::Plain(text))
}

/// How long wallet access waits for the wallet process of a node we just spawned: the node
/// starts `bitcoin-wallet` and attaches it a moment after it serves us (Core's
/// `bitcoin-cli -rpcwait` waits out a starting node the same way).
const WALLET_ATTACH_WAIT: Duration = Duration::from_secs(10);

/// The node's interfaces, reached through its `Init`, and the wallet `-rpcwallet` selects.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) init: Arc<dyn Init>,
    /// `-rpcwallet`; `None` is the node's default wallet.
    pub(crate) rpcwallet: Option<String>,
    /// We just spawned the node for this command (or UI). Its wallet process may still be
    /// attaching, so wallet access waits for it (up to [`WALLET_ATTACH_WAIT`]) instead of
    /// failing at once; and only the default wallet is loaded at start, so `-rpcwallet=NAME`
    /// loads NAME when it is not loaded yet.
    pub(crate) spawned_node: bool,
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

    /// The wallet process's loader; see [`Context::spawned_node`].
    pub(crate) fn wallet_loader(&self) -> Result<Arc<dyn WalletLoader>, InterfaceError> {
        let node = self.node()?;
        let deadline = Instant::now() + WALLET_ATTACH_WAIT;
        let mut pause = Duration::from_millis(5);
        loop {
            match node.wallet_loader() {
                Err(e)
                    if self.spawned_node
                        && e.code() == Some(ErrorCode::WALLET_NOT_FOUND)
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                outcome => return outcome,
            }
        }
    }

    /// The `-rpcwallet` wallet, else the default wallet (also when others are loaded).
    pub(crate) fn wallet(&self) -> Result<Arc<dyn Wallet>, InterfaceError> {
        let loader = self.wallet_loader()?;
        match &self.rpcwallet {
            Some(name) => match loader.get_wallet(name) {
                Err(e) if self.spawned_node && e.code() == Some(ErrorCode::WALLET_NOT_FOUND) => {
                    loader.load_wallet(name)
                }
                outcome => outcome,
            },
            None => loader.get_default_wallet(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
