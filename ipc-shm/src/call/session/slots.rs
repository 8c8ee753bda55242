//! Call slots: where a waiting caller learns the outcome of its call.

use super::*;

pub(super) const PENDING: u8 = 0;
/// The reply is in `Slot::reply`.
pub(super) const READY: u8 = 1;
/// The waiting caller has been made the leader.
pub(super) const LEAD: u8 = 2;
/// The session closed.
pub(super) const CLOSED: u8 = 3;

/// Where a waiting caller learns the outcome of its call. Slots are reused, so a call
/// allocates nothing once the session has warmed up.
pub(super) struct Slot {
    pub(super) state: AtomicU8,
    /// The caller sleeps on `cv` (under `ctl`); whoever changes `state` must notify.
    pub(super) parked: AtomicBool,
    pub(super) cv: Condvar,
    pub(super) reply: Mutex<Reply>,
}

pub(super) struct Reply {
    pub(super) status: u16,
    /// The response's [`FLAG_UNTAKEN`](crate::call::wire::FLAG_UNTAKEN).
    pub(super) untaken: bool,
    pub(super) body: Vec<u8>,
}

pub(super) struct SlotEntry {
    pub(super) slot: Arc<Slot>,
    pub(super) generation: u32,
    pub(super) busy: bool,
    /// The caller waits for another thread to read its reply.
    pub(super) follower: bool,
    /// A response to the call has been read (its first record, if split): a second one is
    /// a protocol violation, not a reply to overwrite the first with.
    pub(super) answered: bool,
}

/// Call ids are `generation << 32 | index`: a stale or forged id does not match a slot.
#[derive(Default)]
pub(super) struct Slots {
    pub(super) entries: Vec<SlotEntry>,
    pub(super) free: Vec<u32>,
    /// Busy entries whose caller is registered as a follower.
    pub(super) followers: usize,
}

impl Slots {
    pub(super) fn alloc(&mut self) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(SlotEntry {
                    slot: Arc::new(Slot {
                        state: AtomicU8::new(PENDING),
                        parked: AtomicBool::new(false),
                        cv: Condvar::new(),
                        reply: Mutex::new(Reply {
                            status: 0,
                            untaken: false,
                            body: Vec::new(),
                        }),
                    }),
                    generation: 0,
                    busy: false,
                    follower: false,
                    answered: false,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[index as usize];
        e.busy = true;
        e.follower = false;
        e.answered = false;
        e.slot.state.store(PENDING, Ordering::Relaxed);
        u64::from(e.generation) << 32 | u64::from(index)
    }

    pub(super) fn entry(&mut self, call: u64) -> Option<&mut SlotEntry> {
        let e = self.entries.get_mut((call & 0xffff_ffff) as usize)?;
        (e.busy && u64::from(e.generation) == call >> 32).then_some(e)
    }

    /// The slot of `call`, for the response just read: marked answered. A call that is not
    /// outstanding, or that has had its response already, is a protocol violation.
    pub(super) fn answer(&mut self, call: u64) -> Result<Arc<Slot>, Fatal> {
        let Some(e) = self.entry(call) else {
            return Err(protocol(format!(
                "response to call {call:#x}, which does not exist"
            )));
        };
        if std::mem::replace(&mut e.answered, true) {
            return Err(protocol(format!("second response to call {call:#x}")));
        }
        Ok(e.slot.clone())
    }

    pub(super) fn free(&mut self, call: u64) {
        let Some(e) = self.entry(call) else { return };
        let followed = std::mem::take(&mut e.follower);
        e.busy = false;
        e.generation = e.generation.wrapping_add(1);
        self.followers -= usize::from(followed);
        self.free.push((call & 0xffff_ffff) as u32);
    }

    /// Registers the caller of `call` as a follower, or takes it off.
    pub(super) fn set_follower(&mut self, call: u64, follower: bool) {
        let Some(e) = self.entry(call) else { return };
        if std::mem::replace(&mut e.follower, follower) != follower {
            if follower {
                self.followers += 1;
            } else {
                self.followers -= 1;
            }
        }
    }

    /// Whether a follower still waits for its reply (one whose reply was handed over is
    /// about to go).
    pub(super) fn follower_waiting(&self) -> bool {
        self.followers != 0
            && self
                .entries
                .iter()
                .any(|e| e.busy && e.follower && e.slot.state.load(Ordering::Acquire) == PENDING)
    }

    /// A caller waiting as a follower, taken off the follower list.
    pub(super) fn take_follower(&mut self) -> Option<Arc<Slot>> {
        if self.followers == 0 {
            return None;
        }
        let e = self
            .entries
            .iter_mut()
            .find(|e| e.busy && e.follower && e.slot.state.load(Ordering::Acquire) == PENDING)?;
        e.follower = false;
        self.followers -= 1;
        Some(e.slot.clone())
    }
}

impl Slot {
    /// Publishes a new state and wakes the caller if it sleeps.
    pub(super) fn set(&self, state: u8, ctl: &Mutex<Ctl>) {
        // SYNC: SeqCst store then SeqCst load of `parked` pairs with the SeqCst store of
        // `parked` then load of `state` in `Shared::wait_slot`: either the caller sees the
        // new state before sleeping, or we see it parked and notify it (under `ctl`, which
        // it holds from its check until it sleeps).
        self.state.store(state, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) {
            let _ctl = lock(ctl);
            self.cv.notify_one();
        }
    }
}
