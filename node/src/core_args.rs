//! Bitcoin Core's command-line conventions on top of clap, shared by `bitcoin-node` and
//! `bitcoin-wallet` (the wallet includes this file with `#[path]`, having no dependency on
//! the node):
//! - long options take one dash and their value only after `=`, `-datadir=DIR` (as in Core,
//!   and as `bitcoin-gui` must, where a separate word may be the command); clap's
//!   `--datadir DIR` works too;
//! - a boolean flag is `-flag`, `-flag=1` or `-flag=0` (also `true`/`false`), the last one
//!   given winning;
//! - `-?`, `-h`, `-help` and `--help` print the help, `-version` and `-V` the version;
//! - help and error messages name options the single-dash way;
//! - an unknown option, or an argument that is not an option, is one line naming it as typed.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use clap::error::ErrorKind;
use clap::{ArgAction, Command, Parser};

/// Why a command line does not start the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliExit {
    /// Help or version text was asked for: print it to stdout and exit with success.
    Info(String),
    /// The command line is wrong: one line saying why (without an `Error: ` prefix).
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

impl CliExit {
    /// Ends the program as Core does: help or version text on stdout with success (a closed
    /// stdout, as in `-help | head -1`, is no failure), else the one line on stderr after
    /// `Error: `, with failure.
    pub fn report(self) -> std::process::ExitCode {
        match self {
            Self::Info(text) => {
                use std::io::Write;
                let _ = std::io::stdout().write_all(text.as_bytes());
                std::process::ExitCode::SUCCESS
            }
            Self::Invalid(line) => {
                eprintln!("Error: {}", one_line(&line));
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// Parses `args` (the program name first) with Core's conventions into `T`.
pub(crate) fn parse<T: Parser>(
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Result<T, CliExit> {
    let mut cmd = T::command();
    cmd.build();
    let argv = normalize(&cmd, args.into_iter().map(Into::into))?;
    let mut matches = cmd
        .try_get_matches_from_mut(argv)
        .map_err(|e| from_clap(&e, &cmd))?;
    T::from_arg_matches_mut(&mut matches).map_err(|e| from_clap(&e.format(&mut cmd), &cmd))
}

/// Rewrites a Core-style command line to what clap parses: single-dash long options get
/// their second dash, boolean flags lose their `=1`/`=0` (a flag that ends up false is left
/// out), `-?` becomes `--help`. Unknown options and stray arguments are refused here, named
/// as the user typed them.
fn normalize(
    cmd: &Command,
    args: impl Iterator<Item = OsString>,
) -> Result<Vec<OsString>, CliExit> {
    let program = cmd.get_name();
    let mut args = args;
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    // The final value of each boolean flag given, in the order first seen.
    let mut flags: Vec<(&str, bool)> = Vec::new();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            // clap would take what follows as arguments, and we take none.
            match args.next() {
                Some(next) => return Err(stray(program, &next)),
                None => continue,
            }
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            return Err(stray(program, &arg));
        }
        let double = bytes.starts_with(b"--");
        let body = &bytes[if double { 2 } else { 1 }..];
        let (name, value) = match body.iter().position(|&b| b == b'=') {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let typed = || {
            let dashes = if double { "--" } else { "-" };
            format!("{dashes}{}", String::from_utf8_lossy(name))
        };
        let unknown = || CliExit::Invalid(format!("unknown option {} (see -help)", typed()));
        let Ok(name) = std::str::from_utf8(name) else {
            return Err(unknown());
        };
        if name == "?" && value.is_none() {
            out.push("--help".into());
            continue;
        }
        if !double && name.chars().count() == 1 {
            // A short option (`-h`, `-V`): clap's own.
            let short = name.chars().next();
            if value.is_none() && cmd.get_arguments().any(|a| a.get_short() == short) {
                out.push(arg);
                continue;
            }
            return Err(unknown());
        }
        let found = cmd.get_arguments().find_map(|a| {
            a.get_long()
                .filter(|&long| long == name)
                .map(|long| (a, long))
        });
        let Some((option, long)) = found else {
            return Err(unknown());
        };
        if matches!(option.get_action(), ArgAction::SetTrue) {
            let on = match value {
                None => true,
                Some(v) => parse_bool(v).ok_or_else(|| {
                    CliExit::Invalid(format!(
                        "invalid value \"{}\" for {}: expected 1 or 0",
                        String::from_utf8_lossy(v),
                        typed()
                    ))
                })?,
            };
            match flags.iter_mut().find(|(n, _)| *n == long) {
                Some(flag) => flag.1 = on,
                None => flags.push((long, on)),
            }
            continue;
        }
        let mut rewritten = OsString::from("--");
        rewritten.push(OsStr::from_bytes(body));
        out.push(rewritten);
        // An option whose value is optional (`-debug`) takes only an inline one; one that
        // needs a value takes it after `=`, or as the next word after `--name` (GNU style).
        let separate_value = option.get_action().takes_values()
            && option.get_num_args().is_none_or(|n| n.min_values() > 0);
        if value.is_none() && separate_value {
            if !double {
                let shown = option
                    .get_value_names()
                    .and_then(|names| names.first())
                    .map_or_else(|| "VALUE".to_owned(), ToString::to_string);
                return Err(CliExit::Invalid(format!(
                    "{} takes its value only after =, as {}={shown}",
                    typed(),
                    typed()
                )));
            }
            // GNU's `--datadir DIR`, passed on as one word: DIR is a value even if it
            // starts with a dash.
            if let Some(next) = args.next()
                && let Some(last) = out.last_mut()
            {
                last.push("=");
                last.push(next);
            }
        }
    }
    out.extend(
        flags
            .into_iter()
            .filter(|&(_, on)| on)
            .map(|(name, _)| OsString::from(format!("--{name}"))),
    );
    Ok(out)
}

/// Core's boolean spellings.
fn parse_bool(value: &[u8]) -> Option<bool> {
    match value {
        // Core reads `-flag=` as on.
        b"" | b"1" | b"true" => Some(true),
        b"0" | b"false" => Some(false),
        _ => None,
    }
}

/// The error for an argument that is not an option.
fn stray(program: &str, arg: &OsStr) -> CliExit {
    CliExit::Invalid(format!(
        "unexpected argument \"{}\": {program} takes no commands, only options (see -help)",
        arg.to_string_lossy()
    ))
}

/// clap's help, version or error (its first line) with the options spelled Core's way.
fn from_clap(e: &clap::Error, cmd: &Command) -> CliExit {
    let text = e.to_string();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            CliExit::Info(single_dash(&text, cmd))
        }
        _ => {
            let first = text.lines().next().unwrap_or("invalid arguments");
            CliExit::Invalid(single_dash(first.trim_start_matches("error: "), cmd))
        }
    }
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
