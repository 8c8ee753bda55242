//! `bitcoin-gui` as a process: commands against a node served over a real unix socket and
//! real shared memory (or the socket transport), and its errors.

mod util;

use util::{ADDRESS, ServedNode, gui, gui_exe, run};

fn with(options: &[String], args: &[&str]) -> Vec<String> {
    options
        .iter()
        .cloned()
        .chain(args.iter().map(|s| (*s).to_owned()))
        .collect()
}

fn gui_ok(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, stdout, stderr) = gui(&args);
    assert!(ok, "bitcoin-gui {args:?} failed: {stderr}");
    stdout
}

#[test]
fn commands_in_connect_mode_over_both_transports() {
    for transport in ["shm", "socket"] {
        let served = ServedNode::start();
        let o = served.options(transport);
        assert_eq!(gui_ok(&with(&o, &["getblockcount"])), "0\n");
        // Bare `-ipcconnect` is `unix`: DIR/regtest/node.sock.
        let datadir = format!("-datadir={}", served.node.datadir().display());
        let bare = [
            datadir,
            "-ipcconnect".to_owned(),
            format!("-transport={transport}"),
        ];
        assert_eq!(gui_ok(&with(&bare, &["getblockcount"])), "0\n");

        // The template crosses the connection, the proof of work is solved in bitcoin-gui,
        // and the node accepts only a solution that meets the target.
        let mined = gui_ok(&with(&o, &["generatetoaddress", "2", ADDRESS]));
        let hashes: Vec<&str> = mined
            .lines()
            .filter_map(|l| l.trim().trim_end_matches(',').strip_prefix('"'))
            .collect();
        let hashes: Vec<&str> = hashes.iter().map(|h| h.trim_end_matches('"')).collect();
        assert_eq!(hashes.len(), 2, "{mined}");
        assert!(
            mined.starts_with("[\n  \"") && mined.ends_with("\"\n]\n"),
            "{mined}"
        );
        assert_eq!(gui_ok(&with(&o, &["getblockcount"])), "2\n");
        assert_eq!(
            gui_ok(&with(&o, &["getbestblockhash"])),
            format!("{}\n", hashes[1])
        );
        assert_eq!(
            gui_ok(&with(&o, &["getblockhash", "1"])),
            format!("{}\n", hashes[0])
        );
        let block = gui_ok(&with(&o, &["getblock", hashes[1]]));
        assert!(block.contains("\n  \"height\": 2,\n"), "{block}");
        assert!(
            block.contains(&format!("\"previousblockhash\": \"{}\"", hashes[0])),
            "{block}"
        );
        assert_eq!(
            gui_ok(&with(&o, &["echo", "a", "b c"])),
            "[\n  \"a\",\n  \"b c\"\n]\n"
        );

        // The node's own errors, one line, non-zero exit.
        let args = with(&o, &["getbalance"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = gui(&args);
        assert!(!ok && stdout.is_empty());
        assert_eq!(stderr, "error code: -18: no wallet process is attached\n");

        // Leaving does not stop the node: it still serves the next client, until `stop`.
        assert!(!served.node.shutdown_requested());
        assert_eq!(gui_ok(&with(&o, &["stop"])), "bitcoin-node stopping\n");
        assert!(served.node.shutdown_requested());
    }
}

#[test]
fn errors_are_one_line_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    let cases: &[(&[&str], &str)] = &[
        (
            &["frobnicate"],
            "error code: -32601: Method not found: frobnicate\n",
        ),
        (
            &["generatetoaddress", "1", "nonsense"],
            "error code: -5: Invalid address: nonsense\n",
        ),
        (
            &["getblockhash"],
            "error code: -1: usage: getblockhash HEIGHT\n",
        ),
        (&["-transport=tcp", "getblockcount"], ""),
        (
            &["-chain=main", "getblockcount"],
            "error: chain \"main\" is not supported yet (only regtest)\n",
        ),
        (
            &[],
            "error: no command given and not on a terminal (see --help)\n",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec![datadir.as_str()];
        all.extend_from_slice(args);
        let (ok, stdout, stderr) = gui(&all);
        assert!(!ok && stdout.is_empty(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        if !want.is_empty() {
            assert_eq!(&stderr, want, "{args:?}");
        }
    }
    // Argument errors come before any node is started: nothing was written to the datadir.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // Connect mode with nobody listening.
    let (ok, _, stderr) = gui(&[&datadir, "-ipcconnect", "getblockcount"]);
    assert!(!ok);
    let socket = dir.path().join("regtest").join("node.sock");
    assert_eq!(
        stderr,
        format!(
            "error: cannot connect to bitcoin-node at unix:{} (is it running with -ipcbind?): no node listening at {}\n",
            socket.display(),
            socket.display()
        )
    );

    // Spawn mode with no bitcoin-node beside the executable.
    let lonely = dir.path().join("bin");
    std::fs::create_dir(&lonely).unwrap();
    let exe = lonely.join("bitcoin-gui");
    std::fs::copy(gui_exe(), &exe).unwrap();
    let out = run(&exe, &[&datadir, "getblockcount"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot start bitcoin-node with -ipcfd"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&lonely.join("bitcoin-node").display().to_string()),
        "{stderr}"
    );
}

#[test]
fn help_explains_options_and_commands() {
    for flag in ["--help", "-help"] {
        let (ok, stdout, _) = gui(&[flag]);
        assert!(ok, "{flag}");
        for word in [
            "-datadir",
            "-ipcconnect",
            "-transport",
            "-rpcwallet",
            "generatetoaddress",
            "sendtoaddress",
            "stop",
        ] {
            assert!(stdout.contains(word), "{flag} does not mention {word}");
        }
    }
}
