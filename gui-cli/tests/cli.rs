//! `bitcoin-gui` as a process: commands against a node served over a real unix socket and
//! real shared memory (or the socket transport), and its errors.

mod util;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use util::testnode::TestNode;
use util::{ADDRESS, ServedNode, gui, gui_exe, run, run_with_stdout};

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
        // Options as typed, and Core's rule that values come after `=`.
        (
            &["-rpcport=8332", "getblockcount"],
            "error: unknown option -rpcport=8332 (see --help)\n",
        ),
        (
            &["-ipcconnect", "unix", "getblockcount"],
            "error: write -ipcconnect=unix, not -ipcconnect unix: options take values only \
             after = (see --help)\n",
        ),
        (
            &["-datadir", "/elsewhere", "getblockcount"],
            "error: -datadir takes its value only after =, as -datadir=DIR (see --help)\n",
        ),
        (
            &["-regtest=2", "getblockcount"],
            "error: invalid value in -regtest=2: -regtest is a switch, on as -regtest or \
             -regtest=1, off as -regtest=0 (see --help)\n",
        ),
        // Amounts as Core checks them.
        (
            &["sendtoaddress", ADDRESS, "-1"],
            "error code: -3: Amount out of range\n",
        ),
        (
            &["sendtoaddress", ADDRESS, "21000000.00000001"],
            "error code: -3: Amount out of range\n",
        ),
        (
            &["help", "frobnicate"],
            "error code: -1: help: unknown command: frobnicate\n",
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

    // Connect mode with nobody listening; the socket is named once.
    let (ok, _, stderr) = gui(&[&datadir, "-ipcconnect", "getblockcount"]);
    assert!(!ok);
    let socket = dir.path().join("regtest").join("node.sock");
    assert_eq!(
        stderr,
        format!(
            "error: no bitcoin-node is listening at {} (is it running with -ipcbind?)\n",
            socket.display()
        )
    );
    // A socket path too long for a unix socket address.
    let long = format!("unix:/{}", "x".repeat(200));
    let (ok, _, stderr) = gui(&[&datadir, &format!("-ipcconnect={long}"), "getblockcount"]);
    assert!(!ok);
    assert_eq!(
        stderr,
        format!(
            "error: cannot connect to bitcoin-node: socket path /{} is 201 bytes, longer than \
             the 107 bytes a unix socket address holds\n",
            "x".repeat(200)
        )
    );

    // Spawn mode on a datadir that is a file: one line, ours; no node was started for it.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let (ok, _, stderr) = gui(&[&format!("-datadir={}", file.display()), "getblockcount"]);
    assert!(!ok);
    assert_eq!(
        stderr,
        format!(
            "error: cannot create data directory {}: Not a directory (os error 20)\n",
            file.join("regtest").display()
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
    let (ok, help, stderr) = gui(&["--help"]);
    assert!(ok && stderr.is_empty(), "{stderr}");
    for word in [
        "\n  -datadir=DIR\n",
        "\n  -ipcconnect[=ADDRESS]\n",
        "\n  -transport=shm|socket\n",
        "\n  -rpcwallet=NAME\n",
        "\n  generatetoaddress N ADDRESS ",
        "\n  sendtoaddress ADDRESS AMOUNT ",
        "\n  sendrawtransaction HEX [MAXFEERATE]\n",
        "\n  listtransactions [\"*\" [COUNT [SKIP]]]\n",
        "\n  stop ",
    ] {
        assert!(
            help.contains(word),
            "--help does not show {word:?}:\n{help}"
        );
    }
    // Core's spellings print the same.
    for flag in ["-help", "-?", "-h"] {
        assert_eq!(gui(&[flag]), (true, help.clone(), String::new()), "{flag}");
    }

    // bitcoin-cli's `help`: the command list, without a node (nothing is made in the
    // datadir); `help COMMAND`: its usage.
    let dir = tempfile::tempdir().unwrap();
    let datadir = format!("-datadir={}", dir.path().display());
    let (ok, list, stderr) = gui(&[&datadir, "help"]);
    assert!(ok, "{stderr}");
    assert!(list.starts_with("Commands:\n  getblockcount "), "{list}");
    assert!(
        help.contains(list.trim_start_matches("Commands:\n")),
        "{list}"
    );
    let (ok, usage, _) = gui(&[&datadir, "help", "sendrawtransaction"]);
    assert!(ok);
    assert!(
        usage.starts_with("sendrawtransaction HEX [MAXFEERATE]\n  "),
        "{usage}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// The reader of stdout gone before or while the result is written (`| head -1`): exit
/// 141 without a word, as bitcoin-cli ends by SIGPIPE; a stdout that fails otherwise: one
/// line and exit 1. Never a panic.
#[test]
fn a_result_that_cannot_be_written_ends_quietly_or_in_one_line() {
    let served = ServedNode::start();
    let mut args = served.options("shm");
    args.push("getblockcount".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // No reader at all: the pipe's read end is closed before bitcoin-gui starts.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = run_with_stdout(gui_exe(), &args, &|| {
        Stdio::from(writer.try_clone().unwrap())
    });
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    // `| head -1`: the reader takes the first line, then goes, with most of a result far
    // larger than a pipe holds still to write.
    let big = "a".repeat(100_000);
    let mut args = served.options("shm");
    args.push("echo".to_owned());
    args.extend(std::iter::repeat_n(big, 4));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (reader, writer) = std::io::pipe().unwrap();
    let head = std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(reader).read_line(&mut line).unwrap();
        line
    });
    let out = run_with_stdout(gui_exe(), &args, &|| {
        Stdio::from(writer.try_clone().unwrap())
    });
    // Ours closed too, so a reader still waiting sees the end of the stream.
    drop(writer);
    assert_eq!(head.join().unwrap(), "[\n");
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    // A full disk.
    let mut args = served.options("shm");
    args.push("getblockcount".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = run_with_stdout(gui_exe(), &args, &|| Stdio::from(full.try_clone().unwrap()));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: cannot write the result: No space left on device (os error 28)\n"
    );
    // `-help` writes the same way.
    let out = run_with_stdout(gui_exe(), &["-help"], &|| {
        Stdio::from(full.try_clone().unwrap())
    });
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// Spawn mode on a datadir whose node runs already: one line that says so, instead of the
/// node's refusal and a failed handshake. Here the node holds the datadir lock and listens
/// on no socket (as a node another bitcoin-gui spawned); tests/real_node.rs has one bound
/// with -ipcbind=unix.
#[test]
fn spawn_mode_on_a_locked_datadir_says_the_node_runs() {
    let node = TestNode::new();
    let (ok, stdout, stderr) = gui(&[
        &format!("-datadir={}", node.datadir().display()),
        "getblockcount",
    ]);
    assert!(!ok && stdout.is_empty());
    assert_eq!(
        stderr,
        format!(
            "error: bitcoin-node is already running on {} (attach to it with \
             -ipcconnect=unix[:PATH] if it serves -ipcbind)\n",
            node.datadir().display()
        )
    );
}
