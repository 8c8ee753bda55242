//! Helpers of the bind-lock tests (`bind_lock.rs`, `bind_lock_process.rs`).

use std::os::unix::net::UnixListener;
use std::path::Path;

use ipc_shm::{ConnectError, Endpoint, Error, Listener, Transport};

/// Binds a shared-memory listener at `path`.
pub fn bind(path: &Path) -> Result<Listener, Error> {
    Listener::bind(&Endpoint::unix(path), &super::config(Transport::Shm))
}

/// Whether `result` is the refusal of a path another listener holds.
pub fn is_in_use(result: &Result<Listener, Error>) -> bool {
    matches!(result, Err(Error::Connect(ConnectError::InUse { .. })))
}

/// The names in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Leaves a socket file nobody listens on at `path`, as a listener killed before it could
/// clean up does.
pub fn leave_stale_socket(path: &Path) {
    drop(UnixListener::bind(path).unwrap());
}
