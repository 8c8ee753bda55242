//! `ipc-shm-call-peer`: serves the test interface `Calc` over a call session, for the call
//! layer's cross-process tests.
//!
//! ```text
//! ipc-shm-call-peer [-transport=shm|socket] [-ring=BYTES] -ipcfd=N
//! ```
//!
//! Exits 0 when the peer hangs up.

use std::process::ExitCode;
use std::sync::Arc;

use ipc_shm::Config;
use ipc_shm::call::{Session, SessionConfig};

mod calc;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipc-shm-call-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut config = Config::new("ipc-shm-call-peer");
    let mut ipcfd = None;
    for arg in std::env::args().skip(1) {
        if let Some(v) = arg.strip_prefix("-ipcfd=") {
            ipcfd = Some(
                v.parse::<i32>()
                    .map_err(|_| format!("bad -ipcfd value {v:?}"))?,
            );
        } else if let Some(v) = arg.strip_prefix("-transport=") {
            config.transport = v.parse().map_err(|e| format!("{e}"))?;
        } else if let Some(v) = arg.strip_prefix("-ring=") {
            config.ring_capacity = v.parse().map_err(|_| format!("bad -ring value {v:?}"))?;
        } else {
            return Err(format!("unexpected argument {arg:?}"));
        }
    }
    let fd = ipcfd.ok_or("-ipcfd=N is required")?;
    let connection = ipc_shm::accept_ipcfd(fd, &config).map_err(|e| e.to_string())?;
    let session_config = SessionConfig {
        name: config.name.clone(),
        ..SessionConfig::default()
    };
    let session = Session::new(
        connection,
        Some(Arc::new(calc::Calc::default())),
        &session_config,
    );
    session.wait_closed();
    Ok(())
}
