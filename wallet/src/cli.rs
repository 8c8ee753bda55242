//! Command line of `bitcoin-wallet`, with Bitcoin Core's option names and its single-dash
//! `-name=value` spelling.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::store::DEFAULT_WALLET;

/// Bitcoin wallet process: a descriptor wallet kept in sync with bitcoin-node over ipc-shm.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "bitcoin-wallet", version)]
pub struct Args {
    /// Data directory; wallets live in DATADIR/regtest/wallets/NAME/ [default: ~/.bitcoin-shm]
    #[arg(long)]
    pub datadir: Option<PathBuf>,

    /// Chain to use; only regtest is supported
    #[arg(long, value_name = "CHAIN", default_value = "regtest")]
    pub chain: String,

    /// Same as -chain=regtest
    #[arg(long)]
    pub regtest: bool,

    /// Wallet to load, created on first start if it does not exist
    #[arg(long, default_value = DEFAULT_WALLET)]
    pub wallet: String,

    /// Serve the node over this inherited socket file descriptor (set by bitcoin-node when it
    /// spawns the wallet)
    #[arg(long, value_name = "N")]
    pub ipcfd: Option<i32>,

    /// Connect to a running node: `unix` for DATADIR/regtest/node.sock, or `unix:PATH`
    #[arg(long, value_name = "unix[:PATH]", conflicts_with = "ipcfd")]
    pub ipcconnect: Option<String>,

    /// Transport of the IPC connection
    #[arg(long, default_value = "shm", value_parser = ["shm", "socket"])]
    pub transport: String,

    /// Log to the console (stderr)
    #[arg(long, num_args = 0..=1, default_value = "0", default_missing_value = "1", value_parser = parse_bool)]
    pub printtoconsole: bool,
}

impl Args {
    /// Parses Core-style arguments (see [`normalize`]); exits with clap's message on error.
    pub fn parse_core<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Self::parse_from(normalize(args))
    }

    /// [`Args::parse_core`] returning the error instead of exiting.
    pub fn try_parse_core<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Self::try_parse_from(normalize(args))
    }

    /// The data directory: `-datadir`, else `~/.bitcoin-shm`.
    pub fn datadir(&self) -> Option<PathBuf> {
        self.datadir.clone().or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".bitcoin-shm"))
        })
    }
}

/// Rewrites Bitcoin Core's single-dash long options (`-datadir=/x`, `-printtoconsole`) to
/// clap's double-dash form. Single-letter flags (`-h`, `-V`), double-dash options, `-` and
/// everything after `--` pass through unchanged. The first item is the program name.
pub fn normalize<I, T>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut rest = false;
    let mut out = Vec::new();
    for (i, arg) in args.into_iter().map(Into::into).enumerate() {
        let rewrite = i > 0
            && !rest
            && arg
                .to_str()
                .is_some_and(|s| s.starts_with('-') && !s.starts_with("--") && s.len() > 2);
        if arg == "--" {
            rest = true;
        }
        if rewrite {
            let mut long = OsString::from("-");
            long.push(&arg);
            out.push(long);
        } else {
            out.push(arg);
        }
    }
    out
}

/// Core's boolean spellings: `1`/`0`, `true`/`false`.
fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        other => Err(format!("expected 0 or 1, got {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_style_options_parse() {
        let args = Args::try_parse_core([
            "bitcoin-wallet",
            "-datadir=/tmp/x",
            "-wallet=alice",
            "-ipcconnect=unix:/tmp/x/node.sock",
            "-transport=socket",
            "-printtoconsole",
        ])
        .expect("parses");
        assert_eq!(args.datadir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(args.wallet, "alice");
        assert_eq!(args.ipcconnect.as_deref(), Some("unix:/tmp/x/node.sock"));
        assert_eq!(args.transport, "socket");
        assert!(args.printtoconsole);
        assert_eq!(args.ipcfd, None);
    }

    #[test]
    fn defaults_and_explicit_false() {
        let args = Args::try_parse_core(["bitcoin-wallet", "-printtoconsole=0", "-ipcfd=3"])
            .expect("parses");
        assert_eq!(args.wallet, DEFAULT_WALLET);
        assert_eq!(args.transport, "shm");
        assert!(!args.printtoconsole);
        assert_eq!(args.ipcfd, Some(3));
    }

    #[test]
    fn bad_values_are_rejected() {
        for bad in [
            vec!["bitcoin-wallet", "-transport=pigeon"],
            vec!["bitcoin-wallet", "-ipcfd=three"],
            vec!["bitcoin-wallet", "-ipcfd=3", "-ipcconnect=unix"],
            vec!["bitcoin-wallet", "-nosuchoption"],
        ] {
            assert!(
                Args::try_parse_core(bad.clone()).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn normalize_leaves_short_and_double_dash_alone() {
        let out = normalize(["prog", "-h", "--wallet=a", "-wallet=b", "--", "-x=y"]);
        assert_eq!(
            out,
            ["prog", "-h", "--wallet=a", "--wallet=b", "--", "-x=y"]
        );
    }
}
