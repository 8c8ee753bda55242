//! `wake_from_idle`: the first round trip after the connection has been idle for 50 ms (the
//! peer has spent its spin budget and parked), `shm` vs `socket`; then the CPU time an idle,
//! connected pair uses over 2 s.
//!
//! Each timed wake-up costs 50 ms of idling, which criterion's planning cannot know about,
//! so a sample performs at most [`WAKES_PER_SAMPLE`] wake-ups and scales their total to the
//! iteration count it was asked for (the mean per iteration is what criterion estimates).

use std::time::{Duration, Instant};

use benches::conn::{Client, Mode, Setup};
use benches::cpu::cpu_time;
use benches::stats::{fmt_ns, print_and_record, record, sample, smoke};
use benches::{payload, peer};
use criterion::{BenchmarkId, Criterion};
use ipc_shm::Transport;

const GROUP: &str = "wake_from_idle";
const IDLE: Duration = Duration::from_millis(50);
const WAKES_PER_SAMPLE: u64 = 5;
const PAYLOAD: usize = 64;

fn wake_from_idle(c: &mut Criterion) -> anyhow::Result<()> {
    let mut group = c.benchmark_group(GROUP);
    group.sample_size(10);
    let data = payload(PAYLOAD);
    for (id, transport) in [("shm", Transport::Shm), ("socket", Transport::Socket)] {
        let mut client = Client::spawn(Setup::new(transport, Mode::Echo))?;
        for _ in 0..1000 {
            client.round_trip(&data)?;
        }
        group.bench_with_input(BenchmarkId::new(id, PAYLOAD), &data, |b, data| {
            b.iter_custom(|iters| {
                let n = iters.clamp(1, WAKES_PER_SAMPLE);
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    total += wake(&mut client, data).expect("wake-up round trip");
                }
                total.mul_f64(iters as f64 / n as f64)
            })
        });
        let mut left = if smoke() { 2 } else { 40 };
        let p = sample(|| {
            if left == 0 {
                return Ok(None);
            }
            left -= 1;
            wake(&mut client, &data).map(Some)
        })?;
        print_and_record(GROUP, id, PAYLOAD, &p)?;
        idle_cpu(&mut client, id, &data)?;
    }
    group.finish();
    Ok(())
}

/// Idles for [`IDLE`], then times one round trip.
fn wake(client: &mut Client, data: &[u8]) -> anyhow::Result<Duration> {
    std::thread::sleep(IDLE);
    let start = Instant::now();
    client.round_trip(data)?;
    Ok(start.elapsed())
}

/// The CPU time both processes use while the connection sits idle for 2 s, as a percentage
/// of one core.
fn idle_cpu(client: &mut Client, id: &str, data: &[u8]) -> anyhow::Result<()> {
    let window = if smoke() {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(2)
    };
    client.round_trip(data)?;
    // Let both sides spend their spin budgets and park before the window opens.
    std::thread::sleep(IDLE);
    let (me, them) = (std::process::id(), client.peer_pid());
    let (me0, them0, start) = (cpu_time(me)?, cpu_time(them)?, Instant::now());
    std::thread::sleep(window);
    let (me1, them1, took) = (cpu_time(me)?, cpu_time(them)?, start.elapsed());
    let pct = |d: Duration| d.as_secs_f64() / took.as_secs_f64() * 100.0;
    let (mine, theirs) = (pct(me1 - me0), pct(them1 - them0));
    println!(
        "{GROUP}/idle_cpu/{id}: client {mine:.3}% + peer {theirs:.3}% of a core over {} idle",
        fmt_ns(took.as_nanos() as f64)
    );
    record(
        GROUP,
        &format!("idle_cpu_{id}"),
        0,
        &[
            ("client_pct", mine),
            ("peer_pct", theirs),
            ("window_s", took.as_secs_f64()),
        ],
    )
}

fn main() {
    peer::serve_if_peer(benches::serve);
    let mut c = Criterion::default().configure_from_args();
    if let Err(e) = wake_from_idle(&mut c) {
        eprintln!("{GROUP}: {e:#}");
        std::process::exit(1);
    }
    c.final_summary();
}
