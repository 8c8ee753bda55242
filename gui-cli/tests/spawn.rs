//! Spawn mode with the real binaries: `bitcoin-gui` starts `bitcoin-node -ipcfd=N` from beside
//! its own executable on an empty datadir, runs the command over the connection, and leaves
//! no node behind.
//!
//! `bitcoin-node` is another package's binary, so `cargo test -p gui-cli` alone may not have
//! built it; `cargo test --workspace` (the README's and CI's command) always has.

mod util;

use std::path::Path;

use util::{ADDRESS, gui_exe, run};

/// Processes whose command line mentions `needle` (our unique datadir).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(needle).then_some(cmdline)
        })
        .collect()
}

#[test]
fn spawn_mode_from_an_empty_datadir_over_both_transports() {
    let node = gui_exe().with_file_name("bitcoin-node");
    if !node.exists() {
        eprintln!(
            "{} is not built (cargo test --workspace builds it): spawn mode cannot run",
            node.display()
        );
        return;
    }
    for transport in ["shm", "socket"] {
        let dir = tempfile::tempdir().unwrap();
        let datadir = format!("-datadir={}", dir.path().display());
        let transport_opt = format!("-transport={transport}");
        let gui = |args: &[&str]| {
            let mut all = vec![datadir.as_str(), transport_opt.as_str()];
            all.extend_from_slice(args);
            let out = run(gui_exe(), &all);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            // Every spawned node (and whatever it spawned) is gone once bitcoin-gui returns.
            assert_eq!(
                processes_mentioning(&dir.path().display().to_string()),
                Vec::<String>::new()
            );
            (out.status.success(), stdout, stderr)
        };
        let (ok, stdout, stderr) = gui(&["getblockcount"]);
        assert!(ok, "{transport}: {stderr}");
        assert_eq!(stdout, "0\n");
        assert!(
            Path::new(&dir.path().join("regtest")).is_dir(),
            "the node made its datadir"
        );

        let (ok, mined, stderr) = gui(&["generatetoaddress", "101", ADDRESS]);
        assert!(ok, "{transport}: {stderr}");
        let hashes: Vec<&str> = mined
            .lines()
            .filter(|l| l.trim().starts_with('"'))
            .collect();
        assert_eq!(hashes.len(), 101);
        let last = hashes[100].trim().trim_matches('"');
        assert_eq!(gui(&["getblockcount"]).1, "101\n");
        assert_eq!(gui(&["getbestblockhash"]).1, format!("{last}\n"));
        let (ok, block, _) = gui(&["getblock", last]);
        assert!(ok && block.contains("\n  \"height\": 101,\n"), "{block}");

        let (ok, stdout, _) = gui(&["stop"]);
        assert!(ok);
        assert_eq!(stdout, "bitcoin-node stopping\n");
    }
}
