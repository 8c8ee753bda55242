//! Arguments as bitcoin-cli takes them, each failure in bitcoin-cli's words and codes.

use std::str::FromStr;

use bitcoin::address::NetworkUnchecked;
use bitcoin::amount::ParseAmountError;
use bitcoin::{Address, Amount, Denomination, FeeRate, Network};
use interfaces::ErrorCode;

use super::CliError;
use crate::options::wrap;

/// One of the commands `bitcoin-gui` runs: its name, its arguments as its usage shows them
/// (empty: it takes none) and what it does, for `-help`, `help` and usage errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommandHelp {
    pub(crate) name: &'static str,
    pub(crate) args: &'static str,
    pub(crate) about: &'static str,
}

impl CommandHelp {
    /// `name args`, as typed.
    pub(crate) fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_owned()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }
}

const fn cmd(name: &'static str, args: &'static str, about: &'static str) -> CommandHelp {
    CommandHelp { name, args, about }
}

/// Every command, in the order `-help` and `help` list them.
pub(crate) const COMMANDS: &[CommandHelp] = &[
    cmd("getblockcount", "", "height of the active chain's tip"),
    cmd("getbestblockhash", "", "hash of the tip"),
    cmd("getblockchaininfo", "", "chain state as JSON"),
    cmd(
        "getblockhash",
        "HEIGHT",
        "hash of the active-chain block at HEIGHT",
    ),
    cmd(
        "getblock",
        "HASH [0|1]",
        "block as hex (0) or JSON (1, default)",
    ),
    cmd("getmempoolinfo", "", "mempool state as JSON"),
    cmd(
        "getrawtransaction",
        "TXID [0|1]",
        "transaction as hex (0, default) or JSON (1)",
    ),
    cmd(
        "sendrawtransaction",
        "HEX [MAXFEERATE]",
        "submit a transaction to the mempool; prints its txid (MAXFEERATE: BTC/kvB, \
         0.10 if left out, 0 for no limit)",
    ),
    cmd("createwallet", "NAME", "create and load a wallet"),
    cmd("loadwallet", "NAME", "load an existing wallet"),
    cmd(
        "unloadwallet",
        "[NAME]",
        "unload a wallet (NAME, else the one -rpcwallet names)",
    ),
    cmd("listwallets", "", "names of the loaded wallets"),
    cmd("getnewaddress", "", "a fresh receive address of the wallet"),
    cmd("getbalance", "", "the wallet's trusted balance"),
    cmd(
        "getbalances",
        "",
        "trusted, untrusted_pending and immature balances",
    ),
    cmd(
        "listtransactions",
        "[\"*\" [COUNT [SKIP]]]",
        "the wallet's latest transactions (COUNT 10, SKIP 0)",
    ),
    cmd(
        "sendtoaddress",
        "ADDRESS AMOUNT",
        "pay AMOUNT BTC to ADDRESS; prints the txid",
    ),
    cmd(
        "generatetoaddress",
        "N ADDRESS",
        "mine N blocks to ADDRESS (proof of work solved here)",
    ),
    cmd(
        "echo",
        "ARGS...",
        "send ARGS through the node's Echo and print them",
    ),
    cmd("stop", "", "shut the node down"),
    cmd(
        "help",
        "[COMMAND]",
        "this list, or the usage of COMMAND (needs no node)",
    ),
];

/// The command called `name`.
pub(crate) fn command_help(name: &str) -> Option<&'static CommandHelp> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The command list as `-help` and `help` print it: one command a line, its description
/// in a column (starting on the next line when the usage is too long for its own).
pub(crate) fn commands_list() -> String {
    const COLUMN: usize = 36;
    let mut out = String::new();
    for c in COMMANDS {
        let usage = format!("  {}", c.usage());
        let about = wrap(c.about, COLUMN);
        if usage.len() + 2 <= COLUMN {
            out.push_str(&format!("{usage:COLUMN$}{}", &about[COLUMN..]));
        } else {
            out.push_str(&format!("{usage}\n{about}"));
        }
        out.push('\n');
    }
    out
}

/// The error for `name` with arguments that do not fit it, or for an unknown command.
pub(super) fn usage_error(name: &str) -> CliError {
    match command_help(name) {
        Some(c) if c.args.is_empty() => CliError::usage(&format!("{name} (takes no arguments)")),
        Some(c) => CliError::usage(&c.usage()),
        None => CliError::rpc(
            ErrorCode::METHOD_NOT_FOUND,
            format!("Method not found: {name}"),
        ),
    }
}

pub(super) fn parse_height(s: &str) -> Result<u32, CliError> {
    match s.parse::<i64>() {
        Ok(h) => u32::try_from(h)
            .map_err(|_| CliError::rpc(ErrorCode::INVALID_PARAMETER, "Block height out of range")),
        Err(_) => Err(CliError::rpc(
            ErrorCode::INVALID_PARAMETER,
            format!("invalid height: {s}"),
        )),
    }
}

pub(super) fn parse_count(what: &str, s: &str) -> Result<usize, CliError> {
    s.parse::<usize>()
        .map_err(|_| CliError::rpc(ErrorCode::INVALID_PARAMETER, format!("invalid {what}: {s}")))
}

/// A 64-hex-digit hash, with Core's message for a wrong length.
pub(super) fn parse_hash<H: FromStr>(what: &str, s: &str) -> Result<H, CliError> {
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
pub(super) fn parse_verbosity(s: Option<&&str>, default: bool) -> Result<bool, CliError> {
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

/// Core's `RPC_TYPE_ERROR`, the code of its amount errors.
const TYPE_ERROR: ErrorCode = ErrorCode(-3);

/// An amount in BTC as Core's `AmountFromValue` takes it: at most eight decimals
/// (`Invalid amount`), and between 0 and 21,000,000 BTC (`Amount out of range`), both
/// with code -3.
fn parse_amount(s: &str) -> Result<Amount, CliError> {
    let out_of_range = || CliError::rpc(TYPE_ERROR, "Amount out of range");
    match Amount::from_str_in(s, Denomination::Bitcoin) {
        Ok(a) if a > Amount::MAX_MONEY => Err(out_of_range()),
        Ok(a) => Ok(a),
        // Negative, or too large for any amount.
        Err(ParseAmountError::OutOfRange(_)) => Err(out_of_range()),
        Err(_) => Err(CliError::rpc(TYPE_ERROR, format!("Invalid amount: {s}"))),
    }
}

/// An amount to send: [`parse_amount`], and more than zero (`Invalid amount for send`).
pub(crate) fn parse_send_amount(s: &str) -> Result<Amount, CliError> {
    match parse_amount(s)? {
        Amount::ZERO => Err(CliError::rpc(TYPE_ERROR, "Invalid amount for send")),
        a => Ok(a),
    }
}

/// A fee rate given in BTC/kvB (Core's `maxfeerate`, an amount as [`parse_amount`] takes
/// it); `0` means no limit.
pub(super) fn parse_fee_rate_btc_kvb(s: &str) -> Result<FeeRate, CliError> {
    let per_kvb = parse_amount(s)?;
    if per_kvb == Amount::ZERO {
        return Ok(FeeRate::MAX);
    }
    Ok(FeeRate::from_sat_per_kwu(per_kvb.to_sat() / 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc_error(result: Result<impl std::fmt::Debug, CliError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn amounts_are_checked_as_core_checks_them() {
        for (amount, message) in [
            ("-1", "error code: -3: Amount out of range"),
            ("-0.00000001", "error code: -3: Amount out of range"),
            ("21000000.00000001", "error code: -3: Amount out of range"),
            ("100000000", "error code: -3: Amount out of range"),
            (
                "99999999999999999999",
                "error code: -3: Amount out of range",
            ),
            ("0", "error code: -3: Invalid amount for send"),
            ("1.000000001", "error code: -3: Invalid amount: 1.000000001"),
            ("abc", "error code: -3: Invalid amount: abc"),
        ] {
            assert_eq!(rpc_error(parse_send_amount(amount)), message, "{amount}");
        }
        assert_eq!(
            parse_send_amount("21000000").unwrap(),
            Amount::from_int_btc(21_000_000)
        );
        assert_eq!(
            parse_send_amount("0.00000001").unwrap(),
            Amount::from_sat(1)
        );
        assert_eq!(
            rpc_error(parse_fee_rate_btc_kvb("-0.1")),
            "error code: -3: Amount out of range"
        );
        assert_eq!(parse_fee_rate_btc_kvb("0").unwrap(), FeeRate::MAX);
    }

    #[test]
    fn usage_comes_from_the_command_table() {
        assert_eq!(
            usage_error("sendrawtransaction").to_string(),
            "error code: -1: usage: sendrawtransaction HEX [MAXFEERATE]"
        );
        assert_eq!(
            usage_error("listtransactions").to_string(),
            "error code: -1: usage: listtransactions [\"*\" [COUNT [SKIP]]]"
        );
        assert_eq!(
            usage_error("stop").to_string(),
            "error code: -1: usage: stop (takes no arguments)"
        );
        let list = commands_list();
        let starts = list.lines().filter(|l| !l.starts_with("   ")).count();
        assert_eq!(starts, COMMANDS.len(), "{list}");
        assert!(list.lines().all(|l| l.len() <= 79), "{list}");
        assert!(
            list.contains("  listtransactions [\"*\" [COUNT [SKIP]]]\n"),
            "{list}"
        );
    }
}
