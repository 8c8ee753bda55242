//! Command line of `bitcoin-gui`: Bitcoin Core's single-dash options (`-datadir=DIR`, a value
//! only after `=` as in Core), or GNU-style ones (`--datadir=DIR`, `--datadir DIR`), then an
//! optional bitcoin-cli command and its arguments. Switches take Core's `=1` and `=0`.
//!
//! clap parses the values; the options are recognised here first ([`normalize_args`]), so
//! that an unknown one is named as typed, and the help is rendered here, in Core's
//! single-dash forms ([`help`]).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{ArgAction, CommandFactory, Parser};
use ipc_shm::Transport;

use crate::commands::commands_list;

/// What `-help` says the program is.
const ABOUT: &str = "Bitcoin front end: spawns bitcoin-node beside this executable (or \
connects to a running one with -ipcconnect) and talks to it over ipc-shm. Without a command, \
on a terminal, it starts the interactive UI (press ? there for its keys).";

/// The options of `bitcoin-gui`, then the command. Each field's doc comment is its `-help`.
#[derive(Debug, Parser)]
#[command(
    name = "bitcoin-gui",
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
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    pub(crate) command: Vec<String>,
}

/// What a command line asks for.
#[derive(Debug)]
pub(crate) enum Invocation {
    /// Run the command, or the UI, with these options.
    Run(Options),
    /// `-?`, `-h`, `-help` or `--help`: print [`help`].
    Help,
    /// `-version`, `--version` or `-V`: print [`version`].
    Version,
}

/// A command line that cannot be used, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OptionsError(String);

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionsError {}

impl Options {
    /// Parses a command line whose options may be Core-style (see [`normalize_args`]).
    pub(crate) fn parse_from_core<I>(args: I) -> Result<Invocation, OptionsError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let args = match normalize_args(&Options::command(), args)? {
            Normalized::Args(args) => args,
            Normalized::Help => return Ok(Invocation::Help),
            Normalized::Version => return Ok(Invocation::Version),
        };
        Options::try_parse_from(args)
            .map(Invocation::Run)
            .map_err(|e| {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                OptionsError(first.trim_start_matches("error: ").to_owned())
            })
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

/// A command line with its options recognised.
#[derive(Debug, PartialEq)]
enum Normalized {
    /// The arguments for clap: the program name, the options in clap's double-dash form,
    /// then the command and its arguments unchanged.
    Args(Vec<OsString>),
    Help,
    Version,
}

/// Whether `option` is a switch (`-regtest`), which takes no value but Core's `=1`/`=0`.
fn is_switch(option: &clap::Arg) -> bool {
    matches!(option.get_action(), ArgAction::SetTrue)
}

/// Whether `option`'s value may be left out (`-ipcconnect` alone is `-ipcconnect=unix`).
fn value_is_optional(option: &clap::Arg) -> bool {
    option.get_num_args().is_some_and(|n| n.min_values() == 0)
}

/// The placeholder of `option`'s value in the help (`DIR`).
fn value_name(option: &clap::Arg) -> String {
    option
        .get_value_names()
        .and_then(|names| names.first())
        .map_or_else(|| "VALUE".to_owned(), ToString::to_string)
}

/// Recognises the options before the command, as Bitcoin Core does: `-name=value`, `-name`
/// for a switch, `-name=1`/`-name=0` to turn a switch on or off; a value only after `=`
/// (`-datadir DIR` is an error that says so). GNU forms pass too (`--name=value`,
/// `--name value`). An unknown option is an error naming it as typed. `-?`, `-h`, `-help`
/// and `--help` ask for the help, `-version`, `--version` and `-V` for the version.
///
/// Recognising stops at the first argument that is not an option (the command), at `-`
/// and at `--`, so a command's own arguments pass unchanged (`echo -datadir=x` echoes
/// `-datadir=x`). Of a switch given more than once, the last one counts.
fn normalize_args(cmd: &clap::Command, args: Vec<OsString>) -> Result<Normalized, OptionsError> {
    let mut args = args.into_iter().peekable();
    let mut options: Vec<OsString> = args.next().into_iter().collect();
    // Switches in the order first given, with their last setting.
    let mut switches: Vec<(&str, bool)> = Vec::new();
    let mut rest = Vec::new();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if !bytes.starts_with(b"-") || bytes == b"-" || bytes == b"--" {
            rest.push(arg);
            break;
        }
        match bytes {
            b"-?" | b"-h" | b"-help" | b"--help" => return Ok(Normalized::Help),
            b"-V" | b"-version" | b"--version" => return Ok(Normalized::Version),
            _ => {}
        }
        let typed = arg.to_string_lossy();
        let dash = if bytes.starts_with(b"--") { "--" } else { "-" };
        let body = &bytes[dash.len()..];
        let (name, value) = match body.iter().position(|&b| b == b'=') {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let known = std::str::from_utf8(name).ok().and_then(|name| {
            cmd.get_arguments()
                .find_map(|a| a.get_long().filter(|l| *l == name).map(|l| (l, a)))
        });
        let Some((name, option)) = known else {
            return Err(OptionsError(format!("unknown option {typed}")));
        };
        if is_switch(option) {
            let on = match value {
                // Core reads `-flag=` as on.
                None | Some(b"" | b"1") => true,
                Some(b"0") => false,
                Some(_) => {
                    return Err(OptionsError(format!(
                        "invalid value in {typed}: {dash}{name} is a switch, on as \
                         {dash}{name} or {dash}{name}=1, off as {dash}{name}=0"
                    )));
                }
            };
            match switches.iter_mut().find(|(n, _)| *n == name) {
                Some(switch) => switch.1 = on,
                None => switches.push((name, on)),
            }
            continue;
        }
        let mut normalized = OsString::from(format!("--{name}"));
        match value {
            Some(value) => {
                normalized.push("=");
                normalized.push(OsStr::from_bytes(value));
                options.push(normalized);
            }
            None if value_is_optional(option) => {
                // `-ipcconnect unix` would run the command `unix`.
                if let Some(next) = args.peek().and_then(|a| a.to_str())
                    && (next == "unix" || next.starts_with("unix:"))
                {
                    return Err(OptionsError(format!(
                        "write {dash}{name}={next}, not {dash}{name} {next}: options take \
                         values only after ="
                    )));
                }
                options.push(normalized);
            }
            // GNU's `--datadir DIR`, passed on as one word: DIR is a value even if it
            // starts with a dash.
            None if dash == "--" && args.peek().is_some() => {
                normalized.push("=");
                normalized.extend(args.next());
                options.push(normalized);
            }
            None if dash == "--" => {
                return Err(OptionsError(format!(
                    "{dash}{name} needs a value, as {dash}{name}={}",
                    value_name(option)
                )));
            }
            None => {
                return Err(OptionsError(format!(
                    "{dash}{name} takes its value only after =, as {dash}{name}={}",
                    value_name(option)
                )));
            }
        }
    }
    options.extend(
        switches
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| OsString::from(format!("--{name}"))),
    );
    options.extend(rest);
    options.extend(args);
    Ok(Normalized::Args(options))
}

/// `-version`'s text.
pub(crate) fn version() -> String {
    format!("bitcoin-gui {}", env!("CARGO_PKG_VERSION"))
}

/// `-help`'s text: the options in Core's forms, as bitcoin-cli lays them out (the form on
/// one line, its description indented below), then the commands.
pub(crate) fn help() -> String {
    let mut out = format!(
        "{}\n\n{}\n\nUsage: bitcoin-gui [OPTIONS] [COMMAND [ARGS...]]\n\nOptions:\n\n",
        version(),
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
    for option in Options::command().get_arguments() {
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

    fn parse(args: &[&str]) -> Result<Options, OptionsError> {
        match Options::parse_from_core(std::iter::once("bitcoin-gui").chain(args.iter().copied()))?
        {
            Invocation::Run(o) => Ok(o),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        parse(args).unwrap_err().to_string()
    }

    #[test]
    fn a_gnu_value_may_start_with_a_dash() {
        let o = parse(&["--rpcwallet", "-x", "getbalance"]).unwrap();
        assert_eq!(o.rpcwallet.as_deref(), Some("-x"));
        assert_eq!(o.command, ["getbalance"]);
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
                "--datadir=/d",
                "--transport=socket",
                "-rpcwallet=w",
                "-printtoconsole=1",
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
        let o = parse(&["-datadir=/d", "echo", "-datadir=x", "--", "-y", "-bogus"]).unwrap();
        assert_eq!(o.command, ["echo", "-datadir=x", "--", "-y", "-bogus"]);
        let o = parse(&["getblockhash", "-1"]).unwrap();
        assert_eq!(o.command, ["getblockhash", "-1"]);
        let o = parse(&["-regtest", "--", "-echo"]).unwrap();
        assert_eq!(o.command, ["-echo"]);
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
    }

    #[test]
    fn single_dash_options_take_values_only_after_equals() {
        // As in Core, and as `-ipcconnect unix` is refused.
        assert_eq!(
            error(&["-datadir", "/d", "getblockcount"]),
            "-datadir takes its value only after =, as -datadir=DIR"
        );
        assert_eq!(
            error(&["-transport"]),
            "-transport takes its value only after =, as -transport=shm|socket"
        );
        assert_eq!(
            error(&["--datadir"]),
            "--datadir needs a value, as --datadir=DIR"
        );
    }

    #[test]
    fn switches_take_cores_one_and_zero() {
        let o = parse(&["-regtest=1", "-printtoconsole=1", "getblockcount"]).unwrap();
        assert!(o.regtest && o.printtoconsole);
        assert_eq!(o.command, ["getblockcount"]);
        let o = parse(&["-regtest=0", "-printtoconsole=0"]).unwrap();
        assert!(!o.regtest && !o.printtoconsole);
        // The last one counts, for switches as for values.
        let o = parse(&["-printtoconsole", "-printtoconsole=0"]).unwrap();
        assert!(!o.printtoconsole);
        let o = parse(&["-printtoconsole=0", "--printtoconsole", "-printtoconsole"]).unwrap();
        assert!(o.printtoconsole);
        let o = parse(&["-datadir=/a", "-datadir=/b"]).unwrap();
        assert_eq!(o.datadir, Some(PathBuf::from("/b")));
        assert_eq!(
            error(&["-regtest=yes"]),
            "invalid value in -regtest=yes: -regtest is a switch, on as -regtest or \
             -regtest=1, off as -regtest=0"
        );
        // -regtest=0 with -chain=main is main, which is refused.
        let o = parse(&["-chain=main", "-regtest=0"]).unwrap();
        assert!(o.validate().is_err());
    }

    #[test]
    fn unknown_options_are_named_as_typed() {
        for typed in [
            "-rpcport=8332",
            "-rpcport",
            "--rpcport=1",
            "-xyz",
            "--xyz",
            "-d",
        ] {
            assert_eq!(
                error(&[typed, "getblockcount"]),
                format!("unknown option {typed}")
            );
        }
        // Behind a known option too.
        assert_eq!(
            error(&["-datadir=/d", "-rpcport=8332", "getblockcount"]),
            "unknown option -rpcport=8332"
        );
    }

    #[test]
    fn bad_values_are_rejected_in_one_line() {
        let e = error(&["-transport=tcp"]);
        assert!(e.contains("tcp") && !e.contains('\n'), "{e}");
        let o = parse(&["-chain=main"]).unwrap();
        assert_eq!(
            o.validate().unwrap_err().to_string(),
            "chain \"main\" is not supported yet (only regtest)"
        );
    }

    #[test]
    fn help_and_version_forms() {
        let ask = |args: &[&str]| {
            Options::parse_from_core(std::iter::once("bitcoin-gui").chain(args.iter().copied()))
                .unwrap()
        };
        for flag in ["-?", "-h", "-help", "--help"] {
            assert!(matches!(ask(&[flag]), Invocation::Help), "{flag}");
            assert!(matches!(
                ask(&["-datadir=/d", flag, "getblockcount"]),
                Invocation::Help
            ));
        }
        for flag in ["-version", "--version", "-V"] {
            assert!(matches!(ask(&[flag]), Invocation::Version), "{flag}");
        }
        // After the command, they are the command's arguments.
        let Invocation::Run(o) = ask(&["echo", "-?"]) else {
            panic!("echo -? is a command")
        };
        assert_eq!(o.command, ["echo", "-?"]);
    }

    #[test]
    fn help_shows_cores_forms_and_every_command() {
        let help = help();
        for form in [
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
