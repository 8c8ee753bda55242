//! The conformance suite across a real process boundary, the way `bitcoin-node` reaches
//! `bitcoin-wallet`: this test binary spawns itself with `-ipcfd=N` (the transport's
//! `spawn`), the child serves the test node's `Init` over the inherited socket, and the
//! parent runs the suite through proxies. The transcript must equal the in-process one,
//! over shared memory and over the socket transport. A harness-less test, so the child can
//! take Bitcoin Core's `-ipcfd` argument.

#[path = "../conformance/keys.rs"]
mod keys;
#[path = "../conformance/suite.rs"]
mod suite;
#[path = "../conformance/wallet.rs"]
mod wallet;
#[allow(dead_code)] // `subscribers` serves the in-process robustness tests only.
#[path = "../conformance/world.rs"]
mod world;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use interfaces::Init;
use interfaces::remote::{InitProxy, InitServer};
use ipc_shm::call::{CallError, Dispatch, Incoming, MethodId, Session, SessionConfig};
use ipc_shm::{Config, Transport, accept_ipcfd, spawn};

use keys::Key;
use world::{TestInit, World};

/// The child's extra bootstrap method: disconnect the tip (a reorganisation, which no
/// interface method causes). Far from `Init`'s ids.
const DISCONNECT_TIP: MethodId = 1000;

/// The child's bootstrap object: the test node's `Init`, plus [`DISCONNECT_TIP`].
struct ChildBootstrap {
    init: InitServer,
    world: Arc<World>,
}

impl std::fmt::Debug for ChildBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildBootstrap")
    }
}

impl Dispatch for ChildBootstrap {
    fn interface_name(&self) -> &'static str {
        "Init"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        if call.method() != DISCONNECT_TIP {
            return self.init.dispatch(call);
        }
        call.args::<()>()?;
        self.world.disconnect_tip();
        call.reply(&())
    }
}

fn config(name: &str, transport: Transport) -> Config {
    let mut config = Config::new(name);
    config.transport = transport;
    config.ring_capacity = 1 << 18;
    config
}

/// The child: serve the test node on the inherited socket until the parent hangs up.
fn serve(fd: i32) -> ExitCode {
    // The initiator chooses the transport; the acceptor's own choice does not matter.
    let connection = match accept_ipcfd(fd, &config("conformance-node", Transport::Shm)) {
        Ok(connection) => connection,
        Err(e) => {
            eprintln!("conformance child: {e}");
            return ExitCode::FAILURE;
        }
    };
    let world = World::new(suite::START_BLOCKS, &Key::new(1).script());
    let init: Arc<dyn Init> = Arc::new(TestInit {
        world: world.clone(),
    });
    let bootstrap: Arc<dyn Dispatch> = Arc::new(ChildBootstrap {
        init: InitServer::new(init),
        world,
    });
    let session = Session::new(connection, Some(bootstrap), &SessionConfig::default());
    session.wait_closed();
    ExitCode::SUCCESS
}

/// The parent: the suite in-process, then against a spawned child over `transport`.
fn compare(transport: Transport) -> Result<(), String> {
    let world = World::new(suite::START_BLOCKS, &Key::new(1).script());
    let init: Arc<dyn Init> = Arc::new(TestInit {
        world: world.clone(),
    });
    let expected = suite::run(&init, &|| world.disconnect_tip());

    let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
    let (mut child, connection) = spawn(&exe, ["-serve"], &config("conformance-gui", transport))
        .map_err(|e| format!("spawning the child: {e}"))?;
    assert_eq!(connection.transport(), transport);
    let session = Session::new(connection, None, &SessionConfig::default());
    let boot = session.bootstrap();
    let proxy: Arc<dyn Init> = Arc::new(InitProxy::new(boot.clone()));
    let reorg = || {
        boot.call_with(DISCONNECT_TIP, 0, |_| Ok(()), |_| Ok(()))
            .expect("the child disconnects its tip")
    };
    let found = suite::run(&proxy, &reorg);
    drop((proxy, boot));
    drop(session);
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the child: {e}"))?;
    if !status.success() {
        return Err(format!("the child exited with {status}"));
    }
    for (i, (e, f)) in expected.iter().zip(&found).enumerate() {
        if e != f {
            return Err(format!(
                "{transport:?}: line {i} differs:\n  in-process: {e}\n  child:      {f}"
            ));
        }
    }
    if expected.len() != found.len() {
        return Err(format!(
            "{transport:?}: {} lines in-process, {} from the child",
            expected.len(),
            found.len()
        ));
    }
    println!(
        "{transport:?}: {} lines identical across the process boundary",
        found.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    if let Some(fd) =
        std::env::args().find_map(|a| a.strip_prefix("-ipcfd=").and_then(|n| n.parse().ok()))
    {
        return serve(fd);
    }
    // Answer libtest's listing like a harness would; other libtest flags are ignored.
    if std::env::args().any(|a| a == "--list") {
        println!("cross_process_conformance: test");
        return ExitCode::SUCCESS;
    }
    // A hang in either process must fail the run, not stall it.
    let (done, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(Duration::from_secs(180)) {
            // Straight to stderr: libtest captures eprintln! in test threads, and the abort
            // below would throw the capture away.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "watchdog: cross-process conformance still running after 180 s; aborting"
            );
            std::process::abort();
        }
    });
    let mut failed = false;
    for transport in [Transport::Shm, Transport::Socket] {
        if let Err(e) = compare(transport) {
            eprintln!("cross-process conformance failed: {e}");
            failed = true;
        }
    }
    drop(done);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
