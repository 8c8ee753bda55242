//! The interactive UI in a real terminal (tmux): it starts, shows the chain and the
//! wallet's balance, follows a block mined by another client without a key press, and `q`
//! or Ctrl-C exits restoring the terminal. One test runs against the real `bitcoin-node`
//! and `bitcoin-wallet` processes; the others against an in-process node that can hang up
//! on its clients while staying alive.

mod util;

use std::process::Command;
use std::time::{Duration, Instant};

use bitcoin::Address;
use util::bound::BoundNode;
use util::{ADDRESS, ServedNode, gui_exe};

/// A tmux server of our own, on a socket in a directory of its own (`-S`): killed when the
/// test ends, and its socket file removed with the directory (tmux's `kill-server` leaves it).
struct Tmux {
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "ui"])
    }

    fn format(&self, format: &str) -> String {
        self.cmd(&["display-message", "-p", "-t", "ui", format])
            .trim()
            .to_owned()
    }

    /// Waits (at most 30 s) until `done` holds for the pane. tmux offers no notification
    /// of screen changes, so this looks at the pane every few milliseconds; the test does
    /// not depend on how long anything takes.
    fn wait_for(&self, what: &str, done: impl Fn(&Tmux) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// Starts `bitcoin-gui options…` in a fresh tmux server. Without tmux the test fails: a UI
/// test that passes without a terminal would prove nothing.
fn start_ui(options: Vec<String>, name: &str) -> Tmux {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "tmux is not installed: the terminal UI tests need it (apt-get install tmux; .ci/run does)"
    );
    let dir = tempfile::Builder::new()
        .prefix(&format!("bitcoin-gui-{name}-"))
        .tempdir()
        .expect("a directory for the tmux socket");
    let tmux = Tmux {
        socket: dir.path().join("tmux.sock"),
        _dir: dir,
    };
    let mut command = vec![gui_exe().display().to_string()];
    command.extend(options);
    // The shell reports the exit status on the restored screen and keeps the pane open
    // (tmux drops a dead pane's last output), so what bitcoin-gui left behind can be read.
    let command = format!("{}; echo \"{EXITED} $?\"; exec cat", command.join(" "));
    tmux.cmd(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "ui",
        "-x",
        "100",
        "-y",
        "30",
        &command,
    ]);
    tmux
}

/// What the shell prints when bitcoin-gui has exited, followed by the status.
const EXITED: &str = "bitcoin-gui exited with status";

impl Tmux {
    /// Waits for bitcoin-gui to exit; returns its exit status.
    fn wait_exit(&self) -> String {
        self.wait_for("bitcoin-gui to exit", |t| t.screen().contains(EXITED));
        let screen = self.screen();
        let line = screen
            .lines()
            .find(|l| l.contains(EXITED))
            .unwrap_or_default();
        line.trim().trim_start_matches(EXITED).trim().to_owned()
    }
}

/// The real processes: `bitcoin-node -ipcbind` with a `bitcoin-wallet` attached, the UI
/// in connect mode, and another `bitcoin-gui` mining to the wallet.
#[test]
fn ui_shows_the_real_wallet_balance_and_q_quits() {
    let node = BoundNode::start("shm", true);
    let address = node.cli(&["getnewaddress"]);
    node.cli(&["generatetoaddress", "101", &address]);
    let tmux = start_ui(node.options(), "real");
    tmux.wait_for("the overview", |t| t.screen().contains("Height       101"));
    tmux.wait_for("the balance", |t| {
        t.screen().contains("Balance      50.00000000 BTC")
    });
    let screen = tmux.screen();
    assert!(screen.contains("shm | unix:"), "{screen}");

    // Another client mines; the new block and the coinbase it matures show up unasked.
    node.cli(&["generatetoaddress", "1", &address]);
    tmux.wait_for("the new height", |t| {
        t.screen().contains("Height       102")
    });
    tmux.wait_for("the new balance", |t| {
        t.screen().contains("Balance      100.00000000 BTC")
    });

    // Receive: a new address from the real wallet, shown in full and put on the clipboard
    // (OSC 52, which tmux turns into a paste buffer with `set-clipboard on`).
    tmux.cmd(&["set-option", "-g", "set-clipboard", "on"]);
    tmux.cmd(&["send-keys", "-t", "ui", "Tab", "Enter"]);
    tmux.wait_for("a receive address", |t| t.screen().contains("bcrt1"));
    let screen = tmux.screen();
    let at = screen.find("bcrt1").expect("the address on screen");
    let shown: String = screen[at..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    assert!(
        shown.parse::<Address<_>>().is_ok(),
        "{shown:?} is not an address"
    );
    tmux.wait_for("the clipboard", |t| t.cmd(&["show-buffer"]) == shown);

    tmux.cmd(&["send-keys", "-t", "ui", "q"]);
    assert_eq!(tmux.wait_exit(), "0");
    assert_eq!(
        tmux.format("#{alternate_on}"),
        "0",
        "the terminal is restored"
    );
    assert!(!tmux.screen().contains("panicked"), "{}", tmux.screen());
}

#[test]
fn ui_follows_the_node_and_exits_cleanly() {
    let served = ServedNode::start();
    let tmux = start_ui(served.options("shm"), "follow");
    tmux.wait_for("the overview", |t| t.screen().contains("Height       0"));
    let screen = tmux.screen();
    assert!(
        screen.contains("Wallet       error code: -18: no wallet process is attached"),
        "{screen}"
    );
    assert!(screen.contains("shm | unix:"), "{screen}");
    assert_eq!(tmux.format("#{alternate_on}"), "1");

    // Another client mines a block; the UI shows it without a key press.
    let script = ADDRESS
        .parse::<Address<_>>()
        .unwrap()
        .assume_checked()
        .script_pubkey();
    served.node.mine_one(&script);
    tmux.wait_for("the new height", |t| t.screen().contains("Height       1"));

    tmux.cmd(&["send-keys", "-t", "ui", "?"]);
    tmux.wait_for("the help", |t| t.screen().contains("Ctrl-C"));
    tmux.cmd(&["send-keys", "-t", "ui", "Escape"]);
    tmux.wait_for("the help to close", |t| !t.screen().contains("Ctrl-C"));

    // In Send, `q` is typed into the address (regtest addresses contain it); Ctrl-C quits.
    tmux.cmd(&[
        "send-keys",
        "-t",
        "ui",
        "Tab",
        "Tab",
        "b",
        "c",
        "r",
        "t",
        "q",
    ]);
    tmux.wait_for("the typed address", |t| t.screen().contains("bcrtq_"));
    tmux.cmd(&["send-keys", "-t", "ui", "C-c"]);
    assert_eq!(tmux.wait_exit(), "0");
    assert_eq!(
        tmux.format("#{alternate_on}"),
        "0",
        "the terminal is restored"
    );
}

#[test]
fn ui_says_so_when_the_node_goes_away() {
    let served = ServedNode::start();
    let tmux = start_ui(served.options("shm"), "gone");
    tmux.wait_for("the overview", |t| t.screen().contains("Height       0"));
    served.disconnect_all();
    tmux.wait_for("the disconnect", |t| {
        t.screen()
            .contains("disconnected: the node is gone (q quits)")
    });
    tmux.cmd(&["send-keys", "-t", "ui", "q"]);
    assert_eq!(tmux.wait_exit(), "1");
    assert_eq!(
        tmux.format("#{alternate_on}"),
        "0",
        "the terminal is restored"
    );
    let screen = tmux.screen();
    assert!(
        screen.contains("error: the node disconnected while the UI was open"),
        "{screen}"
    );
    assert!(!screen.contains("panicked"), "{screen}");
}

/// The processes whose parent is `parent`, with their names (from `/proc`).
fn children(parent: i32) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // `pid (comm) state ppid ...`; the name may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if ppid.and_then(|p| p.parse().ok()) == Some(parent) {
            found.push((pid, stat[open + 1..close].to_owned()));
        }
    }
    found
}

/// A spawned node killed while the UI stays open to say so is reaped at once, not left a
/// zombie until the UI exits.
#[test]
fn a_spawned_node_that_dies_is_reaped_while_the_ui_stays_open() {
    let datadir = tempfile::tempdir().unwrap();
    let tmux = start_ui(
        vec![format!("-datadir={}", datadir.path().display())],
        "reaped",
    );
    tmux.wait_for("the overview", |t| t.screen().contains("Height       0"));
    let shell: i32 = tmux.format("#{pane_pid}").parse().expect("the pane's pid");
    let gui = children(shell)
        .into_iter()
        .find(|(_, name)| name == "bitcoin-gui")
        .expect("bitcoin-gui under the pane's shell")
        .0;
    let node = children(gui)
        .into_iter()
        .find(|(_, name)| name == "bitcoin-node")
        .expect("the node bitcoin-gui spawned")
        .0;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(node),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the node");
    tmux.wait_for("the disconnect", |t| {
        t.screen()
            .contains("disconnected: the node is gone (q quits)")
    });
    // A zombie keeps its /proc entry until its parent reaps it.
    tmux.wait_for("the node to be reaped", |_| {
        !std::path::Path::new(&format!("/proc/{node}")).exists()
    });
    tmux.cmd(&["send-keys", "-t", "ui", "q"]);
    assert_eq!(tmux.wait_exit(), "1");
}
