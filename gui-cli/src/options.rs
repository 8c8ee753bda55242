//! Command line of `bitcoin-gui`: Bitcoin Core's options, read by the rules the node and the
//! wallet share ([`core_args`]), then an optional bitcoin-cli command and its arguments,
//! passed on as typed. The help is our own ([`help`]), laid out as bitcoin-cli's.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser};
use ipc_shm::Transport;

use crate::commands::commands_list;

/// Core's command-line rules, shared with `bitcoin-node` and `bitcoin-wallet` (the gui links
/// neither).
#[path = "../../node/src/core_args.rs"]
#[expect(
    unreachable_pub,
    dead_code,
    reason = "pub for the node's and the wallet's libraries; `CliExit::report` ends a program \
              as bitcoind does, and `main` ends ours as bitcoin-cli does"
)]
mod core_args;

pub(crate) use self::core_args::{CliExit, one_line};
use self::core_args::{is_switch, value_is_optional, value_name};

/// What `-help` says the program is.
const ABOUT: &str = "Bitcoin front end: spawns bitcoin-node beside this executable (or \
connects to a running one with -ipcconnect) and talks to it over ipc-shm. Without a command, \
on a terminal, it starts the interactive UI (press ? there for its keys).";

/// The options of `bitcoin-gui`, then the command. Each field's doc comment is its `-help`.
#[derive(Debug, Parser)]
#[command(
    name = "bitcoin-gui",
    version,
    // `core_args` reads `-help` and `-version`, and the help is ours.
    disable_help_flag = true,
    disable_version_flag = true,
    // Core's rule: of an option given twice, the last one counts.
    args_override_self = true
)]
pub(crate) struct Options {
    /// Data directory, shared with the spawned node. Default: ~/.bitcoin-shm.
    #[arg(long, value_name = "DIR")]
    pub(crate) datadir: Option<PathBuf>,
    /// Chain to use; only regtest is supported.
    #[arg(long, value_name = "CHAIN", default_value = "regtest")]
    pub(crate) chain: String,
    /// Same as -chain=regtest.
    #[arg(long)]
    pub(crate) regtest: bool,
    /// Connect to a running bitcoin-node started with -ipcbind instead of spawning one.
    /// ADDRESS "unix" (the default) is DIR/regtest/node.sock; "unix:PATH" is PATH, a
    /// relative PATH being relative to DIR/regtest.
    #[arg(long, value_name = "ADDRESS", num_args = 0..=1, require_equals = true, default_missing_value = "unix")]
    pub(crate) ipcconnect: Option<String>,
    /// Data path of the connection to the node: shm (shared-memory rings) or socket.
    #[arg(long, value_name = "shm|socket", default_value = "shm")]
    pub(crate) transport: Transport,
    /// The wallet that wallet commands use. Default: the node's default wallet.
    #[arg(long, value_name = "NAME")]
    pub(crate) rpcwallet: Option<String>,
    /// Log to stderr (commands only; the UI owns the terminal). Passed on to a spawned node.
    #[arg(long)]
    pub(crate) printtoconsole: bool,
    /// The command and its arguments; none starts the interactive UI.
    #[arg(value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

/// Read by Core's rules, with our help for `-h` as for `-help`.
impl core_args::CoreArgs for Options {
    fn help(_short: bool) -> String {
        help()
    }
}

impl Options {
    /// Parses a command line, the program name first, by Core's rules (see [`core_args`]).
    /// Help and version requests come back as [`CliExit::Info`], anything wrong as one line
    /// in [`CliExit::Invalid`].
    pub(crate) fn parse_core(
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Result<Options, CliExit> {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let options: Options = core_args::parse(&args)?;
        // `-ipcconnect unix` runs the command `unix`: say how to write what was meant.
        let before_command = args
            .len()
            .checked_sub(options.command.len() + 1)
            .and_then(|i| args.get(i)?.to_str());
        if let Some(option @ ("-ipcconnect" | "--ipcconnect")) = before_command
            && let Some(address) = options.command.first()
            && (address == "unix" || address.starts_with("unix:"))
        {
            return Err(CliExit::Invalid(format!(
                "write {option}={address}, not {option} {address}: options take values only \
                 after ="
            )));
        }
        Ok(options)
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

/// `-help`'s text: the options in Core's forms, as bitcoin-cli lays them out (the form on
/// one line, its description indented below), then the commands.
fn help() -> String {
    let cmd = Options::command();
    let mut out = format!(
        "{}\n{}\n\nUsage: bitcoin-gui [OPTIONS] [COMMAND [ARGS...]]\n\nOptions:\n\n",
        cmd.render_version(),
        wrap(ABOUT, 0)
    );
    let mut entry = |form: &str, text: &str| {
        out.push_str("  ");
        out.push_str(form);
        out.push('\n');
        out.push_str(&wrap(text, 7));
        out.push_str("\n\n");
    };
    entry("-?, -h, -help", "Print this help message and exit.");
    entry("-version", "Print the version and exit.");
    for option in cmd.get_arguments() {
        let Some(name) = option.get_long() else {
            continue;
        };
        let form = if is_switch(option) {
            format!("-{name}")
        } else if value_is_optional(option) {
            format!("-{name}[={}]", value_name(option))
        } else {
            format!("-{name}={}", value_name(option))
        };
        let mut text = option
            .get_long_help()
            .or(option.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        if !text.ends_with('.') {
            text.push('.');
        }
        if let Some(default) = option
            .get_default_values()
            .first()
            .filter(|_| !is_switch(option))
        {
            text.push_str(&format!(" Default: {}.", default.to_string_lossy()));
        }
        entry(&form, &text);
    }
    out.push_str(&wrap(
        "A switch is on as -NAME or -NAME=1 and off as -NAME=0. An option takes its value \
         only after = (-datadir=DIR), as in Bitcoin Core; GNU forms work too (--datadir=DIR, \
         --datadir DIR).",
        0,
    ));
    out.push_str(
        "\n\nCommands (bitcoin-cli's names and output; without one, the terminal UI starts):\n",
    );
    out.push_str(&commands_list());
    out.push('\n');
    out.push_str(&wrap(
        "Exit status: 0 on success; 1 on an error, told in one line on stderr; 141, \
         silently, when the reader of stdout has gone (a closed pipe), as for bitcoin-cli, \
         which SIGPIPE ends.",
        0,
    ));
    out.push('\n');
    out
}

/// `text` in lines of at most 79 columns, each indented by `indent` spaces.
pub(crate) fn wrap(text: &str, indent: usize) -> String {
    const WIDTH: usize = 79;
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > WIDTH {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    let pad = " ".repeat(indent);
    lines
        .iter()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, CliExit> {
        Options::parse_core(std::iter::once("bitcoin-gui").chain(args.iter().copied()))
    }

    fn error(args: &[&str]) -> String {
        match parse(args) {
            Err(CliExit::Invalid(line)) => line,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn options_parse_and_the_command_passes_as_typed() {
        let o = parse(&[
            "-datadir=/d",
            "--transport",
            "socket",
            "-rpcwallet=w",
            "-printtoconsole",
            "echo",
            "-datadir=x",
            "--",
            "-bogus",
        ])
        .unwrap();
        assert_eq!(o.datadir().unwrap(), PathBuf::from("/d"));
        assert_eq!(o.transport, Transport::Socket);
        assert_eq!(o.rpcwallet.as_deref(), Some("w"));
        assert!(o.printtoconsole && o.ipcconnect.is_none());
        assert_eq!(o.command, ["echo", "-datadir=x", "--", "-bogus"]);
        o.validate().unwrap();
        assert_eq!(
            parse(&["getblockhash", "-1"]).unwrap().command,
            ["getblockhash", "-1"]
        );
        assert_eq!(
            parse(&["-regtest", "--", "-echo"]).unwrap().command,
            ["-echo"]
        );
    }

    #[test]
    fn ipcconnect_value_is_optional_and_only_after_equals() {
        let o = parse(&["-ipcconnect", "getblockcount"]).unwrap();
        assert_eq!(o.ipcconnect.as_deref(), Some("unix"));
        assert_eq!(o.command, ["getblockcount"]);
        let o = parse(&["-ipcconnect=unix:/run/n.sock"]).unwrap();
        assert_eq!(o.ipcconnect.as_deref(), Some("unix:/run/n.sock"));
        assert_eq!(o.transport, Transport::Shm);
        // The address given apart would be taken for the command `unix`.
        assert_eq!(
            error(&["-ipcconnect", "unix", "getblockcount"]),
            "write -ipcconnect=unix, not -ipcconnect unix: options take values only after ="
        );
        assert_eq!(
            error(&["--ipcconnect", "unix:/n.sock", "getblockcount"]),
            "write --ipcconnect=unix:/n.sock, not --ipcconnect unix:/n.sock: options take \
             values only after ="
        );
        // Written so, `unix` is the command (which does not exist).
        for args in [
            &["-ipcconnect=unix", "unix"][..],
            &["-ipcconnect", "--", "unix"],
        ] {
            assert_eq!(parse(args).unwrap().command, ["unix"], "{args:?}");
        }
    }

    #[test]
    fn bad_values_are_rejected_in_one_line_with_single_dashes() {
        let e = error(&["-transport=tcp"]);
        assert!(
            e.contains("'-transport <shm|socket>'") && !e.contains('\n'),
            "{e}"
        );
        let o = parse(&["-chain=main"]).unwrap();
        assert_eq!(
            o.validate().unwrap_err().to_string(),
            "chain \"main\" is not supported yet (only regtest)"
        );
        // -regtest=0 with -chain=main is main, which is refused.
        assert!(
            parse(&["-chain=main", "-regtest=0"])
                .unwrap()
                .validate()
                .is_err()
        );
    }

    #[test]
    fn help_and_version_come_before_the_command_only() {
        for flag in ["-?", "-h", "-help", "--help"] {
            for args in [&[flag][..], &["-datadir=/d", flag, "getblockcount"]] {
                assert_eq!(parse(args).unwrap_err(), CliExit::Info(help()), "{args:?}");
            }
        }
        for flag in ["-version", "--version", "-V"] {
            let version = CliExit::Info("bitcoin-gui 0.1.0\n".into());
            assert_eq!(parse(&[flag]).unwrap_err(), version, "{flag}");
        }
        // After the command, they are the command's arguments.
        assert_eq!(parse(&["echo", "-?"]).unwrap().command, ["echo", "-?"]);
    }

    #[test]
    fn help_shows_cores_forms_and_every_command() {
        let help = help();
        for form in [
            "bitcoin-gui 0.1.0\n\nBitcoin front end: ",
            "\n  -datadir=DIR\n",
            "\n  -chain=CHAIN\n",
            "\n  -regtest\n",
            "\n  -ipcconnect[=ADDRESS]\n",
            "\n  -transport=shm|socket\n",
            "\n  -rpcwallet=NAME\n",
            "\n  -printtoconsole\n",
            "\n  -?, -h, -help\n",
            "relative to DIR/regtest",
            "Default: regtest.",
            "Default: shm.",
            "sendrawtransaction HEX [MAXFEERATE]",
            "listtransactions [\"*\" [COUNT [SKIP]]]",
        ] {
            assert!(help.contains(form), "-help does not show {form:?}:\n{help}");
        }
        assert!(!help.contains("--datadir <"), "{help}");
        assert!(help.ends_with("SIGPIPE ends.\n"), "{help}");
        for c in crate::commands::COMMANDS {
            assert!(help.contains(&format!("\n  {}", c.usage())), "{}", c.name);
        }
        assert!(help.lines().all(|l| l.len() <= 79), "{help}");
    }

    #[test]
    fn wrap_keeps_lines_short_and_indented() {
        let text = "word ".repeat(40);
        let wrapped = wrap(&text, 7);
        assert!(wrapped.lines().count() > 1);
        for line in wrapped.lines() {
            assert!(
                line.len() <= 79 && line.starts_with("       word"),
                "{line:?}"
            );
        }
    }
}
