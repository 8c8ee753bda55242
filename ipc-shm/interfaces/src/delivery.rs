//! Ordered delivery to one subscriber, on a thread of its own: what stands behind the
//! `handle_*` methods that take a callback (`Chain::handle_notifications` in the node,
//! `Wallet::handle_transaction_changed` in the wallet).
//!
//! The publisher queues events without ever waiting for the subscriber, and a thread per
//! subscriber calls it for one event at a time, in the order they were queued. The callback
//! therefore runs outside the publisher's locks (it may call back into the publisher, as a
//! wallet's `block_connected` asks the node's `get_height`), and a slow subscriber delays
//! only itself. A subscriber that falls further behind than its [`Limits`] is dropped by
//! the publisher ([`Pushed::Overflow`]), so what the queues hold stays bounded however a
//! subscriber behaves.
//!
//! # Invariants
//!
//! - Events are handed over in the order they were pushed, one at a time.
//! - Once [`Delivery::close`] returns, no further event is taken from the queue. One the
//!   thread took just before may still be delivered: its callback may be running, or even
//!   begin after `close` returns. Closing never waits for the callback, so a callback may
//!   close its own delivery.
//! - [`Delivery::sync`] returns once every event pushed before it was handed over and its
//!   callback returned, or the delivery was closed.
//! - A callback that panics closes its delivery: the panic is logged, the subscriber hears
//!   nothing more, and the thread ends.

use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, ThreadId};

/// How far a subscriber may fall behind before it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most events waiting.
    pub events: usize,
    /// Most bytes waiting, as the publisher weighs its events.
    pub bytes: usize,
}

/// What became of a pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the subscriber.
    Queued,
    /// Not queued: the subscriber is further behind than its limits. The publisher drops
    /// it ([`Delivery::close`]).
    Overflow,
    /// Not queued: the delivery is closed.
    Closed,
}

/// One subscriber's queue and delivery thread.
pub struct Delivery<E> {
    queue: Mutex<Queue<E>>,
    /// Signals new events and closing to the thread, and progress to `sync` callers.
    changed: Condvar,
    limits: Limits,
    /// Set once the delivery thread has started.
    thread: OnceLock<ThreadId>,
}

impl<E> std::fmt::Debug for Delivery<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.queue();
        f.debug_struct("Delivery")
            .field("waiting", &q.events.len())
            .field("closed", &q.closed)
            .finish_non_exhaustive()
    }
}

struct Queue<E> {
    events: VecDeque<(E, usize)>,
    bytes: usize,
    /// Events pushed, and handed over with their callback returned, so far.
    pushed: u64,
    delivered: u64,
    closed: bool,
    /// The delivery thread waits on `changed`.
    idle: bool,
    /// `sync` callers waiting on `changed`.
    syncing: usize,
}

impl<E> Delivery<E> {
    fn queue(&self) -> MutexGuard<'_, Queue<E>> {
        // Every unlock leaves the queue consistent; no callback runs under it.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<E: Send + 'static> Delivery<E> {
    /// Starts a delivery thread named `name` that calls `callback` for every event pushed.
    pub fn start(
        name: String,
        limits: Limits,
        callback: impl Fn(E) + Send + 'static,
    ) -> io::Result<Arc<Delivery<E>>> {
        let delivery = Arc::new(Delivery {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                bytes: 0,
                pushed: 0,
                delivered: 0,
                closed: false,
                idle: false,
                syncing: 0,
            }),
            changed: Condvar::new(),
            limits,
            thread: OnceLock::new(),
        });
        let runner = Arc::clone(&delivery);
        let handle = thread::Builder::new()
            .name(name)
            .spawn(move || runner.run(callback))?;
        let _ = delivery.thread.set(handle.thread().id());
        Ok(delivery)
    }

    /// Queues `event`, weighing `weight` bytes against the limits. Never waits for the
    /// subscriber.
    pub fn push(&self, event: E, weight: usize) -> Pushed {
        let mut q = self.queue();
        if q.closed {
            return Pushed::Closed;
        }
        if q.events.len() >= self.limits.events || q.bytes + weight > self.limits.bytes {
            return Pushed::Overflow;
        }
        q.events.push_back((event, weight));
        q.bytes += weight;
        q.pushed += 1;
        // A busy delivery thread finds the event when it looks next; only a waiting one is
        // woken (a notification is a system call even when nobody waits).
        let wake = q.idle;
        drop(q);
        if wake {
            self.changed.notify_all();
        }
        Pushed::Queued
    }

    /// Closes the delivery: no event is taken from the queue after this returns (one taken
    /// just before is still delivered), and the thread ends after that.
    pub fn close(&self) {
        {
            let mut q = self.queue();
            q.closed = true;
            q.events.clear();
            q.bytes = 0;
        }
        self.changed.notify_all();
    }

    /// Waits until every event pushed before this call has been delivered (its callback
    /// returned), or the delivery is closed. On the delivery thread itself (a callback
    /// waiting for its own deliveries), returns at once: it would wait forever.
    pub fn sync(&self) {
        if self.thread.get() == Some(&thread::current().id()) {
            return;
        }
        let mut q = self.queue();
        let target = q.pushed;
        q.syncing += 1;
        while !q.closed && q.delivered < target {
            q = self.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        q.syncing -= 1;
    }

    /// The delivery loop.
    fn run(&self, callback: impl Fn(E)) {
        loop {
            let event = {
                let mut q = self.queue();
                loop {
                    if q.closed {
                        return;
                    }
                    if let Some((event, weight)) = q.events.pop_front() {
                        q.bytes -= weight;
                        break event;
                    }
                    q.idle = true;
                    q = self.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
                    q.idle = false;
                }
            };
            // Handed over after checking `closed` under the queue lock.
            let returned = catch_unwind(AssertUnwindSafe(|| callback(event))).is_ok();
            let mut q = self.queue();
            q.delivered += 1;
            if !returned {
                tracing::error!(
                    thread = thread::current().name().unwrap_or(""),
                    "a subscriber's callback panicked: it is unsubscribed"
                );
                q.closed = true;
                q.events.clear();
                q.bytes = 0;
            }
            // Only a waiter is told: a notification is a system call even when nobody
            // waits, and this runs once per event.
            let wake = q.syncing > 0 || !returned;
            drop(q);
            if wake {
                self.changed.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    const ROOMY: Limits = Limits {
        events: 1000,
        bytes: 1 << 20,
    };

    #[test]
    fn events_arrive_in_order_and_stop_at_close() {
        let (heard, hear) = mpsc::channel();
        let d = Delivery::start("test".into(), ROOMY, move |n: u32| {
            let _ = heard.send(n);
        })
        .unwrap();
        for n in 0..100 {
            assert_eq!(d.push(n, 1), Pushed::Queued);
        }
        d.sync();
        assert_eq!(
            hear.try_iter().collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
        d.close();
        assert_eq!(d.push(100, 1), Pushed::Closed);
        d.sync();
        assert!(hear.try_recv().is_err());
    }

    #[test]
    fn a_stuck_subscriber_overflows_by_events_and_by_bytes() {
        for (limits, weight) in [
            (
                Limits {
                    events: 3,
                    bytes: 1 << 20,
                },
                1,
            ),
            (
                Limits {
                    events: 1000,
                    bytes: 30,
                },
                10,
            ),
        ] {
            let (release, released) = mpsc::channel::<()>();
            let released = Mutex::new(released);
            let (entered, enters) = mpsc::channel();
            let d = Delivery::start("stuck".into(), limits, move |_: u32| {
                let _ = entered.send(());
                let _ = released.lock().unwrap().recv();
            })
            .unwrap();
            assert_eq!(d.push(0, weight), Pushed::Queued);
            // The thread is in the callback now, its queue empty.
            enters.recv_timeout(Duration::from_secs(30)).unwrap();
            for n in 1..=3 {
                assert_eq!(d.push(n, weight), Pushed::Queued, "{limits:?}");
            }
            assert_eq!(d.push(4, weight), Pushed::Overflow, "{limits:?}");
            d.close();
            drop(release);
            d.sync();
        }
    }

    #[test]
    fn a_panicking_callback_closes_its_delivery() {
        let d = Delivery::start("panics".into(), ROOMY, |n: u32| {
            assert!(n != 1, "the callback panics on 1");
        })
        .unwrap();
        d.push(0, 0);
        d.push(1, 0);
        d.sync();
        assert_eq!(d.push(2, 0), Pushed::Closed);
    }

    #[test]
    fn a_callback_may_sync_and_close_its_own_delivery() {
        let slot: Arc<OnceLock<Arc<Delivery<u32>>>> = Arc::default();
        let inner = Arc::clone(&slot);
        let d = Delivery::start("self".into(), ROOMY, move |_: u32| {
            let me = inner.get().unwrap();
            me.sync();
            me.close();
        })
        .unwrap();
        let _ = slot.set(Arc::clone(&d));
        d.push(0, 0);
        d.sync();
        assert_eq!(d.push(1, 0), Pushed::Closed);
    }
}
