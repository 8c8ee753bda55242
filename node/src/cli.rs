//! Command line of `bitcoin-node`, with Bitcoin Core's single-dash option syntax (see
//! [`Args::parse_core`]).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[path = "core_args.rs"]
mod core_args;

pub use core_args::{CliExit, one_line};

/// Data path of IPC connections (`-transport`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// Shared-memory rings (default).
    #[default]
    Shm,
    /// Framed records over the unix socket.
    Socket,
}

impl From<Transport> for ipc_shm::Transport {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Shm => Self::Shm,
            Transport::Socket => Self::Socket,
        }
    }
}

/// Bitcoin node process: owns chain state, validates blocks and serves the Chain, Node and
/// Mining interfaces over ipc-shm. Options use Bitcoin Core's syntax (`-datadir=DIR`).
#[derive(Debug, Parser)]
// As in Core, an option given twice takes its last value.
#[command(name = "bitcoin-node", version, args_override_self = true)]
pub struct Args {
    /// Data directory (default: ~/.bitcoin-shm); chain data goes to DIR/regtest.
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// Chain to use; only regtest is supported.
    #[arg(long, value_name = "CHAIN", default_value = "regtest")]
    pub chain: String,
    /// Same as -chain=regtest.
    #[arg(long)]
    pub regtest: bool,
    /// Also send log output to stderr.
    #[arg(long)]
    pub printtoconsole: bool,
    /// Debug logging: -debug, -debug=1 or -debug=all for every category, -debug=ipc for the
    /// IPC connections; -debug=0 (or none) turns it off whatever else is given. May be
    /// repeated.
    #[arg(long, value_name = "CATEGORY", num_args = 0..=1, require_equals = true,
          default_missing_value = "1")]
    pub debug: Vec<String>,
    /// Do not spawn bitcoin-wallet.
    #[arg(long)]
    pub nowallet: bool,
    /// Data path of IPC connections.
    #[arg(long, value_enum, default_value_t = Transport::Shm)]
    pub transport: Transport,
    /// Accept IPC connections on "unix" (DIR/regtest/node.sock) or "unix:PATH", a relative
    /// PATH being taken relative to DIR/regtest; may be repeated.
    #[arg(long, value_name = "ADDRESS")]
    pub ipcbind: Vec<String>,
    /// Serve the connection on this inherited file descriptor (set by a spawning parent).
    #[arg(long, value_name = "FD")]
    pub ipcfd: Option<i32>,
    /// Most IPC connections at once, counting clients still in their handshake and the
    /// spawning parent's; more clients are refused with a clear error instead of waiting.
    #[arg(long, value_name = "N", default_value_t = crate::ipc::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ipcmaxconnections: u32,
}

/// A command-line value that cannot be used.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgsError {
    /// `-chain` names a chain other than regtest.
    UnsupportedChain(String),
    /// `-debug` names an unknown category.
    UnknownDebugCategory(String),
    /// No `-datadir` and no home directory to default to.
    NoHome,
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsupportedChain(c) => {
                write!(f, "chain {c:?} is not supported yet (only regtest)")
            }
            Self::UnknownDebugCategory(c) => {
                write!(
                    f,
                    "unknown debug category {c:?} (known: ipc, all, 1, 0, none)"
                )
            }
            Self::NoHome => f.write_str("no -datadir given and HOME is not set"),
        }
    }
}

impl std::error::Error for ArgsError {}

/// Debug categories `-debug` accepts.
const DEBUG_CATEGORIES: [&str; 5] = ["ipc", "all", "1", "0", "none"];

/// Read by Core's rules, with clap's help.
impl core_args::CoreArgs for Args {}

impl Args {
    /// Parses Core-style arguments, the program name first: `-datadir=DIR` (or
    /// `--datadir DIR`), flags as `-flag`, `-flag=1` or `-flag=0`, `-?` for help. Help and
    /// version requests come back as [`CliExit::Info`], anything wrong as one line in
    /// [`CliExit::Invalid`], with options named the single-dash way.
    pub fn parse_core<I>(args: I) -> Result<Self, CliExit>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        core_args::parse(args)
    }

    /// Checks the values clap cannot: the chain and the debug categories.
    pub fn validate(&self) -> Result<(), ArgsError> {
        if !self.regtest && self.chain != "regtest" {
            return Err(ArgsError::UnsupportedChain(self.chain.clone()));
        }
        if let Some(c) = self
            .debug
            .iter()
            .find(|c| !DEBUG_CATEGORIES.contains(&c.as_str()))
        {
            return Err(ArgsError::UnknownDebugCategory(c.clone()));
        }
        Ok(())
    }

    /// Whether `-debug` enables IPC logging: `ipc`, `all` or `1` does, unless `0` or
    /// `none` is given too (as in Core).
    pub fn debug_ipc(&self) -> bool {
        let off = self
            .debug
            .iter()
            .any(|c| matches!(c.as_str(), "0" | "none"));
        !off && self
            .debug
            .iter()
            .any(|c| matches!(c.as_str(), "ipc" | "all" | "1"))
    }

    /// The data directory: `-datadir`, else `$HOME/.bitcoin-shm`.
    pub fn datadir(&self) -> Result<PathBuf, ArgsError> {
        match &self.datadir {
            Some(d) => Ok(d.clone()),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".bitcoin-shm"))
                .ok_or(ArgsError::NoHome),
        }
    }

    /// The chain directory, `DATADIR/regtest`.
    pub fn chain_dir(&self) -> Result<PathBuf, ArgsError> {
        Ok(self.datadir()?.join("regtest"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_core_options() {
        let a = Args::parse_core([
            "bitcoin-node",
            "-datadir=/tmp/d",
            "-printtoconsole",
            "-debug=ipc",
            "-nowallet",
            "-transport=socket",
            "-ipcbind=unix",
            "-ipcfd=7",
        ])
        .unwrap();
        assert_eq!(a.chain_dir().unwrap(), PathBuf::from("/tmp/d/regtest"));
        assert!(a.printtoconsole && a.nowallet && a.debug_ipc());
        assert_eq!(a.transport, Transport::Socket);
        assert_eq!(a.ipcbind, vec!["unix".to_owned()]);
        assert_eq!(a.ipcfd, Some(7));
        assert_eq!(a.validate(), Ok(()));
    }

    #[test]
    fn rejects_other_chains_and_bad_values() {
        let a = Args::parse_core(["bitcoin-node", "-chain=main"]).unwrap();
        assert_eq!(
            a.validate().unwrap_err().to_string(),
            "chain \"main\" is not supported yet (only regtest)"
        );
        let a = Args::parse_core(["bitcoin-node", "-debug=net"]).unwrap();
        assert!(a.validate().is_err());
        assert!(Args::parse_core(["bitcoin-node", "-ipcfd=x"]).is_err());
        assert!(Args::parse_core(["bitcoin-node", "-transport=tcp"]).is_err());
        assert!(Args::parse_core(["bitcoin-node", "-bogus"]).is_err());
    }

    fn parse(args: &[&str]) -> Result<Args, CliExit> {
        Args::parse_core(std::iter::once("bitcoin-node").chain(args.iter().copied()))
    }

    #[test]
    fn debug_without_a_category_means_all_and_zero_means_none() {
        assert!(parse(&["-debug"]).unwrap().debug_ipc());
        assert!(
            parse(&["-debug", "-printtoconsole"])
                .unwrap()
                .printtoconsole
        );
        assert!(parse(&["-debug=all"]).unwrap().debug_ipc());
        assert!(!parse(&["-debug", "-debug=0"]).unwrap().debug_ipc());
        assert!(!parse(&["-debug=ipc", "-debug=none"]).unwrap().debug_ipc());
        assert!(!parse(&[]).unwrap().debug_ipc());
        let a = parse(&["-debug", "-debug=0", "-debug=none"]).unwrap();
        assert_eq!(a.validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_node_and_its_options_with_one_dash() {
        let invalid = |args: &[&str]| match parse(args) {
            Err(CliExit::Invalid(line)) => line,
            other => panic!("{args:?} gave {other:?}"),
        };
        assert_eq!(
            invalid(&["help"]),
            "unexpected argument \"help\": bitcoin-node takes no commands, only options"
        );
        let line = invalid(&["-transport=tcp"]);
        assert!(
            line.contains("'-transport <TRANSPORT>'") && !line.contains("--"),
            "{line}"
        );
        assert_eq!(
            invalid(&["-datadir", "/x"]),
            "-datadir takes its value only after =, as -datadir=DIR"
        );
    }

    #[test]
    fn help_and_version_in_every_spelling_use_single_dashes() {
        let info = |args: &[&str]| match parse(args) {
            Err(CliExit::Info(text)) => text,
            other => panic!("{args:?} gave {other:?}"),
        };
        for spelling in ["-?", "-h", "-help", "--help"] {
            let help = info(&[spelling]);
            assert!(help.contains("-datadir <DIR>"), "{spelling}: {help}");
            assert!(help.contains("      -printtoconsole"), "{spelling}: {help}");
            assert!(!help.contains("--"), "{spelling}: {help}");
            assert!(!help.contains("[default: false]"), "{spelling}: {help}");
        }
        assert!(info(&["-help"]).contains("relative to DIR/regtest"));
        // `-h` is clap's summary, the others the whole help.
        assert!(info(&["-help"]).contains("- socket: Framed records over the unix socket"));
        assert!(info(&["-h"]).contains("[possible values: shm, socket]"));
        for spelling in ["-version", "-V", "--version"] {
            assert_eq!(info(&[spelling]), "bitcoin-node 0.1.0\n");
        }
    }
}
