//! `Calc`, the small interface the call layer's cross-process tests call: served by
//! `ipc-shm-call-peer`, and included by `tests/call.rs` for its method ids and `Listener`.

#![allow(dead_code, unreachable_pub)] // the peer serves, the tests call: each uses a part

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use ipc_shm::call::{CallError, Dispatch, Incoming, MethodId, RemoteObject};

pub const ECHO: MethodId = 0;
pub const ADD: MethodId = 1;
/// `notify(listener, depth) -> u64`: calls `listener.on_event(depth)` and adds 1.
pub const NOTIFY: MethodId = 2;
/// `subscribe(listener) -> Subscription`.
pub const SUBSCRIBE: MethodId = 3;
/// Blocks forever (until the connection goes and the process exits).
pub const BLOCK: MethodId = 4;
/// How many calls are blocked in `BLOCK`.
pub const BLOCKED: MethodId = 5;
/// How many `Subscription`s are alive.
pub const LIVE: MethodId = 6;
pub const FAIL: MethodId = 7;

/// `Listener::on_event(depth) -> u64` and `Subscription::fire() -> u64`.
pub const ON_EVENT: MethodId = 0;
pub const FIRE: MethodId = 0;

#[derive(Debug, Default)]
pub struct Calc {
    live: Arc<AtomicUsize>,
    blocked: Mutex<usize>,
    never: Condvar,
}

impl Dispatch for Calc {
    fn interface_name(&self) -> &'static str {
        "Calc"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        match call.method() {
            ECHO => {
                let v: Vec<u8> = call.args()?;
                call.reply(&v)
            }
            ADD => {
                let (a, b): (u64, u64) = call.args()?;
                call.reply(&a.wrapping_add(b))
            }
            NOTIFY => {
                let (listener, depth): (RemoteObject, u32) = call.args()?;
                let r: u64 = listener.call(ON_EVENT, &depth)?;
                call.reply(&(r + 1))
            }
            SUBSCRIBE => {
                let listener: RemoteObject = call.args()?;
                self.live.fetch_add(1, Ordering::SeqCst);
                let sub: Arc<dyn Dispatch> = Arc::new(Subscription {
                    listener,
                    live: self.live.clone(),
                });
                call.reply(&sub)
            }
            BLOCK => {
                call.args::<()>()?;
                let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
                *blocked += 1;
                loop {
                    blocked = self.never.wait(blocked).unwrap_or_else(|e| e.into_inner());
                }
            }
            BLOCKED => {
                call.args::<()>()?;
                let n = *self.blocked.lock().unwrap_or_else(|e| e.into_inner()) as u64;
                call.reply(&n)
            }
            LIVE => {
                call.args::<()>()?;
                call.reply(&(self.live.load(Ordering::SeqCst) as u64))
            }
            FAIL => {
                call.args::<()>()?;
                Err(CallError::failed("no luck"))
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
pub struct Subscription {
    listener: RemoteObject,
    live: Arc<AtomicUsize>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
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

/// The caller's callback: at depth 0 it calls `Calc::add(40, 2)` on the peer; deeper, it
/// calls `Calc::notify` again, which calls it back once more.
#[derive(Debug)]
pub struct Listener {
    pub calc: RemoteObject,
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
