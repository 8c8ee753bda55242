//! Tests of the call layer over real shared-memory rings inside this process, with a small
//! test interface: `Calc` (served by one side) and `Listener` callbacks (served by the
//! other).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::link::Link;
use super::session::Shared;
use super::wire::{HEADER_LEN, Header};
use super::*;
use crate::wait::WaitPolicy;

// --- test interface --------------------------------------------------------------------

const ECHO: MethodId = 0;
const ADD: MethodId = 1;
const NOTIFY: MethodId = 2;
const SUBSCRIBE: MethodId = 3;
const BLOCK: MethodId = 4;
const FAIL: MethodId = 5;
const PANIC: MethodId = 6;
const LEN: MethodId = 7;
/// `misreply(announced, written, mode)`: replies through `reply_with(announced)` with an
/// encoder that writes `written` bytes, then returns `Ok` (mode 0), fails (1), panics (2),
/// or fails with `Disconnected` (3); mode 4 fails, and the method ignores the failure.
const MISREPLY: MethodId = 8;

/// `Listener::on_event(depth) -> u64`.
const ON_EVENT: MethodId = 0;
/// `Subscription::fire() -> u64`.
const FIRE: MethodId = 0;

/// Counts live test objects, and holds `BLOCK` callers until opened.
#[derive(Debug, Default)]
struct World {
    live: AtomicUsize,
    /// `ECHO` requests dispatched.
    echoes: AtomicUsize,
    gate: Mutex<(usize, bool)>,
    gate_cv: Condvar,
    /// Dropping a `Subscription` panics (after counting it dropped).
    panicky_drops: std::sync::atomic::AtomicBool,
}

impl World {
    fn open_gate(&self) {
        self.gate.lock().unwrap().1 = true;
        self.gate_cv.notify_all();
    }
}

#[derive(Debug)]
struct Calc {
    world: Arc<World>,
}

impl Dispatch for Calc {
    fn interface_name(&self) -> &'static str {
        "Calc"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        match call.method() {
            ECHO => {
                let v: Vec<u8> = call.args()?;
                self.world.echoes.fetch_add(1, Ordering::SeqCst);
                call.reply(&v)
            }
            ADD => {
                let (a, b): (u64, u64) = call.args()?;
                call.reply(&a.wrapping_add(b))
            }
            NOTIFY => {
                // Calls the caller back while the caller is still waiting for this reply.
                let (listener, depth): (RemoteObject, u32) = call.args()?;
                let r: u64 = listener.call(ON_EVENT, &depth)?;
                call.reply(&(r + 1))
            }
            SUBSCRIBE => {
                let listener: RemoteObject = call.args()?;
                self.world.live.fetch_add(1, Ordering::SeqCst);
                let sub: Arc<dyn Dispatch> = Arc::new(Subscription {
                    listener,
                    world: self.world.clone(),
                });
                call.reply(&sub)
            }
            BLOCK => {
                call.args::<()>()?;
                let mut gate = self.world.gate.lock().unwrap();
                gate.0 += 1;
                while !gate.1 {
                    gate = self.world.gate_cv.wait(gate).unwrap();
                }
                Ok(())
            }
            FAIL => {
                call.args::<()>()?;
                Err(CallError::failed("no luck"))
            }
            PANIC => panic!("test method panics"),
            LEN => {
                let v: Vec<u8> = call.args()?;
                call.reply(&(v.len() as u64))
            }
            MISREPLY => {
                let (announced, written, mode): (u64, u64, u8) = call.args()?;
                let replied = call.reply_with(announced as usize, |enc| {
                    enc.put_raw(&vec![7; written as usize])?;
                    match mode {
                        0 => Ok(()),
                        2 => panic!("the reply's encoder panics (expected by this test)"),
                        3 => Err(CallError::Disconnected),
                        _ => Err(CallError::failed("encoder gave up")),
                    }
                });
                if mode == 4 { Ok(()) } else { replied }
            }
            method => Err(CallError::UnknownMethod {
                interface: "Calc",
                method,
            }),
        }
    }
}

/// Returned by `SUBSCRIBE`; holds the caller's listener until released.
#[derive(Debug)]
struct Subscription {
    listener: RemoteObject,
    world: Arc<World>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.world.live.fetch_sub(1, Ordering::SeqCst);
        if self.world.panicky_drops.load(Ordering::SeqCst) {
            panic!("a subscription's drop panics (expected by this test)");
        }
    }
}

impl Dispatch for Subscription {
    fn interface_name(&self) -> &'static str {
        "Subscription"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        match call.method() {
            FIRE => {
                call.args::<()>()?;
                let r: u64 = self.listener.call(ON_EVENT, &0u32)?;
                call.reply(&r)
            }
            method => Err(CallError::UnknownMethod {
                interface: "Subscription",
                method,
            }),
        }
    }
}

/// The caller's callback: at depth 0 it calls `Calc::add` on the peer; deeper, it calls
/// `Calc::notify` again, which calls it back once more.
#[derive(Debug)]
struct Listener {
    calc: RemoteObject,
}

impl Dispatch for Listener {
    fn interface_name(&self) -> &'static str {
        "Listener"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        match call.method() {
            ON_EVENT => {
                let depth: u32 = call.args()?;
                let r: u64 = if depth == 0 {
                    self.calc.call(ADD, &(40u64, 2u64))?
                } else {
                    let again: Arc<dyn Dispatch> = Arc::new(Listener {
                        calc: self.calc.clone(),
                    });
                    self.calc.call(NOTIFY, &(again, depth - 1))?
                };
                call.reply(&r)
            }
            method => Err(CallError::UnknownMethod {
                interface: "Listener",
                method,
            }),
        }
    }
}

// --- helpers ---------------------------------------------------------------------------

/// Aborts the test process if not dropped within `secs`: a hang fails loudly.
struct Watchdog(Option<mpsc::Sender<()>>);

fn watchdog(secs: u64) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            // Straight to stderr: libtest captures eprintln! in test threads, and the abort
            // below would throw the capture away.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "watchdog: test did not finish within {secs} s"
            );
            std::process::abort();
        }
    });
    Watchdog(Some(tx))
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Waits (yielding) until `cond` holds, for at most 20 s. For effects that happen on
/// another thread after a round trip (an object dropped on a worker).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

fn config(name: &str) -> SessionConfig {
    SessionConfig {
        name: name.into(),
        ..SessionConfig::default()
    }
}

/// A client session (no bootstrap) and a server session exporting a `Calc`.
fn calc_pair(ring: usize) -> (Session, Session, Arc<World>) {
    calc_pair_waiting(ring, WaitPolicy::default())
}

/// As `calc_pair`, with every waiter (rings, followers) following `wait`.
fn calc_pair_waiting(ring: usize, wait: WaitPolicy) -> (Session, Session, Arc<World>) {
    let world = Arc::new(World::default());
    let calc: Arc<dyn Dispatch> = Arc::new(Calc {
        world: world.clone(),
    });
    let cfg = SessionConfig {
        wait,
        ..config("test")
    };
    let (client, server) = Session::pair(ring, wait, None, Some(calc), &cfg).unwrap();
    (client, server, world)
}

/// As `calc_pair`, over the socket transport.
fn calc_pair_socket(ring: usize) -> (Session, Session, Arc<World>) {
    let world = Arc::new(World::default());
    let calc: Arc<dyn Dispatch> = Arc::new(Calc {
        world: world.clone(),
    });
    let (client, server) = Session::pair_socket(ring, None, Some(calc), &config("socket")).unwrap();
    (client, server, world)
}

/// A pair over each transport.
fn calc_pairs(ring: usize) -> [(Session, Session, Arc<World>); 2] {
    [calc_pair(ring), calc_pair_socket(ring)]
}

// --- calls -----------------------------------------------------------------------------

#[test]
fn echo_and_add() {
    let _w = watchdog(60);
    for (client, _server, _) in calc_pairs(1 << 16) {
        let calc = client.bootstrap();
        for len in [0usize, 1, 64, 1000, 30_000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let back: Vec<u8> = calc.call(ECHO, &data).unwrap();
            assert_eq!(back, data);
        }
        let sum: u64 = calc.call(ADD, &(2u64, 3u64)).unwrap();
        assert_eq!(sum, 5);
    }
}

#[test]
fn remote_errors_are_typed() {
    let _w = watchdog(60);
    let (client, server, _) = calc_pair(1 << 16);
    let calc = client.bootstrap();
    let err = calc.call::<_, ()>(FAIL, &()).unwrap_err();
    assert!(
        matches!(&err, CallError::Remote { kind: RemoteErrorKind::Failed, message } if message == "no luck"),
        "{err}"
    );
    let err = calc.call::<_, ()>(99, &()).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Remote {
                kind: RemoteErrorKind::UnknownMethod,
                ..
            }
        ),
        "{err}"
    );
    // Missing, extra and mistyped arguments.
    let err = calc.call::<_, u64>(ADD, &1u64).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Remote {
                kind: RemoteErrorKind::BadArguments,
                ..
            }
        ),
        "{err}"
    );
    let err = calc.call::<_, u64>(ADD, &(1u64, 2u64, 3u8)).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Remote {
                kind: RemoteErrorKind::BadArguments,
                ..
            }
        ),
        "{err}"
    );
    let err = calc.call::<_, Vec<u8>>(ECHO, &u32::MAX).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Remote {
                kind: RemoteErrorKind::BadArguments,
                ..
            }
        ),
        "{err}"
    );
    // A result of the wrong type is caught on our side.
    let err = calc.call::<_, u32>(ADD, &(1u64, 2u64)).unwrap_err();
    assert!(matches!(err, CallError::Decode { .. }), "{err}");
    // A panicking method is a failure, and the session goes on.
    let err = calc.call::<_, ()>(PANIC, &()).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Remote {
                kind: RemoteErrorKind::Failed,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(calc.call::<_, u64>(ADD, &(1u64, 1u64)).unwrap(), 2);
    // An object the peer never exported.
    let ghost = client.shared().import(12345).unwrap();
    let err = ghost.call::<_, ()>(ECHO, &()).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Remote {
                kind: RemoteErrorKind::UnknownObject,
                ..
            }
        ),
        "{err}"
    );
    drop(ghost);
    // The ghost's release of an unknown object was a protocol violation: the server hung up.
    server.wait_closed();
    assert!(matches!(
        calc.call::<_, u64>(ADD, &(1u64, 1u64)),
        Err(CallError::Disconnected)
    ));
}

#[test]
fn calls_from_inside_a_decoder_are_refused() {
    let _w = watchdog(60);
    let (client, _server, _) = calc_pair(1 << 16);
    let calc = client.bootstrap();
    let inner = calc.clone();
    let err = calc
        .call_with(
            ADD,
            16,
            |e| e.put(&(1u64, 2u64)),
            |d| {
                let _: u64 = d.get()?;
                inner.call::<_, u64>(ADD, &(1u64, 1u64))
            },
        )
        .unwrap_err();
    assert!(matches!(err, CallError::Reentrant), "{err}");
    assert_eq!(calc.call::<_, u64>(ADD, &(1u64, 1u64)).unwrap(), 2);
}

/// A decoder that panics while its thread reads the ring leaves the session working.
#[test]
fn a_panicking_decoder_does_not_stall_the_session() {
    let _w = watchdog(60);
    let (client, _server, _) = calc_pair(1 << 16);
    let calc = client.bootstrap();
    let panicking = calc.clone();
    let outcome = std::thread::spawn(move || {
        panicking.call_with(
            ADD,
            16,
            |e| e.put(&(1u64, 2u64)),
            |_| -> Result<u64, CallError> { panic!("decoder") },
        )
    })
    .join();
    assert!(outcome.is_err(), "the panic reached its caller");
    let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
    assert_eq!(calc.call::<_, u64>(NOTIFY, &(listener, 2u32)).unwrap(), 45);
    assert_eq!(calc.call::<_, u64>(ADD, &(1u64, 1u64)).unwrap(), 2);
    // A reply in several parts, decoded as they arrive: the decoder panics after the
    // first one, and the rest is read past all the same.
    let data = vec![5u8; 500_000];
    let panicking = calc.clone();
    let sent = data.clone();
    let outcome = std::thread::spawn(move || {
        panicking.call_with(
            ECHO,
            sent.len() + 4,
            |e| e.put(&sent),
            |dec| -> Result<u64, CallError> {
                dec.get_raw(&mut [0; 100])?;
                panic!("decoder")
            },
        )
    })
    .join();
    assert!(outcome.is_err(), "the panic reached its caller");
    assert!(calc.call::<_, Vec<u8>>(ECHO, &data).unwrap() == data);
    assert_eq!(calc.call::<_, u64>(ADD, &(1u64, 1u64)).unwrap(), 2);
    assert!(!client.is_closed());
}

#[test]
fn callbacks_call_back_while_the_caller_waits() {
    let _w = watchdog(60);
    for (client, _server, _) in calc_pairs(1 << 16) {
        let calc = client.bootstrap();
        for depth in [0u32, 1, 5, 20] {
            let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
            // notify → on_event → (notify → on_event →)* add: each level adds 1 to 42.
            let r: u64 = calc.call(NOTIFY, &(listener, depth)).unwrap();
            assert_eq!(r, 42 + 1 + u64::from(depth));
        }
    }
}

#[test]
fn eight_threads_share_one_session() {
    let _w = watchdog(300);
    for (client, _server, _) in calc_pairs(1 << 16) {
        let calc = client.bootstrap();
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let calc = calc.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        let r: u64 = calc.call(ADD, &(i, t << 32)).unwrap();
                        assert_eq!(r, i + (t << 32));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}

/// Both sides serve and call at once: each side's worker leader lends its leadership while
/// it runs a request (without a lock when a standby watches) as that side's own callers
/// register as followers. A follower the lender misses would wait with nobody reading, and
/// the watchdog would fire.
#[test]
fn both_sides_call_each_other_from_many_threads() {
    let _w = watchdog(300);
    for wait in [WaitPolicy::default(), WaitPolicy::PARK] {
        let calc = |world: &Arc<World>| -> Arc<dyn Dispatch> {
            Arc::new(Calc {
                world: world.clone(),
            })
        };
        let world = Arc::new(World::default());
        let cfg = SessionConfig {
            wait,
            ..config("both")
        };
        let (a, b) =
            Session::pair(1 << 16, wait, Some(calc(&world)), Some(calc(&world)), &cfg).unwrap();
        let threads: Vec<_> = [a.bootstrap(), b.bootstrap()]
            .into_iter()
            .flat_map(|calc| (0..4u64).map(move |t| (calc.clone(), t)))
            .map(|(calc, t)| {
                std::thread::spawn(move || {
                    for i in 0..3_000u64 {
                        let r: u64 = calc.call(ADD, &(i, t << 32)).unwrap();
                        assert_eq!(r, i + (t << 32));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}

/// Every hand-over through the kernel: no waiter spins, so each wake-up must be delivered.
#[test]
fn eight_threads_share_one_session_without_spinning() {
    let _w = watchdog(300);
    let (client, _server, _) = calc_pair_waiting(1 << 12, WaitPolicy::PARK);
    let calc = client.bootstrap();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let calc = calc.clone();
            std::thread::spawn(move || {
                for i in 0..1_000u64 {
                    let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
                    let r: u64 = if i % 10 == 0 {
                        calc.call(NOTIFY, &(listener, 1u32)).unwrap()
                    } else {
                        calc.call(ADD, &(i, t)).unwrap()
                    };
                    assert_eq!(r, if i % 10 == 0 { 44 } else { i + t });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn nested_callbacks_from_many_threads() {
    let _w = watchdog(300);
    let (client, _server, _) = calc_pair(1 << 16);
    let calc = client.bootstrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let calc = calc.clone();
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
                    let r: u64 = calc.call(NOTIFY, &(listener, i % 4)).unwrap();
                    assert_eq!(r, 43 + u64::from(i % 4));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Each server-side handle is dropped after its reply went out; the releases follow.
    eventually("every listener is released", || {
        client.exported_objects() == 0
    });
}

/// The server thread that reads a request runs it while still holding the ring; when the
/// method blocks (here on a gate, not on a call), a standby worker takes over reading.
#[test]
fn a_blocking_method_does_not_stop_other_calls() {
    let _w = watchdog(60);
    let (client, _server, world) = calc_pair(1 << 16);
    let calc = client.bootstrap();
    let blocked = {
        let calc = calc.clone();
        std::thread::spawn(move || calc.call::<_, ()>(BLOCK, &()))
    };
    eventually("the call is blocked in the server", || {
        world.gate.lock().unwrap().0 == 1
    });
    for i in 0..100u64 {
        assert_eq!(calc.call::<_, u64>(ADD, &(i, 1u64)).unwrap(), i + 1);
    }
    world.open_gate();
    blocked.join().unwrap().unwrap();
}

/// An export whose `Drop` (run on a worker) blocks until the gate opens.
#[derive(Debug)]
struct HeldOnDrop {
    world: Arc<World>,
}

impl Drop for HeldOnDrop {
    fn drop(&mut self) {
        let mut gate = self.world.gate.lock().unwrap();
        while !gate.1 {
            gate = self.world.gate_cv.wait(gate).unwrap();
        }
    }
}

impl Dispatch for HeldOnDrop {
    fn interface_name(&self) -> &'static str {
        "HeldOnDrop"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        Err(CallError::UnknownMethod {
            interface: "HeldOnDrop",
            method: call.method(),
        })
    }
}

/// Regression: a standby whose tick ran out while another thread held the control lock
/// and notified it (the only worker asleep, so the notification woke nobody) left the
/// count of pending wake-ups one too high for good. When the standby then went off to run
/// a job that blocks, no new standby was recruited (one seemed on its way), and with the
/// leader lent to a blocked method nobody read the ring again: the peer's calls hung.
#[test]
fn a_standby_that_times_out_while_notified_is_replaced() {
    let _w = watchdog(120);
    let (client, server, world) = calc_pair(1 << 16);
    let calc = client.bootstrap();
    let mut blocked = Vec::new();
    let mut object: Arc<dyn Dispatch> = Arc::new(HeldOnDrop {
        world: world.clone(),
    });
    let mut stalled = false;
    for attempt in 1..=40 {
        // A blocking method keeps leadership lent; a standby watches it.
        let calc_b = calc.clone();
        blocked.push(std::thread::spawn(move || calc_b.call::<_, ()>(BLOCK, &())));
        eventually("the call is blocked in the server", || {
            world.gate.lock().unwrap().0 == attempt
        });
        match server.shared().stall_standby_then_drop(object) {
            Ok(()) => {
                stalled = true;
                break;
            }
            Err(back) => object = back,
        }
    }
    assert!(
        stalled,
        "the standby took over reading every time before it could be stalled"
    );
    // The standby went off to drop the object (and blocks there); someone must still read.
    for i in 0..10u64 {
        assert_eq!(calc.call::<_, u64>(ADD, &(i, 1u64)).unwrap(), i + 1);
    }
    world.open_gate();
    for b in blocked {
        b.join().unwrap().unwrap();
    }
}

#[test]
fn disconnect_fails_every_pending_call() {
    let _w = watchdog(120);
    for (client, server, world) in calc_pairs(1 << 16) {
        let calc = client.bootstrap();
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let calc = calc.clone();
                std::thread::spawn(move || calc.call::<_, ()>(BLOCK, &()))
            })
            .collect();
        eventually("8 calls are blocked in the server", || {
            world.gate.lock().unwrap().0 == 8
        });
        drop(server);
        for c in callers {
            assert!(matches!(c.join().unwrap(), Err(CallError::Disconnected)));
        }
        assert!(matches!(
            calc.call::<_, u64>(ADD, &(1u64, 1u64)),
            Err(CallError::Disconnected)
        ));
        client.wait_closed();
        assert!(client.is_closed() && !calc.is_connected());
        world.open_gate();
    }
}

#[test]
fn objects_are_released_when_the_last_handle_goes() {
    let _w = watchdog(60);
    let (client, server, world) = calc_pair(1 << 16);
    let calc = client.bootstrap();
    let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
    let sub: RemoteObject = calc.call(SUBSCRIBE, &listener).unwrap();
    drop(listener);
    assert_eq!(client.exported_objects(), 1, "the listener");
    assert_eq!(client.imported_objects(), 1, "the subscription");
    assert_eq!(server.exported_objects(), 2, "calc and the subscription");
    assert_eq!(server.imported_objects(), 1, "the listener");
    assert_eq!(world.live.load(Ordering::SeqCst), 1);

    // The subscription calls the listener, which calls calc: three objects, two sides.
    assert_eq!(sub.call::<_, u64>(FIRE, &()).unwrap(), 42);
    let again = sub.clone();
    drop(sub);
    assert_eq!(
        again.call::<_, u64>(FIRE, &()).unwrap(),
        42,
        "a clone keeps it alive"
    );
    drop(again);

    // The release travels before this call, and is handled when the server reads it.
    assert_eq!(calc.call::<_, u64>(ADD, &(1u64, 1u64)).unwrap(), 2);
    assert_eq!(server.exported_objects(), 1);
    assert_eq!(client.imported_objects(), 0);
    eventually("the subscription is dropped", || {
        world.live.load(Ordering::SeqCst) == 0
    });
    // Dropping it dropped its listener handle, which released the listener.
    eventually("the listener is released", || {
        client.exported_objects() == 0
    });
    eventually("the server holds no handle", || {
        server.imported_objects() == 0
    });
}

/// A worker leader keeps the object it served last for the next request, skipping the
/// export table. When the peer releases that object and then goes quiet, the worker must
/// not keep it alive: it is dropped without another request coming.
#[test]
fn a_released_object_served_last_is_dropped_while_the_session_idles() {
    let _w = watchdog(60);
    let (client, server, world) = calc_pair(1 << 16);
    let calc = client.bootstrap();
    let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
    let sub: RemoteObject = calc.call(SUBSCRIBE, &listener).unwrap();
    drop(listener);
    assert_eq!(world.live.load(Ordering::SeqCst), 1);
    // A call that does not call back (which would end the worker's turn as the leader):
    // the subscription is the object the leading worker served last.
    let unknown = sub.call::<_, u64>(99, &());
    assert!(
        matches!(
            &unknown,
            Err(CallError::Remote {
                kind: RemoteErrorKind::UnknownMethod,
                ..
            })
        ),
        "{unknown:?}"
    );
    drop(sub);
    // The release is the last record the server reads.
    eventually("the subscription is dropped", || {
        world.live.load(Ordering::SeqCst) == 0
    });
    assert_eq!(server.exported_objects(), 1);
}

#[test]
fn values_larger_than_a_record_are_split() {
    let _w = watchdog(120);
    for (ring, socket) in [(1 << 16, false), (1 << 20, false), (1 << 16, true)] {
        let (client, _server, _) = if socket {
            calc_pair_socket(ring)
        } else {
            calc_pair(ring)
        };
        let calc = client.bootstrap();
        let big: Vec<u8> = (0..4u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let back: Vec<u8> = calc.call(ECHO, &big).unwrap();
        assert!(back == big, "4 MiB echo over a {ring}-byte ring");
        let n: u64 = calc.call(LEN, &big).unwrap();
        assert_eq!(n, big.len() as u64);
        // Split replies read by another thread than the caller's (a follower's reply).
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (calc, big) = (calc.clone(), big[..1 << 20].to_vec());
                std::thread::spawn(move || {
                    for _ in 0..3 {
                        let back: Vec<u8> = calc.call(ECHO, &big).unwrap();
                        assert!(back == big);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}

/// A message over 256 KiB is streamed in parts even when one record could hold it. The
/// caller reading its own reply decodes it while the parts arrive, a long value straight
/// from its records into its own buffer, with no gathered buffer for `take_raw` to hand
/// over; and so does the server its arguments (the echo checks them). Reads that stop
/// inside a part go on from the rest of it.
#[test]
fn long_values_are_decoded_while_their_parts_arrive() {
    let _w = watchdog(60);
    for (client, _server, world) in [calc_pair(4 << 20), calc_pair_socket(4 << 20)] {
        let calc = client.bootstrap();
        for len in [1usize << 20, 300 << 10, 1 << 10, 100 << 10] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let (taken, bytes) = calc
                .call_with(
                    ECHO,
                    data.len() + 4,
                    |enc| enc.put(&data),
                    |dec| {
                        let n = dec.get_len()?;
                        let taken = dec.take_raw(n).is_some();
                        let mut bytes = Vec::new();
                        dec.append_raw(n, &mut bytes)?;
                        // Nothing is left to read, and reading nothing still works.
                        dec.get_raw(&mut [])?;
                        assert_eq!(std::io::Read::read(dec, &mut [0; 4]).ok(), Some(0));
                        Ok((taken, bytes))
                    },
                )
                .unwrap();
            assert!(!taken, "{len} bytes");
            assert!(bytes == data, "{len} bytes");
            // Byte by byte across the first part's end, then the rest in one go.
            let bytes = calc
                .call_with(
                    ECHO,
                    data.len() + 4,
                    |enc| enc.put(&data),
                    |dec| {
                        let n = dec.get_len()?;
                        let mut bytes = vec![0; n.min(70_000)];
                        for byte in bytes.iter_mut() {
                            *byte = dec.get::<u8>()?;
                        }
                        dec.append_raw(n - bytes.len(), &mut bytes)?;
                        Ok(bytes)
                    },
                )
                .unwrap();
            assert!(bytes == data, "{len} bytes");
        }
        assert_eq!(world.echoes.load(Ordering::SeqCst), 8);
        assert_eq!(calc.call::<_, u64>(ADD, &(2u64, 3u64)).unwrap(), 5);
    }
}

/// A value that ends a message gathered into a buffer (a reply another thread read for its
/// caller, a request queued for a worker) can take that buffer over: `take_raw` gives the
/// offset where the value starts in it. A shorter value, or bytes short of the end, cannot.
#[test]
fn long_values_ending_a_gathered_message_keep_its_buffer() {
    let (client, _server, _) = calc_pair(1 << 16);
    let shared = client.shared();
    for (len, kept) in [(1usize << 20, true), (64 << 10, true), (1 << 10, false)] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let mut body = vec![9; 3];
        body.extend_from_slice(&data);
        let mut dec = Decoder::from_vec(body.clone(), shared);
        dec.get_raw(&mut [0; 3]).unwrap();
        match dec.take_raw(len) {
            Some((buf, start)) => {
                assert!(kept, "{len} bytes");
                assert_eq!(start, 3);
                assert!(buf[start..] == data[..], "{len} bytes");
                // Nothing is left to read, and reading nothing still works.
                dec.get_raw(&mut []).unwrap();
                assert_eq!(std::io::Read::read(&mut dec, &mut [0; 4]).ok(), Some(0));
            }
            None => assert!(!kept, "{len} bytes"),
        }
        // Not the whole rest: nothing taken, nothing consumed.
        let mut dec = Decoder::from_vec(body, shared);
        dec.get_raw(&mut [0; 3]).unwrap();
        assert!(dec.take_raw(len - 1).is_none());
        assert_eq!(dec.get::<u8>().unwrap(), data[0]);
    }
}

/// A message hinted small is staged in a buffer: one that fits arrives in a single
/// record, one that outgrows the staging buffer goes on in continuation records.
#[test]
fn messages_that_outgrow_a_small_hint_arrive_whole() {
    let _w = watchdog(60);
    for (client, _server, _) in [
        calc_pair(1 << 16),
        calc_pair_socket(1 << 16),
        calc_pair(4096),
    ] {
        let calc = client.bootstrap();
        for len in [0usize, 1, 251, 252, 253, 300, 4096, 100_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            for hint in [0, 8, 256] {
                let back: Vec<u8> = calc
                    .call_with(ECHO, hint, |enc| enc.put(&data), |dec| dec.get())
                    .unwrap();
                assert!(back == data, "{len} bytes hinted at {hint}");
            }
        }
    }
}

/// With the smallest ring every message of a few KiB is split, and several threads split
/// theirs at once, in both directions, with callbacks in between.
#[test]
fn the_smallest_ring_splits_everything() {
    let _w = watchdog(120);
    for (client, _server, _) in [calc_pair(4096), calc_pair_socket(4096)] {
        let calc = client.bootstrap();
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let calc = calc.clone();
                std::thread::spawn(move || {
                    for i in 0..200u32 {
                        let len = ((i * 7919 + t * 104_729) % 9000) as usize;
                        let data: Vec<u8> = (0..len).map(|j| (j as u32 ^ i ^ t) as u8).collect();
                        let back: Vec<u8> = calc.call(ECHO, &data).unwrap();
                        assert!(back == data);
                        if i % 50 == 0 {
                            let listener: Arc<dyn Dispatch> =
                                Arc::new(Listener { calc: calc.clone() });
                            assert_eq!(calc.call::<_, u64>(NOTIFY, &(listener, 2u32)).unwrap(), 45);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}

/// A message longer than a record goes out part by part while it is encoded. When its
/// encoder then fails, or writes another length than announced, the parts already sent are
/// voided: the server never runs such a request, such a reply fails its call, and the
/// session goes on.
#[test]
fn streamed_messages_that_break_their_length_are_voided() {
    let _w = watchdog(120);
    let big = 200_000usize;
    for (client, server, world) in [calc_pair(1 << 16), calc_pair_socket(1 << 16)] {
        let calc = client.bootstrap();
        // Each request is an `ECHO` of `big` bytes (a `u32` count, then the bytes).
        for (written, fail, reason) in [
            (
                big - 1,
                false,
                "message encoded to 200003 bytes, 200004 announced",
            ),
            (
                big + 1,
                false,
                "message longer than the 200004 bytes announced",
            ),
            (big / 2, true, "encoder gave up"),
            (big, true, "encoder gave up"),
        ] {
            let err = calc
                .call_with(
                    ECHO,
                    4 + big,
                    |enc| {
                        enc.put(&(big as u32))?;
                        enc.put_raw(&vec![1; written])?;
                        if fail {
                            Err(CallError::failed("encoder gave up"))
                        } else {
                            Ok(())
                        }
                    },
                    |dec| dec.get::<Vec<u8>>(),
                )
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                CallError::failed(reason).to_string(),
                "{written} bytes, fail {fail}"
            );
            assert_eq!(
                calc.call::<_, u64>(ADD, &(2u64, 3u64)).unwrap(),
                5,
                "the session goes on"
            );
        }
        // An encoder that panics after its first parts went out.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            calc.call_with(
                ECHO,
                4 + big,
                |enc| {
                    enc.put(&(big as u32))?;
                    enc.put_raw(&vec![1; big / 2])?;
                    panic!("the encoder panics (expected by this test)")
                },
                |dec| dec.get::<Vec<u8>>(),
            )
        }));
        assert!(panicked.is_err());
        assert_eq!(
            calc.call::<_, u64>(ADD, &(2u64, 3u64)).unwrap(),
            5,
            "the session goes on"
        );
        let data: Vec<u8> = (0..big).map(|i| i as u8).collect();
        assert!(calc.call::<_, Vec<u8>>(ECHO, &data).unwrap() == data);
        assert_eq!(
            world.echoes.load(Ordering::SeqCst),
            1,
            "the arguments of voided requests never decode"
        );
        // A voided request whose object the server took before the void came: the client
        // took it back itself, so the server must not release it (which would close the
        // connection as a release of an unknown object).
        let before = client.exported_objects();
        let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
        let err = calc
            .call_with(
                NOTIFY,
                12 + big,
                |enc| {
                    enc.put_object(listener)?;
                    enc.put(&0u32)?;
                    enc.put_raw(&vec![1; big / 2])
                },
                |dec| dec.get::<u64>(),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            CallError::failed("message encoded to 100012 bytes, 200012 announced").to_string()
        );
        assert_eq!(client.exported_objects(), before);
        eventually("the server holds no handle", || {
            server.imported_objects() == 0
        });
        assert_eq!(calc.call::<_, u64>(ADD, &(2u64, 3u64)).unwrap(), 5);
        assert!(!client.is_closed());

        // Replies, streamed (longer than a record) or not. A streamed reply is voided; when
        // nothing went out, the server answers with the error instead.
        let voided = "the peer could not finish its reply";
        for (announced, written, mode, expected) in [
            (big, big - 1, 0u8, voided),
            (big, big + 1, 0, voided),
            (big, big / 2, 1, voided),
            (big, big / 2, 2, voided),
            (10, 5, 1, "encoder gave up"),
            (10, 10, 1, "encoder gave up"),
            (10, 5, 2, "method panicked"),
            (10, 5, 3, "disconnected"),
            (10, 5, 4, "encoder gave up"),
        ] {
            let err = calc
                .call::<_, Vec<u8>>(MISREPLY, &(announced as u64, written as u64, mode))
                .unwrap_err();
            let what =
                format!("reply of {written} bytes announced as {announced}, mode {mode}: {err}");
            let CallError::Remote {
                kind: RemoteErrorKind::Failed,
                message,
            } = &err
            else {
                panic!("{what}")
            };
            assert!(message.contains(expected), "{what}");
            assert_eq!(
                calc.call::<_, u64>(ADD, &(2u64, 3u64)).unwrap(),
                5,
                "the session goes on after {what}"
            );
        }
        // An honest streamed reply still comes through whole.
        let reply: Vec<u8> = calc
            .call_with(
                MISREPLY,
                17,
                |enc| enc.put(&(big as u64, big as u64, 0u8)),
                |dec| {
                    let mut v = vec![0; dec.remaining()];
                    dec.get_raw(&mut v)?;
                    Ok(v)
                },
            )
            .unwrap();
        assert!(reply.len() == big && reply.iter().all(|&b| b == 7));
        assert!(!client.is_closed());
    }
}

/// An object exported by a message that never goes out, because its encoder panicked, is
/// taken back, streamed message or not.
#[test]
fn objects_of_a_panicking_encoder_are_taken_back() {
    let _w = watchdog(60);
    let (client, _server, _) = calc_pair(1 << 16);
    let calc = client.bootstrap();
    let before = client.exported_objects();
    for hint in [40, 200_000] {
        let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            calc.call_with(
                ECHO,
                hint,
                |enc| {
                    enc.put_object(listener)?;
                    enc.put_raw(&vec![1; hint / 2])?;
                    panic!("the encoder panics (expected by this test)")
                },
                |dec| dec.get::<Vec<u8>>(),
            )
        }));
        assert!(panicked.is_err());
        assert_eq!(
            calc.call::<_, u64>(ADD, &(2u64, 3u64)).unwrap(),
            5,
            "the session goes on"
        );
        assert_eq!(client.exported_objects(), before, "a hint of {hint} bytes");
    }
}

/// A call refused before its arguments were decoded answers that their objects were not
/// taken, and the caller drops them at once instead of keeping them for the connection's
/// life; one whose decoding took an object releases it as usual.
#[test]
fn objects_of_a_refused_call_are_dropped() {
    let _w = watchdog(60);
    for (client, _server, _) in calc_pairs(1 << 16) {
        let calc = client.bootstrap();
        let before = client.exported_objects();
        // Unknown method, a panic before the arguments are read, arguments that do not
        // decode (`FAIL` takes none) and, with a body split over several records (left
        // unread in the ring), an unknown method and a panic again.
        for (method, filler) in [
            (99, 0),
            (PANIC, 0),
            (FAIL, 0),
            (99, 200_000),
            (PANIC, 200_000),
        ] {
            let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
            let weak = Arc::downgrade(&listener);
            let refused = calc.call_with(
                method,
                8 + filler,
                |enc| {
                    enc.put_object(listener)?;
                    enc.put_raw(&vec![1; filler])
                },
                |dec| dec.get::<()>(),
            );
            assert!(
                matches!(refused, Err(CallError::Remote { .. })),
                "method {method}: {refused:?}"
            );
            assert_eq!(
                client.exported_objects(),
                before,
                "method {method}, {filler} more bytes"
            );
            assert!(
                weak.upgrade().is_none(),
                "method {method}: the object is dropped"
            );
        }
        // `NOTIFY` takes the listener, then finds no depth after it: the object it took goes
        // back in a release.
        let listener: Arc<dyn Dispatch> = Arc::new(Listener { calc: calc.clone() });
        let refused = calc.call::<_, u64>(NOTIFY, &listener);
        drop(listener);
        assert!(matches!(
            refused,
            Err(CallError::Remote {
                kind: RemoteErrorKind::BadArguments,
                ..
            })
        ));
        eventually("the listener is released", || {
            client.exported_objects() == before
        });
        assert_eq!(calc.call::<_, u64>(ADD, &(2u64, 3u64)).unwrap(), 5);
    }
}

#[test]
fn messages_over_the_session_limit_are_refused() {
    let _w = watchdog(60);
    let calc: Arc<dyn Dispatch> = Arc::new(Calc {
        world: Arc::default(),
    });
    let cfg = SessionConfig {
        max_message_len: 1 << 16,
        ..config("small")
    };
    let (client, _server) =
        Session::pair(1 << 16, WaitPolicy::default(), None, Some(calc), &cfg).unwrap();
    let calc = client.bootstrap();
    let err = calc
        .call::<_, Vec<u8>>(ECHO, &vec![0u8; 1 << 17])
        .unwrap_err();
    assert!(matches!(err, CallError::TooLarge { .. }), "{err}");
    assert_eq!(
        calc.call::<_, Vec<u8>>(ECHO, &vec![7u8; 100]).unwrap(),
        vec![7u8; 100]
    );
}

// --- hostile peers ---------------------------------------------------------------------

/// A server session exporting a `Calc`, and the raw rings of its peer.
fn raw_peer() -> (Session, Link) {
    raw_peer_with(Arc::default(), config("raw"))
}

fn raw_peer_with(world: Arc<World>, cfg: SessionConfig) -> (Session, Link) {
    let (a, b) = Link::pair(1 << 20, WaitPolicy::default()).unwrap();
    let calc: Arc<dyn Dispatch> = Arc::new(Calc { world });
    let session = Session::from_shared(Shared::start(a, Some(calc), &cfg));
    (session, b)
}

/// As `raw_peer`, with the session's limits as `cfg` sets them, and the world they act on.
fn raw_peer_limited(cfg: SessionConfig) -> (Session, Link, Arc<World>) {
    let world = Arc::new(World::default());
    let (session, peer) = raw_peer_with(world.clone(), cfg);
    (session, peer, world)
}

/// Blocks the session's only worker in a `BLOCK` request (call `call`), then starts a call
/// of the session's own to the peer, which the peer never answers: its caller reads the
/// ring meanwhile, and queues for a worker what it cannot do itself.
fn block_the_worker_then_call(
    session: &Session,
    peer: &mut Link,
    world: &World,
    call: u64,
) -> std::thread::JoinHandle<Result<u64, CallError>> {
    peer.tx
        .send_bytes(&record(Header::request(call, 0, BLOCK, 0), &[]))
        .unwrap();
    eventually("the only worker is blocked", || {
        world.gate.lock().unwrap().0 == 1
    });
    let peer_calc = session.bootstrap();
    std::thread::spawn(move || peer_calc.call::<_, u64>(ADD, &(1u64, 1u64)))
}

/// Requests that no worker can take (the only one is blocked) are queued by a caller that
/// reads them; a peer that queues more than the limit is disconnected, not buffered.
#[test]
fn a_flood_of_requests_is_bounded() {
    let _w = watchdog(60);
    let (session, mut peer, world) = raw_peer_limited(SessionConfig {
        max_workers: 1,
        max_message_len: 1 << 16,
        ..config("flood")
    });
    let caller = block_the_worker_then_call(&session, &mut peer, &world, 1);
    let big = vec![0u8; 60_000];
    let mut args = (big.len() as u32).to_le_bytes().to_vec();
    args.extend_from_slice(&big);
    for call in 2..10 {
        peer.tx
            .send_bytes(&record(
                Header::request(call, 0, ECHO, args.len() as u64),
                &args,
            ))
            .unwrap();
    }
    session.wait_closed();
    assert!(matches!(
        caller.join().unwrap(),
        Err(CallError::Disconnected)
    ));
    world.open_gate();
}

fn record(header: Header, body: &[u8]) -> Vec<u8> {
    let mut r = zerocopy::IntoBytes::as_bytes(&header).to_vec();
    r.extend_from_slice(body);
    r
}

fn read_reply(peer: &mut Link) -> (Header, Vec<u8>) {
    let bytes = peer.rx.recv().unwrap().to_vec();
    let header: Header = zerocopy::FromBytes::read_from_prefix(&bytes).unwrap().0;
    (header, bytes[HEADER_LEN..].to_vec())
}

#[test]
fn bad_requests_get_error_replies() {
    let _w = watchdog(60);
    let (session, mut peer) = raw_peer();
    let add = |body: &[u8]| record(Header::request(7, 0, ADD, body.len() as u64), body);
    // A good call, for reference.
    let mut args = 2u64.to_le_bytes().to_vec();
    args.extend(3u64.to_le_bytes());
    peer.tx.send_bytes(&add(&args)).unwrap();
    let (h, body) = read_reply(&mut peer);
    assert_eq!(
        (h.call, h.status, body),
        (7, 0, 5u64.to_le_bytes().to_vec())
    );
    // Short and long arguments, unknown method, unknown object.
    for (bytes, status) in [
        (add(&args[..12]), RemoteErrorKind::BadArguments),
        (
            add(&[args.as_slice(), &[0]].concat()),
            RemoteErrorKind::BadArguments,
        ),
        (
            record(Header::request(7, 0, 1000, 0), &[]),
            RemoteErrorKind::UnknownMethod,
        ),
        (
            record(Header::request(7, 9, ADD, 16), &args),
            RemoteErrorKind::UnknownObject,
        ),
    ] {
        peer.tx.send_bytes(&bytes).unwrap();
        let (h, body) = read_reply(&mut peer);
        assert_eq!(
            h.status,
            status.status(),
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert!(!body.is_empty() && body.len() <= MAX_ERROR_MESSAGE);
    }
    // A voided request, ended early, is dropped without a reply; the next call is answered.
    peer.tx
        .send_bytes(&record(
            Header {
                flags: 1,
                ..Header::request(8, 0, ADD, 100)
            },
            &[1; 8],
        ))
        .unwrap();
    peer.tx
        .send_bytes(&record(
            Header {
                flags: 2,
                ..Header::continuation(8)
            },
            &[0],
        ))
        .unwrap();
    peer.tx.send_bytes(&add(&args)).unwrap();
    let (h, body) = read_reply(&mut peer);
    assert_eq!(
        (h.call, h.status, body),
        (7, 0, 5u64.to_le_bytes().to_vec())
    );
    assert!(!session.is_closed());
}

/// The next record that is not a release (the session sends those as handles drop).
fn read_response(peer: &mut Link) -> (Header, Vec<u8>) {
    loop {
        let (h, body) = read_reply(peer);
        if h.kind != crate::call::wire::KIND_RELEASE {
            return (h, body);
        }
    }
}

/// Sends `SUBSCRIBE` as call `call`, with an object of the peer's as the listener (its id
/// is the whole argument), and reads the response.
fn subscribe(peer: &mut Link, call: u64) -> (Header, Vec<u8>) {
    let listener = 1_000_000 + call;
    peer.tx
        .send_bytes(&record(
            Header::request(call, 0, SUBSCRIBE, 8),
            &listener.to_le_bytes(),
        ))
        .unwrap();
    read_response(peer)
}

/// Releases read while no worker is free queue the drops of their objects; those are not
/// requests, and however many there are they do not count as a flood (the export limit
/// bounds them).
#[test]
fn many_releases_while_the_workers_are_busy_are_not_a_flood() {
    let _w = watchdog(120);
    let (session, mut peer, world) = raw_peer_limited(SessionConfig {
        max_workers: 1,
        ..config("releases")
    });
    let count = super::session::MAX_QUEUED_REQUESTS as u64 + 10;
    let mut subs = Vec::new();
    for call in 1..=count {
        let (h, body) = subscribe(&mut peer, call);
        assert_eq!(h.call, call);
        subs.push(u64::from_le_bytes(body.try_into().unwrap()));
    }
    // A caller of ours reads the ring, and queues what it cannot do itself.
    let caller = block_the_worker_then_call(&session, &mut peer, &world, 0);
    for &sub in &subs {
        peer.tx
            .send_bytes(&record(Header::release(sub, 1), &[]))
            .unwrap();
    }
    eventually("every release is read", || session.exported_objects() == 1);
    assert!(!session.is_closed(), "the drops were taken for a flood");
    assert_eq!(world.live.load(Ordering::SeqCst), count as usize);
    world.open_gate();
    eventually("the worker drops them", || {
        world.live.load(Ordering::SeqCst) == 0
    });
    session.close();
    assert!(matches!(
        caller.join().unwrap(),
        Err(CallError::Disconnected)
    ));
}

/// A worker killed by a panic in user code it runs (here the `Drop` of a released export)
/// leaves the pool: another is started when one is needed, up to the same limit.
#[test]
fn a_worker_killed_by_a_panicking_drop_is_replaced() {
    let _w = watchdog(60);
    let (session, mut peer, world) = raw_peer_limited(SessionConfig {
        max_workers: 2,
        ..config("panicky")
    });
    let (_, body) = subscribe(&mut peer, 1);
    let sub = u64::from_le_bytes(body.try_into().unwrap());
    world.panicky_drops.store(true, Ordering::SeqCst);
    // The leader queues the drop; a second worker runs it, and dies.
    peer.tx
        .send_bytes(&record(Header::release(sub, 1), &[]))
        .unwrap();
    eventually("the subscription is dropped", || {
        world.live.load(Ordering::SeqCst) == 0
    });
    // The leader blocks in a request: reading the next one takes another worker, which
    // the pool, counting the dead one, used to refuse to start.
    peer.tx
        .send_bytes(&record(Header::request(2, 0, BLOCK, 0), &[]))
        .unwrap();
    let mut args = 2u64.to_le_bytes().to_vec();
    args.extend(3u64.to_le_bytes());
    peer.tx
        .send_bytes(&record(Header::request(3, 0, ADD, 16), &args))
        .unwrap();
    let (h, body) = read_response(&mut peer);
    assert_eq!((h.call, body), (3, 5u64.to_le_bytes().to_vec()));
    world.open_gate();
    assert_eq!(read_response(&mut peer).0.call, 2);
    assert!(!session.is_closed());
}

/// Calls `calc` when dropped, and keeps the outcome.
struct CallsWhenDropped {
    calc: RemoteObject,
    outcome: Arc<Mutex<Option<Result<u64, CallError>>>>,
}

impl std::fmt::Debug for CallsWhenDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallsWhenDropped")
    }
}

impl Dispatch for CallsWhenDropped {
    fn interface_name(&self) -> &'static str {
        "CallsWhenDropped"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        Err(CallError::UnknownMethod {
            interface: "CallsWhenDropped",
            method: call.method(),
        })
    }
}

impl Drop for CallsWhenDropped {
    fn drop(&mut self) {
        let outcome = self.calc.call::<_, u64>(ADD, &(2u64, 2u64));
        *self.outcome.lock().unwrap() = Some(outcome);
    }
}

/// The exports of a session that finds its peer gone are dropped where their `Drop` may
/// call: not on the reading leader that found the hang-up (every call would fail there as
/// `Reentrant`).
#[test]
fn exports_dropped_at_a_hang_up_may_call() {
    let _w = watchdog(60);
    let (client, _server, _world) = calc_pair(1 << 16);
    let outcome = Arc::new(Mutex::new(None));
    let export: Arc<dyn Dispatch> = Arc::new(CallsWhenDropped {
        calc: client.bootstrap(),
        outcome: outcome.clone(),
    });
    let (a, peer) = Link::pair(1 << 16, WaitPolicy::default()).unwrap();
    let session = Session::from_shared(Shared::start(a, Some(export), &config("hang-up")));
    // A worker leads (there is an export to serve); it reads the hang-up and closes.
    drop(peer);
    session.wait_closed();
    eventually("the export is dropped", || {
        outcome.lock().unwrap().is_some()
    });
    let outcome = outcome.lock().unwrap().take().unwrap();
    assert_eq!(outcome.unwrap(), 4);
}

/// A peer that asks for objects and never releases them gets errors once the session
/// exports its limit, not an export table that grows until the connection closes.
#[test]
fn exports_are_bounded_by_the_session_limit() {
    let _w = watchdog(60);
    let (session, mut peer, world) = raw_peer_limited(SessionConfig {
        max_exports: 3,
        ..config("exports")
    });
    // The bootstrap object and two subscriptions fill the table.
    let mut subs = Vec::new();
    for call in 1..=2 {
        let (h, body) = subscribe(&mut peer, call);
        assert_eq!((h.call, h.status), (call, crate::call::wire::STATUS_OK));
        subs.push(u64::from_le_bytes(body.try_into().unwrap()));
    }
    assert_eq!(session.exported_objects(), 3);
    let (h, body) = subscribe(&mut peer, 3);
    assert_eq!(h.status, RemoteErrorKind::Failed.status());
    let message = String::from_utf8(body).unwrap();
    assert!(message.contains("too many objects exported"), "{message}");
    // On a worker: its `Drop` is user code, and the send lock was held where it was refused.
    eventually("the refused one is dropped", || {
        world.live.load(Ordering::SeqCst) == 2
    });
    // Released, a subscription makes room for the next.
    peer.tx
        .send_bytes(&record(Header::release(subs[0], 1), &[]))
        .unwrap();
    eventually("the release is read", || session.exported_objects() == 2);
    let (h, _) = subscribe(&mut peer, 4);
    assert_eq!((h.call, h.status), (4, crate::call::wire::STATUS_OK));
    assert!(!session.is_closed());
}

/// A peer that answers a call twice closes the connection, whoever reads the second answer:
/// it used to overwrite the first while its caller had not taken it yet (and, split over
/// several records, could land on a later call that reused the slot).
#[test]
fn a_second_response_to_a_call_closes_the_connection() {
    let _w = watchdog(60);
    let (session, mut peer) = raw_peer();
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let calc = session.bootstrap();
            std::thread::spawn(move || calc.call::<_, u64>(ADD, &(1u64, 2u64)))
        })
        .collect();
    let first = read_reply(&mut peer).0.call;
    let second = read_reply(&mut peer).0.call;
    for call in [first, first, second] {
        peer.tx
            .send_bytes(&record(Header::response(call, 0, 8), &3u64.to_le_bytes()))
            .unwrap();
    }
    session.wait_closed();
    let results: Vec<_> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    // The first caller may have taken its answer before the connection closed; the second
    // never gets one.
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(3) | Err(CallError::Disconnected))),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(CallError::Disconnected))),
        "{results:?}"
    );
}

#[test]
fn protocol_violations_close_the_connection() {
    let mut bad: Vec<(&str, Vec<u8>)> = vec![
        ("short record", vec![1, 2, 3]),
        (
            "unknown kind",
            record(
                Header {
                    kind: 9,
                    ..Header::release(1, 1)
                },
                &[],
            ),
        ),
        (
            "unknown flags",
            record(
                Header {
                    flags: 0x80,
                    ..Header::request(1, 0, ADD, 0)
                },
                &[],
            ),
        ),
        (
            "length disagrees",
            record(Header::request(1, 0, ADD, 100), &[0; 16]),
        ),
        (
            "response to no call",
            record(Header::response(77, 0, 0), &[]),
        ),
        ("continuation alone", record(Header::continuation(1), &[1])),
        (
            "void request",
            record(
                Header {
                    flags: 2,
                    ..Header::request(1, 0, ADD, 1)
                },
                &[0],
            ),
        ),
        (
            "release of unknown object",
            record(Header::release(5, 1), &[]),
        ),
        (
            "release of the bootstrap",
            record(Header::release(0, 1), &[]),
        ),
        (
            "oversized message",
            record(
                Header {
                    flags: 1,
                    ..Header::request(1, 0, ECHO, u64::MAX)
                },
                &[0; 8],
            ),
        ),
    ];
    // A split message interrupted by another record.
    let mut split = record(
        Header {
            flags: 1,
            ..Header::request(3, 0, ECHO, 100)
        },
        &[0; 8],
    );
    split.truncate(HEADER_LEN + 8);
    bad.push(("interrupted split", split));
    // Parts that end before the announced length, without the void flag.
    let mut short = record(
        Header {
            flags: 1,
            ..Header::request(6, 0, ECHO, 100)
        },
        &[0; 8],
    );
    short.extend(record(Header::continuation(6), &[0; 8]));
    bad.push(("message shorter than announced", short));
    // The void flag belongs on the last part only.
    let mut void_early = record(
        Header {
            flags: 1,
            ..Header::request(5, 0, ECHO, 100)
        },
        &[0; 8],
    );
    void_early.extend(record(
        Header {
            flags: 3,
            ..Header::continuation(5)
        },
        &[0; 8],
    ));
    bad.push(("void before the last part", void_early));
    for (what, bytes) in bad {
        let _w = watchdog(60);
        let (session, mut peer) = raw_peer();
        if what == "void before the last part" || what == "message shorter than announced" {
            // Two records: the first part, then the offending one.
            let first = HEADER_LEN + 8;
            peer.tx.send_bytes(&bytes[..first]).unwrap();
            peer.tx.send_bytes(&bytes[first..]).unwrap();
        } else {
            peer.tx.send_bytes(&bytes).unwrap();
        }
        if what == "interrupted split" {
            peer.tx
                .send_bytes(&record(Header::request(4, 0, ADD, 0), &[]))
                .unwrap();
        }
        session.wait_closed();
        // The peer sees the hang-up.
        assert!(
            matches!(peer.rx.recv().map(|_| ()), Err(crate::Error::Disconnected)),
            "{what}"
        );
    }
}

/// Any sequence of records from the peer is answered, ignored or ends the connection; the
/// session never panics, and while it stays open it still answers a good call.
mod arbitrary_records {
    use proptest::prelude::*;

    use super::*;

    const GOOD_CALL: u64 = 0xdead_beef;

    fn a_record() -> impl Strategy<Value = Vec<u8>> {
        let method = prop_oneof![
            Just(ECHO),
            Just(ADD),
            Just(NOTIFY),
            Just(SUBSCRIBE),
            Just(FAIL),
            Just(LEN),
            7u32..20
        ];
        let body = proptest::collection::vec(any::<u8>(), 0..48);
        // Mostly well-formed requests with arbitrary arguments, so that the arguments reach
        // the decoders; otherwise anything at all in the header.
        // Never BLOCK (it would hold a worker for good) nor PANIC (noise in the output).
        let request = (method.clone(), 0u64..3, body.clone()).prop_map(|(method, object, body)| {
            record(Header::request(1, object, method, body.len() as u64), &body)
        });
        let anything = (
            1u8..6,
            0u8..3,
            0u16..6,
            method,
            0u64..4,
            0u64..3,
            any::<bool>(),
            body,
        )
            .prop_map(
                |(kind, flags, status, method, call, object, honest_len, body)| {
                    let len = if honest_len {
                        body.len() as u64
                    } else {
                        body.len() as u64 * 2 + 1
                    };
                    record(
                        Header {
                            kind,
                            flags,
                            status,
                            method,
                            call,
                            object,
                            len,
                        },
                        &body,
                    )
                },
            );
        prop_oneof![4 => request, 1 => anything]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: crate::fuzz_cases(64), ..ProptestConfig::default() })]

        #[test]
        fn are_answered_ignored_or_end_the_connection(records in proptest::collection::vec(a_record(), 1..6)) {
            let _w = watchdog(60);
            let (session, mut peer) = raw_peer();
            for r in &records {
                if peer.tx.send_bytes(r).is_err() {
                    break;
                }
            }
            let mut args = 20u64.to_le_bytes().to_vec();
            args.extend(22u64.to_le_bytes());
            let _ = peer.tx.send_bytes(&record(Header::request(GOOD_CALL, 0, ADD, 16), &args));
            loop {
                match peer.rx.recv() {
                    Ok(grant) => {
                        let bytes = grant.to_vec();
                        drop(grant);
                        let Ok((h, _)) = <Header as zerocopy::FromBytes>::read_from_prefix(&bytes) else { continue };
                        if h.call == GOOD_CALL && h.kind == 2 {
                            prop_assert_eq!(h.status, 0);
                            prop_assert_eq!(&bytes[HEADER_LEN..], &42u64.to_le_bytes()[..]);
                            prop_assert!(!session.is_closed());
                            break;
                        }
                    }
                    Err(_) => {
                        // The session hung up on us.
                        session.wait_closed();
                        break;
                    }
                }
            }
        }
    }
}

// --- decoders against arbitrary bytes --------------------------------------------------

mod fuzz {
    use proptest::prelude::*;

    use super::super::codec::{Decode, Decoder, Encode, Encoder};
    use super::super::wire::{HEADER_LEN, Header};

    type Composite = (
        Vec<u8>,
        String,
        Option<u64>,
        Vec<Vec<u16>>,
        (u32, bool),
        [u8; 4],
    );

    proptest! {
        #[test]
        fn record_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96), max in any::<u64>()) {
            if let Ok((header, _)) = <Header as zerocopy::FromBytes>::read_from_prefix(&bytes) {
                let _ = header.parse(bytes.len(), max);
            }
            prop_assert!(bytes.len() >= HEADER_LEN || <Header as zerocopy::FromBytes>::read_from_prefix(&bytes).is_err());
        }

        #[test]
        fn bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut dec = Decoder::new(&bytes);
            if let Ok(v) = Composite::decode(&mut dec) {
                // What decodes re-encodes to the bytes it came from.
                let used = bytes.len() - dec.remaining();
                let mut out = Vec::new();
                v.encode(&mut Encoder::new(&mut out)).unwrap();
                prop_assert_eq!(&out[..], &bytes[..used]);
            }
            let _ = Decoder::new(&bytes).get::<Vec<String>>();
            let _ = Decoder::new(&bytes).get::<Option<Vec<bool>>>();
            prop_assert!(Decoder::new(&bytes).get_object().is_err());
        }

        #[test]
        fn values_round_trip(v in any::<(Vec<u8>, String, Option<u64>, Vec<Vec<u16>>, (u32, bool), [u8; 4])>()) {
            let mut out = Vec::new();
            v.encode(&mut Encoder::new(&mut out)).unwrap();
            prop_assert_eq!(out.len(), v.encoded_len());
            let mut dec = Decoder::new(&out);
            prop_assert_eq!(Composite::decode(&mut dec).unwrap(), v);
            prop_assert!(dec.finish().is_ok());
        }
    }
}
