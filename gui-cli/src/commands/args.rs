//! Arguments as bitcoin-cli takes them, each failure in bitcoin-cli's words and codes.

use std::str::FromStr;

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, Denomination, FeeRate, Network};
use interfaces::ErrorCode;

use super::CliError;

/// The error for `name` with arguments that do not fit it, or for an unknown command.
pub(super) fn usage_error(name: &str) -> CliError {
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

/// A positive amount in BTC with at most eight decimals.
pub(crate) fn parse_send_amount(s: &str) -> Result<Amount, CliError> {
    match Amount::from_str_in(s, Denomination::Bitcoin) {
        Ok(a) if a > Amount::ZERO => Ok(a),
        Ok(_) => Err(CliError::rpc(ErrorCode(-3), "Invalid amount for send")),
        Err(_) => Err(CliError::rpc(ErrorCode(-3), format!("Invalid amount: {s}"))),
    }
}

/// A fee rate given in BTC/kvB (Core's `maxfeerate`); `0` means no limit.
pub(super) fn parse_fee_rate_btc_kvb(s: &str) -> Result<FeeRate, CliError> {
    let per_kvb = Amount::from_str_in(s, Denomination::Bitcoin)
        .map_err(|_| CliError::rpc(ErrorCode(-3), format!("Invalid amount: {s}")))?;
    if per_kvb == Amount::ZERO {
        return Ok(FeeRate::MAX);
    }
    Ok(FeeRate::from_sat_per_kwu(per_kvb.to_sat() / 4))
}
