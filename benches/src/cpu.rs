//! CPU time of a process, from `/proc`: what an idle connection costs.

use std::time::Duration;

use anyhow::Context;

/// CPU time (user + system) used so far by all threads of process `pid`.
///
/// Reads the nanosecond run time of each thread from `/proc/PID/task/TID/schedstat`; on a
/// kernel without schedstats, falls back to the clock ticks of `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    match schedstat_ns(pid) {
        Ok(ns) => Ok(Duration::from_nanos(ns)),
        Err(_) => stat_ticks(pid),
    }
}

fn schedstat_ns(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may exit between the listing and the read: it no longer runs, skip it.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let ns: u64 = text
            .split_whitespace()
            .next()
            .context("empty schedstat")?
            .parse()?;
        total += ns;
    }
    Ok(total)
}

fn stat_ticks(pid: u32) -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = text.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as u64;
    Ok(Duration::from_nanos((utime + stime) * 1_000_000_000 / hz))
}

/// The CPU a process last ran on (field 39 of `/proc/PID/stat`).
pub fn last_cpu(pid: u32) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = text.rsplit_once(')').context("malformed stat")?.1;
    Ok(rest
        .split_whitespace()
        .nth(36)
        .context("no processor field")?
        .parse()?)
}

/// Context switches of all threads of process `pid` so far: voluntary (a thread went to
/// sleep: for a waiter on a ring, a park) and involuntary (it was preempted, or yielded and
/// another task took the CPU). Their rates show whether waits end in the spin window.
pub fn context_switches(pid: u32) -> anyhow::Result<Switches> {
    let mut total = Switches::default();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(text) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = text.lines().find_map(|l| l.strip_prefix(name));
            Ok(line.with_context(|| format!("no {name}"))?.trim().parse()?)
        };
        total.voluntary += field("voluntary_ctxt_switches:")?;
        total.involuntary += field("nonvoluntary_ctxt_switches:")?;
    }
    Ok(total)
}

/// [`context_switches`] of several processes, added up.
pub fn total_context_switches(pids: &[u32]) -> anyhow::Result<Switches> {
    let mut total = Switches::default();
    for &pid in pids {
        total += context_switches(pid)?;
    }
    Ok(total)
}

/// Context-switch counts, see [`context_switches`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switches {
    /// The thread gave up the CPU to wait.
    pub voluntary: u64,
    /// The CPU was taken from the thread (preemption, or a yield that let another task run).
    pub involuntary: u64,
}

impl Switches {
    /// The switches made since the count `earlier` was taken.
    pub fn since(self, earlier: Switches) -> Switches {
        Switches {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }

    /// Both counts divided by `n`: switches per round trip, per block, ...
    pub fn per(self, n: f64) -> (f64, f64) {
        (self.voluntary as f64 / n, self.involuntary as f64 / n)
    }
}

impl std::ops::AddAssign for Switches {
    fn add_assign(&mut self, other: Switches) {
        self.voluntary += other.voluntary;
        self.involuntary += other.involuntary;
    }
}

/// Write system calls made so far by process `pid` (`syscw` of `/proc/PID/io`). Ringing a
/// doorbell is one; on the shared-memory hot path there should be none.
pub fn write_syscalls(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .context("no syscw")?;
    Ok(line.trim().parse()?)
}
