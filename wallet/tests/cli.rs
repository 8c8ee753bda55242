//! The `bitcoin-wallet` binary: Core-style options, the default wallet created on first
//! start, and one clear error line (non-zero exit) for what it cannot do yet.

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
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr:?}");
    assert!(lines[0].starts_with("bitcoin-wallet: "), "{stderr:?}");
    lines[0].to_owned()
}

#[test]
fn first_start_creates_the_default_wallet_then_loads_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("regtest/wallets/default/wallet.sqlite");
    for _start in 0..2 {
        let line = error_line(&run(dir.path(), &[]));
        assert!(line.contains("no node to sync with"), "{line}");
        assert!(db.is_file());
    }
    let log = std::fs::read_to_string(dir.path().join("regtest/wallet.log")).unwrap();
    assert_eq!(log.matches("created wallet").count(), 1, "{log}");
    assert_eq!(log.matches("loaded wallet").count(), 1, "{log}");
}

#[test]
fn wallet_option_and_ipc_options() {
    let dir = tempfile::tempdir().unwrap();
    let line = error_line(&run(dir.path(), &["-wallet=alice", "-ipcfd=3"]));
    assert!(
        line.contains("-ipcfd=3") && line.contains("not implemented yet"),
        "{line}"
    );
    assert!(
        dir.path()
            .join("regtest/wallets/alice/wallet.sqlite")
            .is_file()
    );
    let line = error_line(&run(dir.path(), &["-wallet=alice", "-ipcconnect=unix"]));
    assert!(line.contains("-ipcconnect=unix"), "{line}");
}

#[test]
fn bad_arguments_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let line = error_line(&run(dir.path(), &["-wallet=../escape"]));
    assert!(line.contains("invalid wallet name \"../escape\""), "{line}");
    assert!(!dir.path().join("regtest/escape").exists());

    let output = run(dir.path(), &["-transport=pigeon"]);
    assert_eq!(output.status.code(), Some(2), "clap's usage error");
    assert!(String::from_utf8_lossy(&output.stderr).contains("pigeon"));
}
