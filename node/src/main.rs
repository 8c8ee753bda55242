//! `bitcoin-node`: opens the regtest chain state in the data directory, serves the node's
//! interfaces on the `-ipcfd` connection and `-ipcbind` sockets, and runs until SIGINT,
//! SIGTERM, `Node::shutdown` or (when spawned) the parent's connection closing. Unless
//! `-nowallet`, it spawns `bitcoin-wallet` and hands it the `Chain`.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use node::chainstate::ChainState;
use node::cli::Args;
use node::ipc;
use node::service::NodeContext;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};

/// How long shutdown waits for connected clients to hang up by themselves.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The `-ipcbind` sockets being served; dropping stops them last-bound first, so that a
/// directory binding created for one socket is empty, and removed, once it goes.
struct Bound(Vec<ipc::IpcBind>);

impl Drop for Bound {
    fn drop(&mut self) {
        while let Some(bind) = self.0.pop() {
            bind.stop();
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::parse_core(std::env::args_os()) {
        Ok(a) => a,
        Err(exit) => return exit.report(),
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            // Not `eprintln!`: a stderr that is gone (the gui that spawned us killed, its
            // end of our stderr with it) must not turn this exit into a panic.
            let _ = writeln!(
                std::io::stderr(),
                "Error: {}",
                node::cli::one_line(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    // Everything the options alone get wrong is reported before anything is written.
    args.validate()?;
    let chain_dir = args.chain_dir()?;
    ipc::check_ipcbind(&args.ipcbind, &chain_dir)?;
    std::fs::create_dir_all(&chain_dir)
        .with_context(|| format!("cannot create data directory {}", chain_dir.display()))?;
    init_logging(&chain_dir, args)?;

    // Block the shutdown signals before any thread starts, so every thread inherits the
    // mask and only the wait below receives them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals
        .thread_block()
        .context("cannot block SIGINT/SIGTERM")?;

    let chain = ChainState::open(&chain_dir)?;
    let tip = chain.tip();
    let ctx = NodeContext::new(chain).context("cannot start the notification thread")?;
    tracing::info!(height = tip.height, hash = %tip.hash, datadir = %chain_dir.display(), "chain state loaded");
    let ipc_config = ipc::transport_config(args.transport.into());
    let clients = Arc::new(ipc::Clients::new(args.ipcmaxconnections));
    if let Some(fd) = args.ipcfd {
        ipc::serve_ipcfd(fd, &ctx, &ipc_config, &clients)?;
    }
    // A refused start drops the sockets already bound, which removes their files.
    let mut bound = Bound(Vec::new());
    for spec in &args.ipcbind {
        bound.0.push(ipc::serve_ipcbind(
            spec,
            &chain_dir,
            &ctx,
            &ipc_config,
            &clients,
        )?);
    }
    let wallet = if args.nowallet {
        None
    } else {
        ipc::spawn_wallet(&args.datadir()?, &ctx, &ipc_config)
            // The node is useful without a wallet; front ends get WALLET_NOT_FOUND.
            .inspect_err(|e| {
                tracing::error!("cannot start bitcoin-wallet, continuing without a wallet: {e}")
            })
            .ok()
    };
    tracing::info!("bitcoin-node ready");

    // A signal and `Node::shutdown` end the node the same way.
    let signal_ctx = Arc::downgrade(&ctx);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || match signals.wait() {
            Ok(signal) => {
                tracing::info!(?signal, "shutdown signal received");
                if let Some(ctx) = signal_ctx.upgrade() {
                    ctx.request_shutdown();
                }
            }
            Err(e) => tracing::error!("waiting for a shutdown signal failed: {e}"),
        })
        .context("cannot start the signal thread")?;
    ctx.wait_for_shutdown();
    tracing::info!("shutting down");
    // No new clients: the listeners stop and their socket files go.
    drop(bound);
    // The wallet goes first, as in Core: it flushes while the chain is still served, and the
    // node never exits leaving it running.
    if let Some(wallet) = wallet {
        wallet.stop();
    }
    // Connected clients may still hold the context; save what a drop would save.
    ctx.lock_chain()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .save_mempool()?;
    // Let clients take their last replies (the `Node::shutdown` reply among them); the
    // connections close when the process exits.
    let still_connected = clients.wait_disconnected(SHUTDOWN_GRACE);
    if still_connected > 0 {
        tracing::info!(
            clients = still_connected,
            "closing the remaining ipc connections"
        );
    }
    // Every change is already committed; dropping the chain state releases the datadir lock.
    drop(ctx);
    tracing::info!("shutdown done");
    Ok(())
}

/// Logs to `DIR/regtest/debug.log`, and to stderr with `-printtoconsole`. `-debug=ipc` turns
/// on debug output of the IPC crates.
fn init_logging(chain_dir: &Path, args: &Args) -> anyhow::Result<()> {
    let path = chain_dir.join("debug.log");
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let writer = if args.printtoconsole {
        BoxMakeWriter::new(Mutex::new(file).and(std::io::stderr))
    } else {
        BoxMakeWriter::new(Mutex::new(file))
    };
    let mut filter = EnvFilter::new("info");
    if args.debug_ipc() {
        for target in ["ipc_shm=debug", "interfaces=debug", "node::ipc=debug"] {
            filter = filter.add_directive(target.parse().context("log filter")?);
        }
    }
    tracing_subscriber::fmt()
        // A log line that cannot be written (stderr's reader has gone) is dropped. Reporting
        // it would `eprintln!` to that same stderr, which panics and takes down whichever
        // thread was logging: the signal thread, and with it SIGTERM, was one.
        .log_internal_errors(false)
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
    Ok(())
}
