//! Sending a message: straight into the ring, the rest as continuation records.

use super::*;

impl Shared {
    /// Sends one message: `header` (its length and flags are filled in) and a body written
    /// by `encode`, first straight into the ring, the rest as continuation records.
    pub(super) fn send(
        self: &Arc<Self>,
        mut header: Header,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
    ) -> Result<(), CallError> {
        let _busy = Busy::enter();
        let mut guard = lock(&self.tx);
        if self.closed.load(Ordering::Acquire) {
            return Err(CallError::Disconnected);
        }
        let tx = &mut *guard;
        let outcome = self.write_releases(tx).and_then(|()| {
            let max_part = tx.sender.max_record_len() - HEADER_LEN;
            let first = len_hint.min(max_part);
            tx.spill.clear();
            tx.exported.clear();
            let mut grant = tx.sender.reserve(HEADER_LEN + first)?;
            // Advance the grant's cursor past the header, written for real below.
            let placeholder = grant.write_all(header.as_bytes());
            debug_assert!(placeholder.is_ok());
            let encoded = {
                let mut enc = Encoder::for_record(
                    &mut grant,
                    first,
                    &mut tx.spill,
                    self.max_message,
                    self,
                    &mut tx.exported,
                );
                encode(&mut enc).map(|()| (enc.len(), enc.direct_len()))
            };
            let (len, direct) = match encoded {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            header.len = len as u64;
            if !tx.spill.is_empty() {
                header.flags |= FLAG_MORE;
            }
            grant.write_obj(0, &header);
            grant.commit_len(HEADER_LEN + direct);
            let mut rest = tx.spill.as_slice();
            while !rest.is_empty() {
                let n = rest.len().min(max_part);
                let mut part = Header::continuation(header.call);
                if n < rest.len() {
                    part.flags = FLAG_MORE;
                }
                let mut grant = tx.sender.reserve(HEADER_LEN + n)?;
                grant.write_obj(0, &part);
                grant.write_at(HEADER_LEN, &rest[..n]);
                grant.commit();
                rest = &rest[n..];
            }
            Ok(Ok(()))
        });
        if tx.spill.capacity() > KEEP_BUFFER {
            tx.spill = Vec::new();
        }
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                // Nothing was sent: take back what the encoder exported.
                let exported = std::mem::take(&mut tx.exported);
                drop(guard);
                self.unexport(&exported);
                lock(&self.tx).exported = exported;
                Err(e)
            }
            Err(fatal) => {
                drop(guard);
                self.fail(fatal);
                Err(CallError::Disconnected)
            }
        }
    }

    pub(super) fn unexport(&self, ids: &[u64]) {
        let mut dropped = Vec::new();
        let mut ex = lock(&self.exports);
        for id in ids {
            if let Some(e) = ex.map.remove(id) {
                self.export_count.fetch_sub(1, Ordering::AcqRel);
                dropped.push(e.object);
            }
        }
        drop(ex);
        // User `Drop` code runs outside our locks.
        drop(dropped);
    }
}
