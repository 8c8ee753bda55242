//! `bitcoin-wallet`: serves its wallets to bitcoin-node over ipc-shm.
//!
//! Started by the node with `-ipcfd=N` (the default path), it serves its `Init` on that
//! connection and exits when the connection closes. Started with `-ipcconnect=unix[:PATH]`,
//! it connects to a running node, serves the same `Init`, and reconnects with backoff when
//! the node goes away. Either way the node calls `Init::make_wallet_loader` with its `Chain`.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bitcoin::Network;
use interfaces::Init;
use interfaces::remote::{InitProxy, InitServer};
use ipc_shm::call::{Dispatch, Session, SessionConfig};
use ipc_shm::{Config, Connection, Endpoint, Transport};
use wallet::{Args, WalletError, WalletInit, WalletStore, chain_dir_name};

/// The longest wait between two attempts to reach a node that went away.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args = match Args::try_parse_core(std::env::args_os()) {
        Ok(args) => args,
        Err(exit) => return exit.report(),
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Not `eprintln!`: a stderr that is gone (the process that spawned our node
            // killed) must not turn this exit into a panic.
            let _ = writeln!(
                std::io::stderr(),
                "Error: {}",
                wallet::one_line(&format!("{err:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

/// Where the node is, as the options say.
enum NodeAt {
    /// Inherited from the node that spawned us (`-ipcfd=N`).
    Inherited(i32),
    /// Listening at an address (`-ipcconnect`).
    Listening(Endpoint),
}

fn run(args: &Args) -> anyhow::Result<()> {
    let network = Network::Regtest;
    let datadir = args
        .datadir()
        .context("no -datadir given and $HOME is not set")?;
    let chain_dir = datadir.join(chain_dir_name(network));

    // What the options alone get wrong is reported before anything is written to the datadir.
    if !args.regtest && args.chain != "regtest" {
        bail!("chain {:?} is not supported yet (only regtest)", args.chain);
    }
    let mut config = Config::new("bitcoin-wallet");
    config.transport = args
        .transport
        .parse::<Transport>()
        .context("invalid -transport")?;
    let node = match (args.ipcfd, &args.ipcconnect) {
        (Some(fd), _) => NodeAt::Inherited(fd),
        (None, Some(spec)) => NodeAt::Listening(
            Endpoint::parse(spec, &chain_dir.join("node.sock"))
                .with_context(|| format!("invalid -ipcconnect={spec}"))?,
        ),
        (None, None) => bail!(
            "no node to serve: bitcoin-node starts the wallet with -ipcfd=N, or give -ipcconnect=unix[:PATH]"
        ),
    };
    let cannot_load = || format!("cannot load wallet {:?}", args.wallet);
    wallet::check_wallet_name(&args.wallet).with_context(cannot_load)?;
    let cannot_open = || format!("cannot open wallets in {}", datadir.display());

    // Fail before talking to the node on what it cannot fix: a database that is damaged or
    // held by another process. A missing wallet is created once the node's chain is known
    // (born at its tip). Where there are no wallets yet, this creates nothing.
    let existing = WalletStore::open_existing(&datadir, network).with_context(cannot_open)?;
    let loaded = match existing
        .as_ref()
        .map(|store| store.load_wallet(&args.wallet))
    {
        Some(Ok(_)) => true,
        None | Some(Err(WalletError::NotFound { .. })) => false,
        Some(Err(err)) => return Err(err).with_context(cannot_load),
    };

    // Reach the node before writing anything: without one there is nothing to serve, and the
    // datadir is left as it was.
    let connection = match &node {
        NodeAt::Inherited(fd) => ipc_shm::accept_ipcfd(*fd, &config)
            .with_context(|| format!("cannot accept the node's connection on -ipcfd={fd}"))?,
        NodeAt::Listening(endpoint) => ipc_shm::connect(endpoint, &config).with_context(|| {
            format!(
                "cannot connect to the node at {}",
                endpoint.path().display()
            )
        })?,
    };

    init_logging(args, &chain_dir)?;
    if loaded {
        tracing::info!(wallet = %args.wallet, "loaded wallet");
    }
    let store = match existing {
        Some(store) => store,
        None => WalletStore::open(&datadir, network).with_context(cannot_open)?,
    };
    let init = Arc::new(WalletInit::new(store, args.wallet.clone()));

    match node {
        NodeAt::Inherited(_) => {
            serve(connection, &init).wait_closed();
            // The node closing its child's connection is how it shuts the wallet down: the
            // log records it, the terminal the node shares with us stays quiet.
            tracing::info!("the node closed the connection (shut down or died); exiting");
            Ok(())
        }
        NodeAt::Listening(endpoint) => follow_node(connection, &endpoint, &config, &init),
    }
}

/// Serves the wallet's `Init` on `connection`.
fn serve(connection: Connection, init: &Arc<WalletInit>) -> Session {
    let server: Arc<dyn Dispatch> = Arc::new(InitServer::new(Arc::clone(init) as _));
    let config = SessionConfig {
        name: String::from("bitcoin-wallet"),
        ..SessionConfig::default()
    };
    Session::new(connection, Some(server), &config)
}

/// Connect mode: serves the node at `endpoint`, first on `connection`, and attaches to its
/// chain; when the node goes away, retries with doubling delays up to
/// [`MAX_RECONNECT_DELAY`].
fn follow_node(
    connection: Connection,
    endpoint: &Endpoint,
    config: &Config,
    init: &Arc<WalletInit>,
) -> anyhow::Result<()> {
    let path = endpoint.path().display().to_string();
    let mut session = serve(connection, init);
    loop {
        attach(&session, init);
        tracing::info!(node = %path, "serving the node");
        session.wait_closed();
        tracing::warn!(node = %path, "the node went away; reconnecting");
        let _ = writeln!(
            std::io::stderr(),
            "bitcoin-wallet: the node at {path} went away; reconnecting"
        );
        let mut delay = Duration::from_millis(250);
        session = loop {
            std::thread::sleep(delay);
            match ipc_shm::connect(endpoint, config) {
                Ok(connection) => break serve(connection, init),
                Err(err) => {
                    tracing::info!(node = %path, error = %err, ?delay, "node not back yet");
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                }
            }
        };
    }
}

/// Binds a wallet loader to the chain of the node at the other end of `session` (its
/// bootstrap `Init::make_chain`), so the wallets follow that node even if it never calls
/// our `Init`. A node that offers no chain is logged, not fatal: it may still call us.
fn attach(session: &Session, init: &Arc<WalletInit>) {
    let node = InitProxy::new(session.bootstrap());
    let attached = node
        .make_chain()
        .and_then(|chain| init.make_wallet_loader(chain));
    match attached {
        Ok(_) => tracing::info!("following the node's chain"),
        Err(err) => tracing::warn!(error = %err, "cannot follow the node's chain"),
    }
}

/// Logs to stderr with `-printtoconsole`, else to `<datadir>/<chain>/wallet.log`.
fn init_logging(args: &Args, chain_dir: &Path) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A line that cannot be written is dropped: reporting it would `eprintln!` to a stderr
    // whose reader may be gone, which panics the logging thread.
    let builder = tracing_subscriber::fmt()
        .log_internal_errors(false)
        .with_env_filter(filter);
    if args.printtoconsole {
        let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder
            .with_ansi(colour)
            .with_writer(std::io::stderr)
            .init();
    } else {
        std::fs::create_dir_all(chain_dir)
            .with_context(|| format!("cannot create {}", chain_dir.display()))?;
        let path: PathBuf = chain_dir.join("wallet.log");
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
