//! Command line of `bitcoin-node`, with Bitcoin Core's single-dash option syntax.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Rewrites Core-style single-dash long options (`-datadir=DIR`, `-nowallet`) to the
/// double-dash form clap parses (`--datadir=DIR`, `--nowallet`). Single-letter options
/// (`-h`, `-V`), values that are not options, and everything after `--` are left alone.
/// The first element (the program name) is kept as is.
pub fn normalize_args<I>(args: I) -> Vec<OsString>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut out = Vec::new();
    let mut rest_literal = false;
    for (i, arg) in args.into_iter().map(Into::into).enumerate() {
        if i == 0 || rest_literal {
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            rest_literal = true;
            out.push(arg);
        } else if s.len() > 2 && s.starts_with('-') && s.as_bytes()[1].is_ascii_alphabetic() {
            out.push(OsString::from(format!("-{s}")));
        } else {
            out.push(arg);
        }
    }
    out
}

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
#[command(name = "bitcoin-node", version)]
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
    /// Debug logging for a category (ipc, all); may be repeated.
    #[arg(long, value_name = "CATEGORY")]
    pub debug: Vec<String>,
    /// Do not spawn bitcoin-wallet.
    #[arg(long)]
    pub nowallet: bool,
    /// Data path of IPC connections.
    #[arg(long, value_enum, default_value_t = Transport::Shm)]
    pub transport: Transport,
    /// Accept IPC connections on "unix" (DIR/regtest/node.sock) or "unix:PATH".
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
                write!(f, "unknown debug category {c:?} (known: ipc, all)")
            }
            Self::NoHome => f.write_str("no -datadir given and HOME is not set"),
        }
    }
}

impl std::error::Error for ArgsError {}

/// Debug categories `-debug` accepts.
const DEBUG_CATEGORIES: [&str; 4] = ["ipc", "all", "1", "0"];

impl Args {
    /// Parses Core-style arguments (see [`normalize_args`]).
    pub fn parse_core<I>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        Self::try_parse_from(normalize_args(args))
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

    /// Whether `-debug` enables IPC logging.
    pub fn debug_ipc(&self) -> bool {
        self.debug
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
    fn normalizes_core_single_dash_options_only() {
        let got = normalize_args([
            "bitcoin-node",
            "-datadir=/x",
            "-nowallet",
            "-h",
            "--chain=regtest",
            "-",
            "--",
            "-keep",
        ]);
        let want: Vec<OsString> = [
            "bitcoin-node",
            "--datadir=/x",
            "--nowallet",
            "-h",
            "--chain=regtest",
            "-",
            "--",
            "-keep",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(got, want);
    }

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
}
