//! Command line of `bitcoin-gui`: Bitcoin Core's single-dash options (`-datadir=DIR`) and
//! GNU-style ones (`--datadir DIR`), then an optional bitcoin-cli command and its arguments.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser};
use ipc_shm::Transport;

/// The commands `bitcoin-gui` runs, as `bitcoin-gui [OPTIONS] COMMAND [ARGS...]`.
const COMMANDS_HELP: &str = "\
Commands (bitcoin-cli's names and output; without one, the terminal UI starts):
  getblockcount                     height of the active chain's tip
  getbestblockhash                  hash of the tip
  getblockchaininfo                 chain state as JSON
  getblockhash HEIGHT               hash of the active-chain block at HEIGHT
  getblock HASH [0|1]               block as hex (0) or JSON (1, default)
  getmempoolinfo                    mempool state as JSON
  getrawtransaction TXID [0|1]      transaction as hex (0, default) or JSON (1)
  sendrawtransaction HEX            submit a transaction to the mempool; prints its txid
  createwallet NAME                 create and load a wallet
  loadwallet NAME                   load an existing wallet
  listwallets                       names of the loaded wallets
  getnewaddress                     a fresh receive address of the wallet
  getbalance                        the wallet's trusted balance
  getbalances                       trusted, untrusted_pending and immature balances
  listtransactions [* [COUNT [SKIP]]]  the wallet's latest transactions (COUNT 10)
  sendtoaddress ADDRESS AMOUNT      pay AMOUNT BTC to ADDRESS; prints the txid
  generatetoaddress N ADDRESS       mine N blocks to ADDRESS (proof of work solved here)
  echo ARGS...                      send ARGS through the node's Echo and print them
  stop                              shut the node down

Interactive UI keys: press ? in the UI.";

/// Bitcoin front end: spawns bitcoin-node beside this executable (or connects to a running
/// one with -ipcconnect) and talks to it over ipc-shm. Options take Bitcoin Core's form
/// (-datadir=DIR) or GNU form (--datadir DIR).
#[derive(Debug, Parser)]
#[command(name = "bitcoin-gui", version, after_help = COMMANDS_HELP)]
pub(crate) struct Options {
    /// Data directory, shared with the spawned node [default: ~/.bitcoin-shm].
    #[arg(long, value_name = "DIR")]
    pub(crate) datadir: Option<PathBuf>,
    /// Chain to use; only regtest is supported.
    #[arg(long, value_name = "CHAIN", default_value = "regtest")]
    pub(crate) chain: String,
    /// Same as -chain=regtest.
    #[arg(long)]
    pub(crate) regtest: bool,
    /// Connect to a running bitcoin-node started with -ipcbind instead of spawning one:
    /// "unix" is DIR/regtest/node.sock, "unix:PATH" is PATH.
    #[arg(long, value_name = "ADDRESS", num_args = 0..=1, require_equals = true, default_missing_value = "unix")]
    pub(crate) ipcconnect: Option<String>,
    /// Data path of the connection to the node: shm (shared-memory rings) or socket.
    #[arg(long, value_name = "shm|socket", default_value = "shm")]
    pub(crate) transport: Transport,
    /// The wallet that wallet commands use [default: the node's default wallet].
    #[arg(long, value_name = "NAME")]
    pub(crate) rpcwallet: Option<String>,
    /// Log to stderr (commands only; the UI owns the terminal). Passed on to a spawned node.
    #[arg(long)]
    pub(crate) printtoconsole: bool,
    /// The command and its arguments; none starts the interactive UI.
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    pub(crate) command: Vec<String>,
}

impl Options {
    /// Parses a command line whose options may be Core-style (see [`normalize_args`]).
    pub(crate) fn parse_from_core<I>(args: I) -> Result<Options, clap::Error>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut cmd = Options::command();
        cmd.build();
        Options::try_parse_from(normalize_args(&cmd, args))
    }

    /// Checks what clap cannot: only regtest is supported.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !self.regtest && self.chain != "regtest" {
            bail!("chain {:?} is not supported yet (only regtest)", self.chain);
        }
        Ok(())
    }

    /// The data directory: `-datadir`, else `$HOME/.bitcoin-shm`.
    pub(crate) fn datadir(&self) -> anyhow::Result<PathBuf> {
        match &self.datadir {
            Some(d) => Ok(d.clone()),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".bitcoin-shm"))
                .context("no -datadir given and HOME is not set"),
        }
    }
}

/// Rewrites the single-dash long options `cmd` knows (`-datadir=DIR`, `-datadir DIR`,
/// `-printtoconsole`) to clap's double-dash form. Rewriting stops at the first positional
/// argument (the command), so a command's own arguments pass unchanged (`echo -datadir=x`
/// echoes `-datadir=x`); the value of an option given as a separate argument is not taken
/// for the command. Unknown options are left for clap to reject. The program name is kept.
fn normalize_args(cmd: &clap::Command, args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    out.extend(args.next());
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            // Not UTF-8: not one of our options, so it is the command (clap decides).
            out.push(arg);
            break;
        };
        if text == "--" || !text.starts_with('-') || text == "-" {
            out.push(arg);
            break;
        }
        let body = text.trim_start_matches('-');
        let (name, inline_value) = match body.split_once('=') {
            Some((n, _)) => (n, true),
            None => (body, false),
        };
        let known = cmd.get_arguments().find(|a| a.get_long() == Some(name));
        match known {
            Some(option) => {
                out.push(OsString::from(format!("--{body}")));
                // `-datadir DIR`: the next argument is the value, not the command. An option
                // whose value is optional (`-ipcconnect`) takes only an inline value.
                let takes_separate_value = option.get_action().takes_values()
                    && option.get_num_args().is_none_or(|n| n.min_values() > 0);
                if !inline_value && takes_separate_value {
                    out.extend(args.next());
                }
            }
            None => out.push(arg),
        }
    }
    out.extend(args);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::parse_from_core(std::iter::once("bitcoin-gui").chain(args.iter().copied()))
    }

    #[test]
    fn core_and_gnu_forms_parse_alike() {
        for args in [
            &[
                "-datadir=/d",
                "-transport=socket",
                "-rpcwallet=w",
                "-printtoconsole",
            ][..],
            &[
                "--datadir",
                "/d",
                "--transport",
                "socket",
                "--rpcwallet=w",
                "--printtoconsole",
            ],
            &[
                "-datadir",
                "/d",
                "-transport",
                "socket",
                "-rpcwallet",
                "w",
                "-printtoconsole",
            ],
        ] {
            let o = parse(args).unwrap();
            assert_eq!(o.datadir().unwrap(), PathBuf::from("/d"), "{args:?}");
            assert_eq!(o.transport, Transport::Socket);
            assert_eq!(o.rpcwallet.as_deref(), Some("w"));
            assert!(o.printtoconsole);
            assert!(o.command.is_empty());
            assert!(o.ipcconnect.is_none());
            o.validate().unwrap();
        }
    }

    #[test]
    fn command_arguments_are_not_rewritten() {
        let o = parse(&["-datadir", "/d", "echo", "-datadir=x", "--", "-y"]).unwrap();
        assert_eq!(o.command, ["echo", "-datadir=x", "--", "-y"]);
        let o = parse(&["getblockhash", "-1"]).unwrap();
        assert_eq!(o.command, ["getblockhash", "-1"]);
    }

    #[test]
    fn ipcconnect_value_is_optional() {
        let o = parse(&["-ipcconnect", "getblockcount"]).unwrap();
        assert_eq!(o.ipcconnect.as_deref(), Some("unix"));
        assert_eq!(o.command, ["getblockcount"]);
        let o = parse(&["-ipcconnect=unix:/run/n.sock"]).unwrap();
        assert_eq!(o.ipcconnect.as_deref(), Some("unix:/run/n.sock"));
        assert_eq!(o.transport, Transport::Shm);
    }

    #[test]
    fn bad_options_are_rejected() {
        assert!(parse(&["-transport=tcp"]).is_err());
        assert!(parse(&["-bogus"]).is_err());
        assert!(parse(&["--datadir"]).is_err());
        let o = parse(&["-chain=main"]).unwrap();
        assert_eq!(
            o.validate().unwrap_err().to_string(),
            "chain \"main\" is not supported yet (only regtest)"
        );
    }

    #[test]
    fn help_names_every_option_and_command() {
        let help = Options::command().render_long_help().to_string();
        for word in [
            "--datadir",
            "--chain",
            "--ipcconnect",
            "--transport",
            "--rpcwallet",
            "--printtoconsole",
            "getblockcount",
            "getbestblockhash",
            "getblockchaininfo",
            "getblockhash",
            "getblock ",
            "getmempoolinfo",
            "getrawtransaction",
            "sendrawtransaction",
            "createwallet",
            "loadwallet",
            "listwallets",
            "getnewaddress",
            "getbalance",
            "getbalances",
            "listtransactions",
            "sendtoaddress",
            "generatetoaddress",
            "echo",
            "stop",
        ] {
            assert!(help.contains(word), "--help does not mention {word}");
        }
    }
}
