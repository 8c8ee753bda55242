//! `bitcoin-wallet`: opens (or creates) its wallet, then serves it to the node over IPC.

use std::fs::OpenOptions;
use std::sync::Mutex;

use anyhow::{Context, bail};
use bitcoin::Network;
use wallet::{Args, WalletStore, chain_dir_name};

fn main() {
    if let Err(err) = run() {
        eprintln!("bitcoin-wallet: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse_core(std::env::args_os());
    let network = Network::Regtest;
    let datadir = args
        .datadir()
        .context("no -datadir given and $HOME is not set")?;
    init_logging(&args, &datadir.join(chain_dir_name(network)))?;

    let store = WalletStore::open(&datadir, network)
        .with_context(|| format!("cannot open wallets in {}", datadir.display()))?;
    let wallet = store
        .load_or_create_wallet(&args.wallet)
        .with_context(|| format!("cannot load wallet {:?}", args.wallet))?;
    let tip = wallet.last_block()?;
    tracing::info!(wallet = wallet.name(), height = tip.height, "wallet ready");

    match (args.ipcfd, &args.ipcconnect) {
        (Some(fd), _) => bail!("-ipcfd={fd}: serving the node over IPC is not implemented yet"),
        (None, Some(target)) => {
            bail!("-ipcconnect={target}: connecting to a node is not implemented yet")
        }
        (None, None) => bail!(
            "no node to sync with: bitcoin-node starts the wallet with -ipcfd=N, or give -ipcconnect=unix[:PATH]"
        ),
    }
}

/// Logs to stderr with `-printtoconsole`, else to `<datadir>/<chain>/wallet.log`.
fn init_logging(args: &Args, chain_dir: &std::path::Path) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if args.printtoconsole {
        builder.with_writer(std::io::stderr).init();
    } else {
        std::fs::create_dir_all(chain_dir)
            .with_context(|| format!("cannot create {}", chain_dir.display()))?;
        let path = chain_dir.join("wallet.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open log file {}", path.display()))?;
        builder
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .init();
    }
    Ok(())
}
