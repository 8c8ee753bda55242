//! Guards: threads that must not send or call right now, and clean-up on unwinding.

use super::*;

thread_local! {
    /// How many send locks or receiving rings this thread holds. While non-zero, dropped
    /// handles queue their release instead of sending it, and calls fail as `Reentrant`.
    pub(super) static BUSY: Cell<u32> = const { Cell::new(0) };
    /// Sessions with releases queued while this thread was busy.
    pub(super) static DEFERRED: RefCell<Vec<Arc<Shared>>> = const { RefCell::new(Vec::new()) };
}

/// Ends a caller's turn as the leader when dropped (see `Shared::lend_lead`), also when
/// a decoder it runs panics: the session must not be left without a reader.
pub(super) struct LeadGuard<'s> {
    pub(super) shared: &'s Arc<Shared>,
    /// The leader's own call, once done with: its slot is freed under the same lock.
    pub(super) done: Option<u64>,
}

impl Drop for LeadGuard<'_> {
    fn drop(&mut self) {
        self.shared.lend_lead_freeing(self.done);
    }
}

/// Frees a call slot when dropped, unless [`SlotGuard::hand_over`] passed that on.
pub(super) struct SlotGuard<'s> {
    shared: &'s Shared,
    call: u64,
    handed_over: Cell<bool>,
}

impl<'s> SlotGuard<'s> {
    pub(super) fn new(shared: &'s Shared, call: u64) -> SlotGuard<'s> {
        SlotGuard {
            shared,
            call,
            handed_over: Cell::new(false),
        }
    }

    pub(super) fn call(&self) -> u64 {
        self.call
    }

    /// The call, whose slot the caller now frees itself (under a lock of `ctl` it takes
    /// anyway): the guard will not.
    pub(super) fn hand_over(&self) -> u64 {
        self.handed_over.set(true);
        self.call
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if !self.handed_over.get() {
            let mut ctl = lock(&self.shared.ctl);
            ctl.slots.free(self.call);
            self.shared.mirror_followers(&ctl);
        }
    }
}

/// Marks the thread busy while alive; when the outermost one ends, queued releases go out.
pub(super) struct Busy(());

impl Busy {
    pub(super) fn enter() -> Busy {
        BUSY.with(|b| b.set(b.get() + 1));
        Busy(())
    }

    pub(super) fn active() -> bool {
        BUSY.with(Cell::get) != 0
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let depth = BUSY.with(|b| {
            b.set(b.get() - 1);
            b.get()
        });
        if depth == 0 {
            flush_deferred();
        }
    }
}

/// Sends the releases queued while this thread was busy. Checked before the vector is
/// taken: nearly always there are none, and a call passes here several times.
fn flush_deferred() {
    if DEFERRED.with(|d| d.borrow().is_empty()) {
        return;
    }
    let deferred = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for shared in deferred {
        shared.flush_releases();
    }
}
