//! Bitcoin Core's command-line rules on top of clap, for all three executables: the node
//! owns this file, `bitcoin-wallet` and `bitcoin-gui` include it with `#[path]` (neither
//! depends on the node). The rules, checked here before clap sees the arguments:
//! - an option takes its value only after `=` (`-datadir=DIR`), as in Core; GNU's
//!   `--datadir=DIR` and `--datadir DIR` work too. Of an option given twice the last counts
//!   (each program's clap command sets `args_override_self`), a list (`-ipcbind`) adds up;
//! - a switch is on as `-name`, `-name=` or `-name=1` (or `true`), off as `-name=0` (or
//!   `false`), the last one given winning; an option whose value may be left out (`-debug`)
//!   takes one only after `=`;
//! - `-?`, `-h`, `-help` and `--help` ask for the help, `-version`, `-V` and `--version`
//!   for the version, whatever value they are given (Core only asks whether they are set).
//!   The first one given counts, and only on a command line that is otherwise well formed;
//! - the options end at `--` or at the first word that is not an option (`-` alone is a
//!   word). A program with a positional argument (`bitcoin-gui`'s command) takes that word
//!   and everything after it as typed; the others refuse it;
//! - an error is one line (see [`one_line`]) naming the argument as it was typed
//!   (`unknown option -rpcport=8332`), and help and errors spell options with one dash.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;

use clap::{Arg, ArgAction, Command, Parser};

/// Why a command line does not start the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliExit {
    /// Help or version text, ending in a newline: print it to stdout and exit with success.
    Info(String),
    /// The command line is wrong: one line saying why, with neither an `Error: ` prefix nor
    /// a pointer to the help (each program adds its own).
    Invalid(String),
}

impl std::fmt::Display for CliExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Info(text) | Self::Invalid(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for CliExit {}

impl CliExit {
    /// Ends the program as bitcoind does: help or version text on stdout with success (a
    /// closed stdout, as in `-help | head -1`, is no failure), else the one line on stderr
    /// after `Error: ` and before a pointer to `-help`, with failure.
    pub fn report(self) -> std::process::ExitCode {
        match self {
            Self::Info(text) => {
                let _ = std::io::stdout().write_all(text.as_bytes());
                std::process::ExitCode::SUCCESS
            }
            Self::Invalid(line) => {
                // A stderr that is gone (a spawning parent killed) must not turn the exit
                // into a panic.
                let _ = writeln!(std::io::stderr(), "Error: {} (see -help)", one_line(&line));
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// `text` on one line: control characters (a newline in an argument the user typed, say)
/// are written as escapes, so an error stays the one line a script can read.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A program's options, read by Core's rules with [`parse`].
pub(crate) trait CoreArgs: Parser {
    /// What `-help` prints (`short`: what `-h` prints), ending in a newline. By default
    /// clap's, with the options spelled with one dash: for `-h` its summary, else its long
    /// help where the options have one.
    fn help(short: bool) -> String {
        let mut cmd = Self::command();
        // Only clap's own help flag knows whether there is a long help to show. clap shows
        // it as an error; a program without the flag has no help.
        let flag = if short { "-h" } else { "--help" };
        let argv = [cmd.get_name().to_owned(), flag.to_owned()];
        let Err(help) = cmd.try_get_matches_from_mut(argv) else {
            return String::new();
        };
        single_dash(&help.to_string(), &cmd)
    }
}

/// Parses `args` (the program name first) by Core's rules into `T`.
pub(crate) fn parse<T: CoreArgs>(
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Result<T, CliExit> {
    let mut cmd = T::command();
    cmd.build();
    let argv = match normalize(&cmd, args.into_iter().map(Into::into))? {
        Normalized::Args(argv) => argv,
        Normalized::Help { short } => return Err(CliExit::Info(T::help(short))),
        Normalized::Version => return Err(CliExit::Info(cmd.render_version())),
    };
    let mut matches = cmd
        .try_get_matches_from_mut(argv)
        .map_err(|e| clap_error(&e, &cmd))?;
    T::from_arg_matches_mut(&mut matches).map_err(|e| clap_error(&e.format(&mut cmd), &cmd))
}

/// Whether `option` is a switch (`-regtest`), which takes no value but Core's `=1`/`=0`.
pub(crate) fn is_switch(option: &Arg) -> bool {
    matches!(option.get_action(), ArgAction::SetTrue)
}

/// Whether `option`'s value may be left out (`-debug` alone is `-debug=1`).
pub(crate) fn value_is_optional(option: &Arg) -> bool {
    !is_switch(option) && option.get_num_args().is_some_and(|n| n.min_values() == 0)
}

/// The placeholder of `option`'s value in help and errors (`DIR`).
pub(crate) fn value_name(option: &Arg) -> String {
    option
        .get_value_names()
        .and_then(|names| names.first())
        .map_or_else(|| "VALUE".to_owned(), ToString::to_string)
}

/// A command line with its options recognised.
#[derive(Debug)]
enum Normalized {
    /// What clap parses: the program name, the options in clap's `--name=value` form with
    /// the switches that end up on last, then `--` and the positional words as typed.
    Args(Vec<OsString>),
    /// `-?`, `-h` (`short`), `-help` or `--help`.
    Help { short: bool },
    /// `-version`, `-V` or `--version`.
    Version,
}

/// Recognises Core-style options (see the module's rules), refusing an unknown option or a
/// misspelt one in the words of the user.
fn normalize(
    cmd: &Command,
    mut args: impl Iterator<Item = OsString>,
) -> Result<Normalized, CliExit> {
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    // The final setting of each switch given, in the order first seen.
    let mut switches: Vec<(&str, bool)> = Vec::new();
    let mut info = None;
    let mut words = Vec::new();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" || bytes == b"-" || !bytes.starts_with(b"-") {
            // The options end here: `--` goes, the words stay as typed.
            if bytes != b"--" {
                words.push(arg);
            }
            words.extend(args.by_ref());
            break;
        }
        let dashes = if bytes.starts_with(b"--") { "--" } else { "-" };
        let body = &bytes[dashes.len()..];
        let (key, value) = match body.iter().position(|&b| b == b'=') {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let typed = arg.to_string_lossy();
        match key {
            b"?" | b"h" | b"help" => {
                info.get_or_insert(Normalized::Help { short: key == b"h" });
                continue;
            }
            b"V" | b"version" => {
                info.get_or_insert(Normalized::Version);
                continue;
            }
            _ => {}
        }
        let (option, name) = cmd
            .get_arguments()
            .find_map(|a| a.get_long().filter(|l| l.as_bytes() == key).map(|l| (a, l)))
            .ok_or_else(|| CliExit::Invalid(format!("unknown option {typed}")))?;
        if is_switch(option) {
            let on = value.map_or(Some(true), parse_bool).ok_or_else(|| {
                CliExit::Invalid(format!(
                    "invalid value in {typed}: {dashes}{name} is a switch, on as \
                     {dashes}{name} or {dashes}{name}=1, off as {dashes}{name}=0"
                ))
            })?;
            match switches.iter_mut().find(|(n, _)| *n == name) {
                Some(switch) => switch.1 = on,
                None => switches.push((name, on)),
            }
            continue;
        }
        let with_value = |value: &OsStr| {
            let mut arg = OsString::from(format!("--{name}="));
            arg.push(value);
            arg
        };
        out.push(match value {
            Some(value) => with_value(OsStr::from_bytes(value)),
            // `-debug` alone: clap gives it its default.
            None if value_is_optional(option) => format!("--{name}").into(),
            // GNU's `--datadir DIR`: DIR is the value even if it starts with a dash.
            None if dashes == "--" => match args.next() {
                Some(next) => with_value(&next),
                None => {
                    return Err(CliExit::Invalid(format!(
                        "{typed} needs a value, as {typed}={}",
                        value_name(option)
                    )));
                }
            },
            None => {
                return Err(CliExit::Invalid(format!(
                    "{typed} takes its value only after =, as {typed}={}",
                    value_name(option)
                )));
            }
        });
    }
    if let Some(word) = words.first()
        && cmd.get_positionals().next().is_none()
    {
        return Err(CliExit::Invalid(format!(
            "unexpected argument \"{}\": {} takes no commands, only options",
            word.to_string_lossy(),
            cmd.get_name()
        )));
    }
    if let Some(info) = info {
        return Ok(info);
    }
    out.extend(
        switches
            .into_iter()
            .filter(|&(_, on)| on)
            .map(|(name, _)| OsString::from(format!("--{name}"))),
    );
    if !words.is_empty() {
        out.push("--".into());
        out.extend(words);
    }
    Ok(Normalized::Args(out))
}

/// Core's spellings of a switch's value; `-flag=` is on, as in Core.
fn parse_bool(value: &[u8]) -> Option<bool> {
    match value {
        b"" | b"1" | b"true" => Some(true),
        b"0" | b"false" => Some(false),
        _ => None,
    }
}

/// clap's error (its first line) with the options spelled Core's way.
fn clap_error(e: &clap::Error, cmd: &Command) -> CliExit {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    CliExit::Invalid(single_dash(first.trim_start_matches("error: "), cmd))
}

/// `text` with every `--name` of an option of `cmd` written `-name`.
fn single_dash(text: &str, cmd: &Command) -> String {
    let is_long = |word: &str| cmd.get_arguments().any(|a| a.get_long() == Some(word));
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("--") {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let word = &after[2..];
        let len = word.find(|c| !ident(c)).unwrap_or(word.len());
        let starts_word = !out.ends_with(ident);
        out.push_str(if starts_word && is_long(&word[..len]) {
            "-"
        } else {
            "--"
        });
        out.push_str(&word[..len]);
        rest = &word[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// A program of options only, as `bitcoin-node` and `bitcoin-wallet`.
    #[derive(Debug, Parser)]
    #[command(name = "prog", version, args_override_self = true)]
    struct Prog {
        /// Data directory.
        #[arg(long, value_name = "DIR")]
        datadir: Option<PathBuf>,
        #[arg(long)]
        flag: bool,
        #[arg(long)]
        other: bool,
        #[arg(long, value_name = "N")]
        count: Option<u32>,
        #[arg(long, value_name = "ADDRESS", num_args = 0..=1, require_equals = true,
              default_missing_value = "unix")]
        connect: Option<String>,
        #[arg(long)]
        list: Vec<String>,
    }

    impl CoreArgs for Prog {}

    /// A program with a command after its options, as `bitcoin-gui`.
    #[derive(Debug, Parser)]
    #[command(name = "prog-cli", args_override_self = true)]
    struct ProgCli {
        #[arg(long)]
        flag: bool,
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "unix")]
        connect: Option<String>,
        command: Vec<String>,
    }

    impl CoreArgs for ProgCli {}

    fn prog(args: &[&str]) -> Result<Prog, CliExit> {
        parse(std::iter::once("prog").chain(args.iter().copied()))
    }

    fn prog_cli(args: &[&str]) -> Result<ProgCli, CliExit> {
        parse(std::iter::once("prog-cli").chain(args.iter().copied()))
    }

    fn invalid(args: &[&str]) -> String {
        match prog(args) {
            Err(CliExit::Invalid(line)) => line,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn switches_take_cores_spellings_and_the_last_one_wins() {
        let p = prog(&["-flag=1", "-other=true"]).unwrap();
        assert!(p.flag && p.other);
        let p = prog(&["-flag", "-flag=0", "-other=", "--other=false"]).unwrap();
        assert!(!p.flag && !p.other);
        let p = prog(&["-flag=0", "--flag", "-other=false", "-other"]).unwrap();
        assert!(p.flag && p.other);
        assert_eq!(
            invalid(&["-flag=yes"]),
            "invalid value in -flag=yes: -flag is a switch, on as -flag or -flag=1, off as \
             -flag=0"
        );
        assert_eq!(
            invalid(&["--flag=2"]),
            "invalid value in --flag=2: --flag is a switch, on as --flag or --flag=1, off as \
             --flag=0"
        );
    }

    #[test]
    fn values_follow_an_equals_sign_or_a_double_dash_option() {
        let p = prog(&[
            "-datadir=/a",
            "-list=x",
            "--datadir=/b",
            "-list=y=z",
            "-count=3",
        ])
        .unwrap();
        assert_eq!(p.datadir.unwrap(), Path::new("/b"), "the last value counts");
        assert_eq!(p.list, ["x", "y=z"], "a list adds up");
        assert_eq!(p.count, Some(3));
        // GNU's form: the next word is the value, even one that starts with a dash.
        let p = prog(&["--datadir", "-x", "--list", "unix", "-flag"]).unwrap();
        assert_eq!(p.datadir.unwrap(), Path::new("-x"));
        assert_eq!(p.list, ["unix"]);
        assert!(p.flag);
        assert_eq!(
            invalid(&["-datadir", "/x"]),
            "-datadir takes its value only after =, as -datadir=DIR"
        );
        assert_eq!(
            invalid(&["-count"]),
            "-count takes its value only after =, as -count=N"
        );
        assert_eq!(
            invalid(&["--datadir"]),
            "--datadir needs a value, as --datadir=DIR"
        );
    }

    #[test]
    fn an_optional_value_is_only_after_equals() {
        let p = prog(&["-connect", "-flag"]).unwrap();
        assert_eq!(p.connect.as_deref(), Some("unix"));
        assert!(p.flag);
        let p = prog(&["-connect=unix:/x"]).unwrap();
        assert_eq!(p.connect.as_deref(), Some("unix:/x"));
        assert!(invalid(&["-connect", "unix:/x"]).starts_with("unexpected argument \"unix:/x\""));
        let p = prog_cli(&["--connect", "unix"]).unwrap();
        assert_eq!(p.connect.as_deref(), Some("unix"));
        assert_eq!(p.command, ["unix"]);
    }

    #[test]
    fn unknown_options_are_named_as_typed() {
        for typed in [
            "-bogus", "-bogus=3", "--bogus", "--bogus=", "-x", "-d=1", "-=1", "-é",
        ] {
            assert_eq!(invalid(&[typed]), format!("unknown option {typed}"));
        }
        // Behind a known option too; a name that is not UTF-8 is shown as best it can.
        assert_eq!(
            invalid(&["-datadir=/d", "-rpcport=8332", "-flag"]),
            "unknown option -rpcport=8332"
        );
        let not_utf8 = OsStr::from_bytes(b"-\xff").to_owned();
        let Err(CliExit::Invalid(line)) = parse::<Prog>(["prog".into(), not_utf8]) else {
            panic!("-\\xff parsed");
        };
        assert_eq!(line, "unknown option -\u{fffd}");
    }

    #[test]
    fn options_end_at_the_first_word() {
        assert_eq!(
            invalid(&["-flag", "help", "-bogus"]),
            "unexpected argument \"help\": prog takes no commands, only options"
        );
        for args in [&["--", "-flag"][..], &["-"], &[""]] {
            let word = args.iter().find(|a| **a != "--").unwrap();
            assert_eq!(
                invalid(args),
                format!("unexpected argument \"{word}\": prog takes no commands, only options")
            );
        }
        assert!(!prog(&["-flag=0", "--"]).unwrap().flag);
        // A program with a command takes the words as typed.
        let p = prog_cli(&["-flag", "echo", "-flag=0", "--", "-bogus", "-?"]).unwrap();
        assert!(p.flag);
        assert_eq!(p.command, ["echo", "-flag=0", "--", "-bogus", "-?"]);
        assert_eq!(prog_cli(&["--", "-flag"]).unwrap().command, ["-flag"]);
        assert_eq!(prog_cli(&["-", "x"]).unwrap().command, ["-", "x"]);
        assert!(prog_cli(&[]).unwrap().command.is_empty());
    }

    #[test]
    fn help_and_version_in_every_spelling_once_the_line_is_well_formed() {
        let help = Prog::help(false);
        assert!(
            help.contains("  -datadir <DIR>") && !help.contains("--"),
            "{help}"
        );
        let version = format!("prog {}\n", env!("CARGO_PKG_VERSION"));
        for spelling in ["-?", "-h", "-help", "--help", "--?", "-help=0"] {
            let Err(CliExit::Info(text)) = prog(&["-flag", spelling, "-count=x"]) else {
                panic!("{spelling} gave no help");
            };
            assert_eq!(text, Prog::help(spelling == "-h"), "{spelling}");
        }
        for spelling in ["-version", "-V", "--version", "-version=1"] {
            assert_eq!(
                prog(&[spelling]).unwrap_err(),
                CliExit::Info(version.clone())
            );
        }
        // The first one given counts; a malformed line is an error still.
        assert_eq!(prog(&["-V", "-help"]).unwrap_err(), CliExit::Info(version));
        assert_eq!(prog(&["-help", "-V"]).unwrap_err(), CliExit::Info(help));
        assert_eq!(invalid(&["-help", "-bogus"]), "unknown option -bogus");
        assert!(invalid(&["-help", "cmd"]).starts_with("unexpected argument \"cmd\""));
        assert!(matches!(prog_cli(&["-h", "cmd"]), Err(CliExit::Info(_))));
    }

    #[test]
    fn claps_errors_are_one_line_with_single_dashes() {
        assert_eq!(
            invalid(&["-count=x"]),
            "invalid value 'x' for '-count <N>': invalid digit found in string"
        );
        assert_eq!(
            invalid(&["-connect=", "-datadir="]),
            "a value is required for '-datadir <DIR>' but none was supplied"
        );
    }

    #[test]
    fn one_line_escapes_control_characters() {
        assert_eq!(one_line("a\nb\tc\u{1}d é"), "a\\nb\\tc\\u{1}d é");
    }
}
