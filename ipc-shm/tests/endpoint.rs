//! Binding, connecting and spawning, with Bitcoin Core's option forms and error cases.

mod util;

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use ipc_shm::{ConnectError, Endpoint, Error, Listener, Transport};

fn connect_error(result: Result<impl std::fmt::Debug, Error>) -> ConnectError {
    match result {
        Err(Error::Connect(e)) => e,
        other => panic!("expected a connect error, got {other:?}"),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn endpoints_parse_bitcoin_core_forms() {
    let default = Path::new("/data/regtest/node.sock");
    assert_eq!(Endpoint::parse("unix", default).unwrap().path(), default);
    assert_eq!(
        Endpoint::parse("unix:/run/n.sock", default).unwrap().path(),
        Path::new("/run/n.sock")
    );
    assert_eq!(
        Endpoint::parse("unix:other.sock", default).unwrap().path(),
        Path::new("/data/regtest/other.sock")
    );
    assert_eq!(
        Endpoint::parse("unix:/x", default).unwrap().to_string(),
        "unix:/x"
    );
    for bad in ["tcp:127.0.0.1:8332", "unix:", "unixx", "", "UNIX"] {
        let e = Endpoint::parse(bad, default).unwrap_err();
        assert!(
            matches!(e, ConnectError::Unsupported { .. }),
            "{bad}: {e:?}"
        );
        assert!(
            e.to_string().contains("expected \"unix\" or \"unix:PATH\""),
            "{e}"
        );
    }
}

#[test]
fn bind_creates_a_private_directory_and_a_0600_socket_and_removes_it_on_drop() {
    let _dog = util::watchdog("bind", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datadir/regtest/node.sock");
    let listener = Listener::bind(&Endpoint::unix(&path), &util::config(Transport::Shm)).unwrap();
    assert_eq!(listener.path(), path);
    assert_eq!(mode(&dir.path().join("datadir")), 0o700);
    assert_eq!(mode(&dir.path().join("datadir/regtest")), 0o700);
    assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
    assert_eq!(mode(&path), 0o600);
    drop(listener);
    assert!(
        !path.exists(),
        "the socket file is removed with the listener"
    );
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_is_in_use() {
    let _dog = util::watchdog("stale", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sock");
    let endpoint = Endpoint::unix(&path);
    let config = util::config(Transport::Shm);
    // A listener that died without cleaning up leaves its socket file behind.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    assert_eq!(
        connect_error(ipc_shm::connect(&endpoint, &config)).to_string(),
        format!("no node listening at {}", path.display())
    );
    let listener = Listener::bind(&endpoint, &config).unwrap();

    let e = connect_error(Listener::bind(&endpoint, &config));
    assert!(matches!(e, ConnectError::InUse { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "socket {} is already in use by a running process",
            path.display()
        )
    );

    // The live listener still works after the failed bind.
    let (server, client) = std::thread::scope(|s| {
        let server = s.spawn(|| listener.accept());
        let client = ipc_shm::connect(&endpoint, &config);
        (server.join().unwrap().unwrap(), client.unwrap())
    });
    let (mut tx, _crx) = client.split();
    let (_stx, mut rx) = server.split();
    tx.send_bytes(b"still here").unwrap();
    assert_eq!(rx.recv().unwrap().to_vec(), b"still here");
}

#[test]
fn a_socket_path_longer_than_sun_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d".repeat(120)).join("node.sock");
    let config = util::config(Transport::Shm);
    for e in [
        connect_error(Listener::bind(&Endpoint::unix(&path), &config)),
        connect_error(ipc_shm::connect(&Endpoint::unix(&path), &config)),
    ] {
        assert!(matches!(e, ConnectError::PathTooLong { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("longer than the 107 bytes a unix socket address holds"),
            "{e}"
        );
    }
    assert!(
        !path.parent().unwrap().exists(),
        "nothing was created for a path that cannot work"
    );
}

#[test]
fn connecting_to_nobody_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sock");
    let e = connect_error(ipc_shm::connect(
        &Endpoint::unix(&path),
        &util::config(Transport::Shm),
    ));
    assert_eq!(
        e.to_string(),
        format!("no node listening at {}", path.display())
    );
}

#[test]
fn bind_leaves_a_file_that_is_not_a_socket_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sock");
    std::fs::write(&path, b"precious").unwrap();
    let e = connect_error(Listener::bind(
        &Endpoint::unix(&path),
        &util::config(Transport::Shm),
    ));
    assert!(matches!(e, ConnectError::NotASocket { .. }), "{e:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn spawning_a_missing_executable_names_it() {
    let e = connect_error(ipc_shm::spawn(
        "no-such-ipc-shm-binary",
        ["x"],
        &util::config(Transport::Shm),
    ));
    assert!(matches!(e, ConnectError::Spawn { .. }), "{e:?}");
    assert!(e.to_string().contains("no-such-ipc-shm-binary"), "{e}");
}

#[test]
fn accept_ipcfd_only_adopts_an_inherited_unix_stream_socket() {
    let config = util::config(Transport::Shm);
    let invalid = |fd: i32| match ipc_shm::accept_ipcfd(fd, &config) {
        Err(Error::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            e.to_string()
        }
        other => panic!("-ipcfd={fd}: expected an invalid-input error, got {other:?}"),
    };
    assert!(invalid(-1).contains("not a descriptor number"));
    assert!(invalid(1_000_000).contains("no such open descriptor"));
    // Opened by us, so close-on-exec: not something we inherited.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    assert!(invalid(a.as_raw_fd()).contains("close-on-exec"));
    // Inheritable, but a pipe, not a unix stream socket.
    let (r, _w) = nix::unistd::pipe().unwrap();
    nix::fcntl::fcntl(
        r.as_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    assert!(invalid(r.as_raw_fd()).contains("not a unix stream socket"));
}
