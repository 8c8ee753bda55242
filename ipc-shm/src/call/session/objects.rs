//! Objects across the connection: our export table, handles to the peer's objects, and
//! the releases between them.

use super::*;

impl Shared {
    /// Adds a reference to `object` in our export table and returns its id; fails when the
    /// table holds [`SessionConfig::max_exports`] objects already.
    pub(crate) fn export(
        self: &Arc<Self>,
        object: Arc<dyn Dispatch>,
    ) -> Result<ObjectId, CallError> {
        let mut ex = lock(&self.exports);
        if ex.map.len() >= self.max_exports {
            let held = ex.map.len();
            drop(ex);
            // Refused, perhaps its last handle: the send lock is held here.
            self.drop_on_worker(object);
            return Err(CallError::failed(format!(
                "too many objects exported: the peer holds {held} (the session's limit)"
            )));
        }
        let id = ex.next;
        ex.next += 1;
        ex.map.insert(id, Export { object, refs: 1 });
        self.export_count.fetch_add(1, Ordering::AcqRel);
        Ok(id)
    }

    /// Drops `count` of the peer's references to `object`; the object itself when none are
    /// left.
    pub(super) fn release_export(
        &self,
        object: ObjectId,
        count: u64,
    ) -> Result<Option<Arc<dyn Dispatch>>, Fatal> {
        if object == BOOTSTRAP {
            return Err(protocol("release of the bootstrap object"));
        }
        let mut ex = lock(&self.exports);
        let Some(export) = ex.map.get_mut(&object) else {
            return Err(protocol(format!("release of unknown object {object}")));
        };
        if count > export.refs {
            return Err(protocol(format!(
                "release of {count} references to object {object}, which has {}",
                export.refs
            )));
        }
        export.refs -= count;
        if export.refs != 0 {
            return Ok(None);
        }
        let gone = ex.map.remove(&object).map(|e| e.object);
        self.export_count.fetch_sub(1, Ordering::AcqRel);
        self.exports_epoch.fetch_add(1, Ordering::Release);
        Ok(gone)
    }

    /// A handle for an object id the peer sent us.
    pub(crate) fn import(self: &Arc<Self>, id: ObjectId) -> Result<RemoteObject, CallError> {
        if id == BOOTSTRAP {
            return Ok(RemoteObject {
                inner: self.bootstrap_handle(),
            });
        }
        let mut map = lock(&self.imports);
        if let Some(existing) = map.get(&id).and_then(Weak::upgrade) {
            existing.receipts.fetch_add(1, Ordering::Relaxed);
            return Ok(RemoteObject { inner: existing });
        }
        let inner = Arc::new(Imported {
            shared: self.clone(),
            id,
            receipts: AtomicU64::new(1),
        });
        map.insert(id, Arc::downgrade(&inner));
        Ok(RemoteObject { inner })
    }

    /// Takes back the reference to each of `taken` that a message counted, which its
    /// sender then voided: the sender took the objects back itself, so they are not to be
    /// released.
    pub(super) fn forget(taken: &[RemoteObject]) {
        for object in taken {
            let _ = object
                .inner
                .receipts
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1));
        }
    }

    pub(super) fn queue_release(self: &Arc<Self>, id: ObjectId, count: u64) {
        lock(&self.releases).push((id, count));
        self.releases_queued.store(true, Ordering::Release);
        if Busy::active() {
            DEFERRED.with(|d| d.borrow_mut().push(self.clone()));
        } else {
            self.flush_releases();
        }
    }

    pub(super) fn flush_releases(self: &Arc<Self>) {
        if !self.releases_queued.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
            return;
        }
        let _busy = Busy::enter();
        let mut tx = lock(&self.tx);
        if let Err(e) = self.write_releases(&mut tx) {
            drop(tx);
            self.fail(e);
        }
    }

    /// Sends the releases queued for the peer; inline, as every message checks first.
    #[inline]
    pub(super) fn write_releases(&self, tx: &mut Tx) -> Result<(), Fatal> {
        // SYNC: Acquire pairs with the Release store in `queue_release`, made after the push
        // under the `releases` lock; a push that races past this check is flushed by its
        // own thread (or its `Busy` guard) right after.
        if !self.releases_queued.load(Ordering::Acquire) {
            return Ok(());
        }
        self.write_queued_releases(tx)
    }

    fn write_queued_releases(&self, tx: &mut Tx) -> Result<(), Fatal> {
        {
            let mut queued = lock(&self.releases);
            self.releases_queued.store(false, Ordering::Relaxed);
            std::mem::swap(&mut *queued, &mut tx.releases);
        }
        for (id, count) in tx.releases.drain(..) {
            tx.sender.send(&Header::release(id, count))?;
        }
        Ok(())
    }
}

/// The state behind a [`RemoteObject`]: the peer's object id and how many references to it
/// we received; released in one record when dropped.
pub(crate) struct Imported {
    pub(super) shared: Arc<Shared>,
    pub(super) id: ObjectId,
    pub(super) receipts: AtomicU64,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imported")
            .field("session", &self.shared.name)
            .field("id", &self.id)
            .finish()
    }
}

impl Imported {
    pub(crate) fn id(&self) -> ObjectId {
        self.id
    }

    pub(crate) fn is_connected(&self) -> bool {
        !self.shared.closed.load(Ordering::Acquire)
    }

    #[inline(always)]
    pub(crate) fn call<R>(
        &self,
        method: MethodId,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        self.shared.call(self.id, method, len_hint, encode, decode)
    }
}

impl Drop for Imported {
    fn drop(&mut self) {
        let receipts = *self.receipts.get_mut();
        if self.id != BOOTSTRAP {
            let mut map = lock(&self.shared.imports);
            if map.get(&self.id).is_some_and(|w| w.strong_count() == 0) {
                map.remove(&self.id);
            }
        }
        // None when every reference received was taken back (`forget`).
        if receipts != 0 && !self.shared.closed.load(Ordering::Acquire) {
            self.shared.queue_release(self.id, receipts);
        }
    }
}
