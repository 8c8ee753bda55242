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
    assert!(lines[0].starts_with("Error: "), "{stderr:?}");
    assert!(
        !lines[0].contains("--"),
        "options are named the single-dash way: {stderr:?}"
    );
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
    // No node listens; -ipcconnect alone means `unix`, as in bitcoin-gui.
    let socket = dir.path().join("regtest/node.sock");
    for connect in ["-ipcconnect=unix", "-ipcconnect"] {
        let line = error_line(&run(dir.path(), &[connect]));
        assert_eq!(
            line,
            format!(
                "Error: cannot connect to the node at {0}: no node listening at {0}",
                socket.display()
            )
        );
    }
    // Without a node to serve, the wallet wrote nothing: no wallet.log, no wallets/.
    assert!(!dir.path().join("regtest").exists());
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
        "Error: chain \"main\" is not supported yet (only regtest)"
    );
    assert!(!dir.path().join("regtest").exists());

    // A wallet held by another process.
    let store = util::store(dir.path());
    store.create_wallet("alice").unwrap();
    let line = error_line(&run(dir.path(), &["-wallet=alice", "-ipcconnect=unix"]));
    assert!(line.contains("in use by another process"), "{line}");

    let line = error_line(&run(dir.path(), &["-transport=pigeon"]));
    assert!(line.contains("'pigeon'"), "{line}");
}

#[test]
fn options_take_cores_spellings_and_are_named_as_typed() {
    let dir = tempfile::tempdir().unwrap();
    let line = error_line(&run(dir.path(), &["-frobnicate"]));
    assert_eq!(line, "Error: unknown option -frobnicate (see -help)");
    let line = error_line(&run(dir.path(), &["info"]));
    assert_eq!(
        line,
        "Error: unexpected argument \"info\": bitcoin-wallet takes no commands, only options (see -help)"
    );
    let line = error_line(&run(dir.path(), &["-printtoconsole=maybe"]));
    assert_eq!(
        line,
        "Error: invalid value in -printtoconsole=maybe: -printtoconsole is a switch, on as -printtoconsole or -printtoconsole=1, off as -printtoconsole=0 (see -help)"
    );
    // Flags as -flag=1 and -flag=0 get as far as looking for the node.
    for flags in [
        &["-printtoconsole=1", "-regtest=1"][..],
        &["-printtoconsole=0", "-regtest=0"],
    ] {
        let line = error_line(&run(dir.path(), &[flags, &["-ipcconnect"]].concat()));
        assert!(
            line.starts_with("Error: cannot connect to the node at"),
            "{line}"
        );
    }
    for spelling in ["-?", "-h", "-help", "--help"] {
        let out = run(dir.path(), &[spelling]);
        assert!(out.status.success(), "{spelling}: {out:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            help.contains("-ipcconnect[=<ADDRESS>]"),
            "{spelling}: {help}"
        );
        assert!(!help.contains("--"), "{spelling}: {help}");
        assert!(!help.contains("PRINTTOCONSOLE"), "{spelling}: {help}");
    }
    let out = run(dir.path(), &["-version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "bitcoin-wallet 0.1.0\n"
    );
    assert!(!dir.path().join("regtest").exists());
}
