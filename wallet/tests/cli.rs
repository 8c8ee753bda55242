//! The `bitcoin-wallet` binary's options and its one clear error line (non-zero exit) for
//! what it cannot do.

mod util;

use std::path::Path;
use std::process::{Command, Output};

fn run(datadir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitcoin-wallet"))
        .arg(format!("-datadir={}", datadir.display()))
        .args(args)
        .output()
        .expect("bitcoin-wallet runs")
}

/// The single line the binary prints to stderr on failure.
fn error_line(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr:?}");
    assert!(lines[0].starts_with("bitcoin-wallet: "), "{stderr:?}");
    lines[0].to_owned()
}

#[test]
fn without_a_node_it_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let line = error_line(&run(dir.path(), &[]));
    assert!(
        line.contains("-ipcfd=N") && line.contains("-ipcconnect"),
        "{line}"
    );
    // Refused on its options alone, it wrote nothing to the datadir.
    assert!(!dir.path().join("regtest").exists());
}

#[test]
fn ipc_options_that_lead_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    // Descriptor 3 is not a socket inherited from a node.
    let line = error_line(&run(dir.path(), &["-ipcfd=3"]));
    assert!(line.contains("-ipcfd=3"), "{line}");
    let line = error_line(&run(dir.path(), &["-ipcconnect=unix"]));
    let socket = dir.path().join("regtest/node.sock");
    assert!(line.contains(&socket.display().to_string()), "{line}");
    let line = error_line(&run(dir.path(), &["-ipcconnect=tcp:1.2.3.4"]));
    assert!(line.contains("-ipcconnect=tcp:1.2.3.4"), "{line}");
    let unwritable = dir.path().join("not-a-dir");
    std::fs::write(&unwritable, b"a file").unwrap();
    let line = error_line(&run(&unwritable, &["-ipcconnect=unix"]));
    assert!(line.contains("not-a-dir"), "{line}");
}

#[test]
fn bad_wallets_fail_before_any_node_is_involved() {
    let dir = tempfile::tempdir().unwrap();
    let line = error_line(&run(dir.path(), &["-wallet=../escape", "-ipcconnect=unix"]));
    assert!(line.contains("invalid wallet name \"../escape\""), "{line}");
    assert!(
        !dir.path().join("regtest").exists(),
        "nothing written for a bad name"
    );

    let line = error_line(&run(dir.path(), &["-chain=main", "-ipcconnect=unix"]));
    assert_eq!(
        line,
        "bitcoin-wallet: chain \"main\" is not supported yet (only regtest)"
    );
    assert!(!dir.path().join("regtest").exists());

    // A wallet held by another process.
    let store = util::store(dir.path());
    store.create_wallet("alice").unwrap();
    let line = error_line(&run(dir.path(), &["-wallet=alice", "-ipcconnect=unix"]));
    assert!(line.contains("in use by another process"), "{line}");

    let line = error_line(&run(dir.path(), &["-transport=pigeon"]));
    assert!(line.contains("'pigeon'"), "{line}");
    let line = error_line(&run(dir.path(), &["-frobnicate"]));
    assert!(line.contains("frobnicate"), "{line}");
}
