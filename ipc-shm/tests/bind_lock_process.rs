//! Binding one socket path from several processes at once: exactly one wins each time, and
//! the lock that decides it goes with its process, also one killed with SIGKILL. The
//! processes are this test executable re-run as [`bind_child`].

mod util;

use std::io::{BufRead, BufReader, Lines, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use util::bind::{bind, entries, is_in_use, leave_stale_socket};

/// Environment variable that turns [`bind_child`] into a process that binds this path.
const CHILD_ENV: &str = "IPC_SHM_BIND_CHILD";

/// What [`bind_child`] prints before each report, to find it among libtest's own output.
const MARK: &str = "bind-child: ";

/// Held by each test for its whole run. A child forked by one test holds a copy of every
/// descriptor of the test process until it execs: a socket another test has just closed, to
/// leave a stale file, would still answer its probe.
static SERIAL: Mutex<()> = Mutex::new(());

/// In a child process of the tests below: once a line arrives on stdin, binds the path in
/// [`CHILD_ENV`] (relative to its directory, made the working directory, so that the parent's
/// absolute path and our relative one name the same socket), prints `bind-child: bound`,
/// `bind-child: in-use` or `bind-child: error ...`, and holds the listener until stdin
/// closes. It prints `bind-child: ready` first. Without the environment variable this test
/// does nothing.
#[test]
fn bind_child() {
    let Some(path) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let (dir, file) = (path.parent().unwrap(), path.file_name().unwrap());
    std::env::set_current_dir(dir).unwrap();
    let mut out = std::io::stdout().lock();
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    writeln!(out, "\n{MARK}ready").unwrap();
    out.flush().unwrap();
    stdin.read_line(&mut line).unwrap();
    let result = bind(Path::new(file));
    let report = match &result {
        Ok(_) => "bound".to_owned(),
        Err(_) if is_in_use(&result) => "in-use".to_owned(),
        Err(e) => format!("error {e}"),
    };
    writeln!(out, "\n{MARK}{report}").unwrap();
    out.flush().unwrap();
    // Until the parent closes our stdin (or kills us).
    while stdin.read_line(&mut line).is_ok_and(|n| n > 0) {}
    drop(result);
}

/// A process running [`bind_child`] on `path`.
struct BindChild {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl BindChild {
    /// Starts it and waits until it is ready to bind.
    fn start(path: &Path) -> BindChild {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "bind_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut bind_child = BindChild {
            child,
            stdin,
            stdout,
        };
        assert_eq!(bind_child.report(), "ready");
        bind_child
    }

    /// Tells it to bind.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Its next report.
    fn report(&mut self) -> String {
        for line in &mut self.stdout {
            let line = line.unwrap();
            if let Some((_, report)) = line.split_once(MARK) {
                return report.to_owned();
            }
        }
        panic!("the bind child exited without a report");
    }

    /// Closes its stdin, so that it drops its listener and exits, and reaps it.
    fn release(mut self) -> ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }
}

#[test]
fn one_of_several_processes_binding_one_path_at_once_wins() {
    const PROCESSES: usize = 4;
    const ROUNDS: usize = 8;
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let _dog = util::watchdog("process bind race", Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sock");
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            leave_stale_socket(&path);
        }
        let mut children: Vec<BindChild> =
            (0..PROCESSES).map(|_| BindChild::start(&path)).collect();
        // All are blocked reading stdin: they bind as close together as we can write.
        for child in &mut children {
            child.go();
        }
        let reports: Vec<String> = children.iter_mut().map(BindChild::report).collect();
        assert_eq!(
            reports.iter().filter(|r| *r == "bound").count(),
            1,
            "round {round}: {reports:?}"
        );
        assert_eq!(
            reports.iter().filter(|r| *r == "in-use").count(),
            PROCESSES - 1,
            "round {round}: {reports:?}"
        );
        // The winner's file, reachable; the losers leave and take nothing with them.
        let winner = reports.iter().position(|r| r == "bound").unwrap();
        let winner = children.swap_remove(winner);
        for loser in children {
            assert!(loser.release().success());
        }
        UnixStream::connect(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(is_in_use(&bind(&path)), "round {round}");
        assert!(winner.release().success());
        assert_eq!(entries(dir.path()), Vec::<String>::new(), "round {round}");
    }
}

#[test]
fn a_bind_lock_goes_with_a_process_killed_by_sigkill() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let _dog = util::watchdog("sigkill", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sock");
    let mut child = BindChild::start(&path);
    child.go();
    assert_eq!(child.report(), "bound");
    // Held while it lives.
    assert!(is_in_use(&bind(&path)));
    child.child.kill().unwrap();
    let status = child.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    // It left its socket file, and nothing else, behind.
    assert_eq!(entries(dir.path()), ["node.sock"]);
    // Reaped means its descriptors are closed, the lock's with them: the next bind takes
    // the lock at once and replaces the stale file.
    let listener = bind(&path).unwrap();
    UnixStream::connect(&path).unwrap();
    drop(listener);
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}
