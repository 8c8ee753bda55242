//! Binding one socket path from many threads at once: exactly one listener wins each time,
//! the others are told the path is in use, and nothing is left on disk once the winner is
//! dropped. (Across processes: `bind_lock_process.rs`.)
//!
//! No test of this binary starts a process: a child forked by one test thread holds a copy of
//! every descriptor of ours until it execs, a bind lock just released among them, which would
//! make the next round's binds see the lock still held.

mod util;

use std::os::unix::net::UnixStream;
use std::sync::Barrier;
use std::time::Duration;

use ipc_shm::{Error, Listener};
use util::bind::{bind, entries, is_in_use, leave_stale_socket};

#[test]
fn one_of_many_threads_binding_one_path_at_once_wins_and_the_others_are_told_it_is_in_use() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 200;
    let _dog = util::watchdog("thread bind race", Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sock");
    for round in 0..ROUNDS {
        // Every other round starts from a stale file, which every contender would replace:
        // the race the lock closes.
        if round % 2 == 0 {
            leave_stale_socket(&path);
        }
        let barrier = Barrier::new(THREADS);
        let results: Vec<Result<Listener, Error>> = std::thread::scope(|s| {
            let binders: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        bind(&path)
                    })
                })
                .collect();
            binders.into_iter().map(|b| b.join().unwrap()).collect()
        });
        let (won, lost): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        assert_eq!(won.len(), 1, "round {round}: {lost:?}");
        for result in &lost {
            assert!(is_in_use(result), "round {round}: {result:?}");
        }
        // The file is the winner's: nobody replaced it after it was bound.
        UnixStream::connect(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        drop(won);
        assert_eq!(entries(dir.path()), Vec::<String>::new(), "round {round}");
    }
}

#[test]
fn the_lock_is_per_directory_and_file_name_whatever_the_path_to_them() {
    let _dog = util::watchdog("lock identity", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let _a = bind(&real.join("a.sock")).unwrap();
    // Another name in the same directory, and the same name in another one, are free.
    let _b = bind(&real.join("b.sock")).unwrap();
    let _other = bind(&dir.path().join("a.sock")).unwrap();
    // The same directory reached through a symlink, or with `.` in the way, is the same path.
    assert!(is_in_use(&bind(&link.join("a.sock"))));
    assert!(is_in_use(&bind(&real.join(".").join("a.sock"))));
    // Names too long for the lock's address are cut and hashed: still one lock per name.
    let max = ipc_shm::connect::MAX_SOCKET_PATH.saturating_sub(real.as_os_str().len() + 1);
    let long = |last: char| real.join(format!("{}{last}", "n".repeat(max.max(2) - 1)));
    let _long_x = bind(&long('x')).unwrap();
    let _long_y = bind(&long('y')).unwrap();
    assert!(is_in_use(&bind(&long('x'))));
}
