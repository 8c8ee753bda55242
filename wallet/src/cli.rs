//! Command line of `bitcoin-wallet`, with Bitcoin Core's option names and its single-dash
//! `-name=value` spelling (see [`Args::try_parse_core`]).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::store::DEFAULT_WALLET;

/// Core's command-line rules, shared with `bitcoin-node` and `bitcoin-gui` (the wallet
/// links neither).
#[path = "../../node/src/core_args.rs"]
mod core_args;

pub use core_args::{CliExit, one_line};

/// Bitcoin wallet process: a descriptor wallet kept in sync with bitcoin-node over ipc-shm.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
// As in Core, an option given twice takes its last value.
#[command(name = "bitcoin-wallet", version, args_override_self = true)]
pub struct Args {
    /// Data directory; wallets live in DATADIR/regtest/wallets/NAME/ [default: ~/.bitcoin-shm]
    #[arg(long, value_name = "DATADIR")]
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

    /// Connect to a running node: "unix" (or -ipcconnect alone) for DATADIR/regtest/node.sock,
    /// or "unix:PATH", a relative PATH being taken relative to DATADIR/regtest
    #[arg(long, value_name = "ADDRESS", conflicts_with = "ipcfd", num_args = 0..=1,
          require_equals = true, default_missing_value = "unix")]
    pub ipcconnect: Option<String>,

    /// Transport of the IPC connection
    #[arg(long, default_value = "shm", value_parser = ["shm", "socket"])]
    pub transport: String,

    /// Log to the console (stderr) instead of DATADIR/regtest/wallet.log
    #[arg(long)]
    pub printtoconsole: bool,
}

/// Read by Core's rules, with clap's help.
impl core_args::CoreArgs for Args {}

impl Args {
    /// Parses Core-style arguments, the program name first: `-datadir=DIR` (or
    /// `--datadir DIR`), flags as `-flag`, `-flag=1` or `-flag=0`, `-?` for help. Help and
    /// version requests come back as [`CliExit::Info`], anything wrong as one line in
    /// [`CliExit::Invalid`], with options named the single-dash way.
    pub fn try_parse_core<I, T>(args: I) -> Result<Self, CliExit>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        core_args::parse(args)
    }

    /// The data directory: `-datadir`, else `~/.bitcoin-shm`.
    pub fn datadir(&self) -> Option<PathBuf> {
        self.datadir.clone().or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".bitcoin-shm"))
        })
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

    fn parse(args: &[&str]) -> Result<Args, CliExit> {
        Args::try_parse_core(std::iter::once("bitcoin-wallet").chain(args.iter().copied()))
    }

    #[test]
    fn flags_and_ipcconnect_take_cores_spellings() {
        let args = parse(&["-printtoconsole=1", "-regtest=1"]).unwrap();
        assert!(args.printtoconsole && args.regtest);
        let args = parse(&["-printtoconsole", "-printtoconsole=0", "-regtest=0"]).unwrap();
        assert!(!args.printtoconsole && !args.regtest);
        // -ipcconnect alone is `unix`, as in bitcoin-gui; it takes no separate value.
        let args = parse(&["-ipcconnect"]).unwrap();
        assert_eq!(args.ipcconnect.as_deref(), Some("unix"));
        let args = parse(&["-ipcconnect", "-printtoconsole"]).unwrap();
        assert_eq!(args.ipcconnect.as_deref(), Some("unix"));
        assert!(args.printtoconsole);
        let args = parse(&["-ipcconnect=unix:w.sock"]).unwrap();
        assert_eq!(args.ipcconnect.as_deref(), Some("unix:w.sock"));
        let args = parse(&["-datadir=/x", "--wallet", "alice"]).unwrap();
        assert_eq!(args.datadir, Some(PathBuf::from("/x")));
        assert_eq!(args.wallet, "alice");
    }

    #[test]
    fn errors_name_options_as_typed_and_help_uses_single_dashes() {
        let invalid = |args: &[&str]| match parse(args) {
            Err(CliExit::Invalid(line)) => line,
            other => panic!("{args:?} gave {other:?}"),
        };
        assert_eq!(invalid(&["-bogus"]), "unknown option -bogus");
        assert_eq!(
            invalid(&["info"]),
            "unexpected argument \"info\": bitcoin-wallet takes no commands, only options"
        );
        let line = invalid(&["-ipcfd=3", "-ipcconnect"]);
        assert!(line.contains("'-ipcconnect[=<ADDRESS>]'"), "{line}");
        assert!(!line.contains("--"), "{line}");
        for spelling in ["-?", "-h", "-help", "--help"] {
            let Err(CliExit::Info(help)) = parse(&[spelling]) else {
                panic!("{spelling} gives no help");
            };
            assert!(help.contains("-printtoconsole"), "{help}");
            assert!(
                !help.contains("PRINTTOCONSOLE"),
                "a flag shows no value: {help}"
            );
            assert!(!help.contains("--"), "{help}");
            assert!(help.contains("relative to DATADIR/regtest"), "{help}");
        }
        assert_eq!(
            parse(&["-version"]),
            Err(CliExit::Info("bitcoin-wallet 0.1.0\n".into()))
        );
    }
}
