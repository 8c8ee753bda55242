//! `spawn_with` capturing the child's stderr: a child that fails at start hands its words
//! back in the error instead of printing them; one that succeeds has everything it writes
//! passed on to our stderr, none lost; a child writing more than a pipe holds never blocks;
//! no zombie and no descriptor is left behind.
//!
//! Whatever a scenario passes on to "our stderr" must be seen by the test, so those scenarios
//! run in a child process of the test (the test executable re-run with [`CHILD_ENV`]), whose
//! stdout and stderr the test reads.

mod util;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use ipc_shm::{ConnectError, Error, STDERR_CAPTURE_LIMIT, SpawnOptions, Transport};

/// Environment variable that turns [`stderr_child`] into the process running a scenario.
const CHILD_ENV: &str = "IPC_SHM_STDERR_CHILD";

/// What [`stderr_child`] prints before its report, to find it among libtest's own output.
const MARK: &str = "stderr-child: ";

/// Bytes the flooding child writes: several times what a pipe holds (64 KiB) and more than
/// [`STDERR_CAPTURE_LIMIT`].
const FLOOD: usize = 300_000;

fn capture() -> SpawnOptions {
    let mut options = SpawnOptions::default();
    options.capture_stderr = true;
    options
}

/// The descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_child_that_exits_during_the_handshake_hands_back_its_stderr() {
    let _dog = util::watchdog("child exits", Duration::from_secs(60));
    let config = util::config(Transport::Shm);
    let result = ipc_shm::spawn_with(util::PEER, ["echo", "not-a-count"], &config, &capture());
    let Err(Error::Connect(e @ ConnectError::ChildExited { .. })) = result else {
        panic!("expected ChildExited, got {result:?}");
    };
    assert_eq!(
        e.to_string(),
        format!(
            "{} exited during the handshake (exit status: 1): ipc-shm-peer: bad count \
             \"not-a-count\"",
            util::PEER
        )
    );
    let ConnectError::ChildExited {
        status,
        stderr,
        error,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(status.code(), Some(1));
    assert_eq!(stderr, b"ipc-shm-peer: bad count \"not-a-count\"\n");
    // The handshake's own view: the peer hung up without answering.
    assert!(
        matches!(*error, Error::Disconnected | Error::Handshake(_)),
        "{error:?}"
    );
}

/// Runs [`stderr_child`] with `scenario`; returns its report and everything it wrote to its
/// stderr.
fn run_scenario(scenario: &str) -> (String, Vec<u8>) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "stderr_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{scenario}: {stdout}");
    let report = stdout
        .lines()
        .find_map(|l| l.split_once(MARK).map(|(_, r)| r.to_owned()))
        .unwrap_or_else(|| panic!("{scenario}: no report in {stdout}"));
    (report, out.stderr)
}

#[test]
fn a_child_writing_more_than_a_pipe_holds_during_the_handshake_never_blocks_and_loses_nothing() {
    let _dog = util::watchdog("flood", Duration::from_secs(60));
    let (report, stderr) = run_scenario("flood");
    assert_eq!(report, "exited 3, kept the tail");
    // What did not fit in the capture went to the spawner's stderr, in order: the head.
    let all = "x\n".repeat(FLOOD / 2).into_bytes();
    assert_eq!(stderr.len(), FLOOD - STDERR_CAPTURE_LIMIT);
    assert!(stderr == all[..FLOOD - STDERR_CAPTURE_LIMIT]);
}

#[test]
fn a_child_that_succeeds_has_its_later_stderr_passed_on_before_it_is_reaped() {
    let _dog = util::watchdog("forward", Duration::from_secs(60));
    let (report, stderr) = run_scenario("forward");
    assert_eq!(report, "reaped exit status: 1");
    assert_eq!(
        String::from_utf8_lossy(&stderr),
        "ipc-shm-peer: unknown role \"no-such-role\"\n"
    );
}

#[test]
fn a_captured_stderr_is_the_childs_alone_and_closes_with_it() {
    let _dog = util::watchdog("descriptors", Duration::from_secs(60));
    let (report, stderr) = run_scenario("descriptors");
    assert_eq!(report, "ok");
    assert!(stderr.is_empty(), "{}", String::from_utf8_lossy(&stderr));
}

/// In a child process of the tests above: runs the scenario named in [`CHILD_ENV`] and prints
/// `stderr-child: REPORT`. Without the environment variable this test does nothing.
#[test]
fn stderr_child() {
    let Some(scenario) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let config = util::config(Transport::Shm);
    let report = match scenario.to_str().unwrap() {
        // A child that writes far more than a pipe holds, then exits without a handshake.
        "flood" => {
            let fds = open_fds();
            let script = format!("yes x | head -c {FLOOD} >&2; exit 3");
            let result = ipc_shm::spawn_with("/bin/sh", ["-c", &script], &config, &capture());
            let Err(Error::Connect(ConnectError::ChildExited { status, stderr, .. })) = result
            else {
                panic!("expected ChildExited, got {result:?}");
            };
            assert_eq!(stderr.len(), STDERR_CAPTURE_LIMIT);
            assert!(stderr == "x\n".repeat(FLOOD / 2).as_bytes()[FLOOD - STDERR_CAPTURE_LIMIT..]);
            // The pipe's read end is closed once the error is returned.
            assert_eq!(open_fds(), fds);
            format!("exited {}, kept the tail", status.code().unwrap())
        }
        // A child that writes its error after the handshake, then exits.
        "forward" => {
            let (mut child, _connection) =
                ipc_shm::spawn_with(util::PEER, ["no-such-role"], &config, &capture()).unwrap();
            let status = child.wait().unwrap();
            util::assert_reaped(child.pid());
            // We exit right after this: the child's line must already be on our stderr.
            format!("reaped {status}")
        }
        // The child's descriptor 2 is the pipe's write end, and it holds no other end of it;
        // once it is gone, so is every descriptor of ours.
        "descriptors" => {
            let fds = open_fds();
            let (mut child, connection) =
                ipc_shm::spawn_with(util::PEER, ["echo"], &config, &capture()).unwrap();
            let pid = child.pid();
            let link = |fd: &str| std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok();
            let pipe = link("2").expect("the child's stderr");
            assert!(pipe.to_string_lossy().starts_with("pipe:"), "{pipe:?}");
            let holders: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|fd| link(fd).as_ref() == Some(&pipe))
                .collect();
            assert_eq!(holders, ["2"]);
            let (mut tx, mut rx) = connection.split();
            tx.send_bytes(b"still a connection").unwrap();
            assert_eq!(rx.recv().unwrap().to_vec(), b"still a connection");
            drop((tx, rx));
            assert!(child.wait().unwrap().success());
            assert_eq!(child.wait().unwrap().signal(), None);
            drop(child);
            util::assert_reaped(pid);
            assert_eq!(open_fds(), fds);
            "ok".to_owned()
        }
        other => panic!("unknown scenario {other:?}"),
    };
    println!("\n{MARK}{report}");
}
