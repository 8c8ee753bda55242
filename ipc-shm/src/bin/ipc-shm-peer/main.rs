//! `ipc-shm-peer`: the far end of a connection, for cross-process tests and benchmarks.
//!
//! ```text
//! ipc-shm-peer ROLE [COUNT] [-transport=shm|socket] [-ring=BYTES] (-ipcfd=N | -ipcconnect=PATH)
//! ```
//!
//! Roles:
//! - `duplex COUNT`: sends COUNT pattern records and, at the same time, checks the COUNT
//!   pattern records it receives (content and order). Exit 0 when all were right.
//! - `echo`: sends every record back until the peer disconnects.
//! - `stream`: sends pattern records until the peer disconnects (or the process is killed).
//! - `stall`: connects and never reads, until killed or disconnected.
//!
//! It is a binary of its own, not the test executable re-run, because it must take the
//! `-ipcfd=N` argument that `spawn` appends, which the libtest harness rejects; and so it
//! exercises the exact path a Bitcoin binary takes.

use std::process::ExitCode;

use ipc_shm::{Config, Connection, Endpoint, Error, Transport};

mod pattern;

use pattern::{PEER_SEED, TEST_SEED};

#[derive(Debug)]
struct Args {
    role: String,
    count: u64,
    config: Config,
    ipcfd: Option<i32>,
    ipcconnect: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        role: String::new(),
        count: 0,
        config: Config::new("ipc-shm-peer"),
        ipcfd: None,
        ipcconnect: None,
    };
    for arg in std::env::args().skip(1) {
        if let Some(v) = arg.strip_prefix("-ipcfd=") {
            args.ipcfd = Some(v.parse().map_err(|_| format!("bad -ipcfd value {v:?}"))?);
        } else if let Some(v) = arg.strip_prefix("-ipcconnect=") {
            args.ipcconnect = Some(v.strip_prefix("unix:").unwrap_or(v).to_owned());
        } else if let Some(v) = arg.strip_prefix("-transport=") {
            args.config.transport = v.parse::<Transport>().map_err(|e| e.to_string())?;
        } else if let Some(v) = arg.strip_prefix("-ring=") {
            args.config.ring_capacity = v.parse().map_err(|_| format!("bad -ring value {v:?}"))?;
        } else if args.role.is_empty() {
            args.role = arg;
        } else {
            args.count = arg.parse().map_err(|_| format!("bad count {arg:?}"))?;
        }
    }
    if args.role.is_empty() {
        return Err("usage: ipc-shm-peer ROLE [COUNT] [-transport=..] [-ring=..] (-ipcfd=N | -ipcconnect=PATH)".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipc-shm-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let connection = match (args.ipcfd, &args.ipcconnect) {
        (Some(fd), _) => ipc_shm::accept_ipcfd(fd, &args.config),
        (None, Some(path)) => ipc_shm::connect(&Endpoint::unix(path), &args.config),
        (None, None) => return Err("one of -ipcfd or -ipcconnect is required".into()),
    }
    .map_err(|e| e.to_string())?;
    match args.role.as_str() {
        "duplex" => duplex(connection, args.count),
        "echo" => echo(connection),
        "stream" => {
            let (mut tx, _rx) = connection.split();
            until_disconnected(pattern::send(&mut tx, PEER_SEED, u64::MAX))
        }
        "stall" => {
            // Holds the connection open and never reads, so the peer's ring fills up.
            let _connection = connection;
            loop {
                std::thread::park();
            }
        }
        role => Err(format!("unknown role {role:?}")),
    }
}

fn until_disconnected(result: Result<(), Error>) -> Result<(), String> {
    match result {
        Ok(()) | Err(Error::Disconnected) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn duplex(connection: Connection, count: u64) -> Result<(), String> {
    let (mut tx, mut rx) = connection.split();
    let sender = std::thread::spawn(move || pattern::send(&mut tx, PEER_SEED, count).map(|()| tx));
    pattern::check_stream(&mut rx, TEST_SEED, 0..count)?;
    let tx = sender
        .join()
        .map_err(|_| "sender panicked".to_owned())?
        .map_err(|e| e.to_string())?;
    // Everything is checked: wait for the peer to close, so that it has read all of ours.
    drop(tx);
    match rx.recv() {
        Err(Error::Disconnected) => Ok(()),
        Ok(g) => Err(format!("unexpected extra record of {} bytes", g.len())),
        Err(e) => Err(e.to_string()),
    }
}

fn echo(connection: Connection) -> Result<(), String> {
    let (mut tx, mut rx) = connection.split();
    loop {
        let grant = match rx.recv() {
            Ok(g) => g,
            Err(e) => return until_disconnected(Err(e)),
        };
        if let Err(e) = tx.forward(&grant) {
            return until_disconnected(Err(e));
        }
    }
}
