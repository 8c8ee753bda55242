//! The server's side of one call, behind [`Incoming`](super::super::Incoming).

use super::*;

/// The server's side of one call.
pub(crate) struct ServerCall<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) call: u64,
    pub(super) method: MethodId,
    pub(super) args: Args<'a>,
    /// Held while this thread leads because the arguments are still in the ring.
    pub(super) lead: Option<Busy>,
    /// Set when this thread keeps leadership while the method runs.
    pub(super) exec: Option<u64>,
    pub(super) replied: bool,
    /// Decoding the arguments took a reference to one of the caller's objects: the response
    /// goes without [`FLAG_UNTAKEN`].
    pub(super) took_objects: bool,
    /// The caller voided its request while sending it (see
    /// [`FLAG_VOID`](crate::call::wire::FLAG_VOID)): it has had its answer, and gets none.
    pub(super) voided: bool,
    /// Decoding the arguments in the ring began (see `args_with`).
    pub(super) ring_args_read: bool,
    /// Why the method's last reply could not be encoded, when nothing of it went out.
    pub(super) unsent_reply: Option<String>,
    pub(super) interface: &'static str,
}

impl std::fmt::Debug for ServerCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCall")
            .field("call", &self.call)
            .field("interface", &self.interface)
            .field("method", &self.method)
            .finish()
    }
}

impl ServerCall<'_> {
    pub(crate) fn method(&self) -> MethodId {
        self.method
    }

    #[inline(always)]
    pub(crate) fn args_with<A>(
        &mut self,
        decode: impl FnOnce(&mut Decoder<'_>) -> Result<A, CallError>,
    ) -> Result<A, CallError> {
        let shared = self.shared;
        let took = &mut self.took_objects;
        let voided = &mut self.voided;
        // Arguments in the ring are decoded where the grant lies, which is then dropped in
        // place: moved out first, the grant was copied with loads wider than the stores that
        // had just built it, which cannot be forwarded.
        if self.ring_args_read && matches!(self.args, Args::Ring { .. }) {
            // A decoder that panicked read them: later calls see none, as ever.
            self.args = Args::Taken;
        }
        if let Args::Ring { grant, len } = &self.args {
            self.ring_args_read = true;
            let result = decode_body(grant, *len, shared, |dec| {
                let result = decode(dec).and_then(|v| dec.finish().map(|()| v));
                *took |= dec.took_object();
                result
            });
            self.args = Args::Taken;
            self.release_ring();
            return result;
        }
        let result = match std::mem::replace(&mut self.args, Args::Taken) {
            Args::Ring { .. } => unreachable!("decoded above"),
            Args::Buffer(buf) => {
                let mut dec = Decoder::from_vec(buf, shared);
                let result = decode(&mut dec).and_then(|v| dec.finish().map(|()| v));
                *took |= dec.took_object();
                if let Some(buf) = dec.into_buffer() {
                    shared.recycle_buffer(buf);
                }
                result
            }
            Args::Parts(parts) => {
                let decoded =
                    parts.decode(|dec| decode(dec).and_then(|v| dec.finish().map(|()| v)));
                *took |= decoded.took_objects;
                shared.recycle_buffer(decoded.buffer);
                match decoded.value {
                    Ok(Some(result)) => result,
                    Ok(None) => {
                        *voided = true;
                        Err(CallError::failed(VOIDED_REQUEST))
                    }
                    Err(f) => Err(shared.fail(f)),
                }
            }
            Args::Taken => decode(&mut Decoder::new(&[])),
        };
        self.release_ring();
        result
    }

    /// Drops the request record if it is still in the ring, and stops reading: leadership
    /// goes to a waiting caller, or is kept (not reading) while the method runs.
    #[inline]
    pub(super) fn release_ring(&mut self) {
        // Called at every step of a call (arguments, reply, finish, drop); only the first
        // has anything to do.
        if matches!(self.args, Args::Taken) && self.lead.is_none() {
            return;
        }
        self.release_ring_now();
    }

    fn release_ring_now(&mut self) {
        // A grant in the ring is dropped in place, and nothing is moved out of arguments
        // already taken (see `args_with`).
        match &self.args {
            Args::Taken => {}
            Args::Ring { .. } => self.args = Args::Taken,
            Args::Buffer(_) | Args::Parts(_) => self.recycle_args(),
        }
        if let Some(busy) = self.lead.take() {
            self.exec = self.shared.lend_lead();
            drop(busy);
        }
    }

    /// Gives the buffer of arguments copied out of the ring back for reuse, and reads past
    /// the rest of arguments split over several records that the method did not read.
    fn recycle_args(&mut self) {
        match std::mem::replace(&mut self.args, Args::Taken) {
            Args::Buffer(buf) => self.shared.recycle_buffer(buf),
            Args::Parts(parts) => {
                // Arguments the method did not read: their parts are read past (before
                // leadership moves on), as they arrive.
                let (ending, buf) = parts.finish();
                self.shared.recycle_buffer(buf);
                match ending {
                    Ok(Ending::Whole) => {}
                    Ok(Ending::Voided) => self.voided = true,
                    Err(f) => {
                        self.shared.fail(f);
                    }
                }
            }
            Args::Ring { .. } | Args::Taken => {}
        }
    }

    #[inline(always)]
    pub(crate) fn reply_with(
        &mut self,
        len_hint: usize,
        encode: impl FnOnce(&mut Encoder<'_>) -> Result<(), CallError>,
    ) -> Result<(), CallError> {
        self.release_ring();
        if self.voided {
            return Err(CallError::failed(VOIDED_REQUEST));
        }
        if self.replied {
            return Err(CallError::failed("call answered twice"));
        }
        match self.shared.send(self.response(STATUS_OK), len_hint, encode) {
            Ok(_) => {
                self.replied = true;
                Ok(())
            }
            Err(unsent) => {
                // When nothing went out, the call is still to be answered, with this error
                // (by `finish`, unless the method answers otherwise); a voided reply has
                // answered it, and a lost connection needs no answer. Noted before an
                // encoder's panic goes on.
                self.replied = unsent.fate != Fate::NotSent;
                let error = unsent.into_error();
                if !self.replied {
                    self.unsent_reply = Some(error.to_string());
                }
                Err(error)
            }
        }
    }

    pub(super) fn reply_error(&mut self, kind: RemoteErrorKind, message: &str) {
        self.release_ring();
        self.replied = true;
        if self.voided {
            return;
        }
        let mut end = message.len().min(MAX_ERROR_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let message = &message.as_bytes()[..end];
        // A failure to send means the connection is gone; the caller learns that itself.
        let _ = self
            .shared
            .send(self.response(kind.status()), message.len(), |enc| {
                enc.put_raw(message)
            });
    }

    /// The header of this call's response: with [`FLAG_UNTAKEN`] unless decoding the
    /// arguments took an object (the caller then drops every object it sent us).
    fn response(&self, status: u16) -> Header {
        let mut header = Header::response(self.call, status, 0);
        if !self.took_objects {
            header.flags |= FLAG_UNTAKEN;
        }
        header
    }

    /// Answers the call if `dispatch` did not.
    pub(super) fn finish(&mut self, result: Result<(), CallError>) {
        self.release_ring();
        if self.voided {
            return;
        }
        match (result, self.replied) {
            (Ok(()), false) => match self.unsent_reply.take() {
                // The method's reply failed to encode and it went on as if it had not.
                Some(message) => self.reply_error(RemoteErrorKind::Failed, &message),
                None => {
                    let _ = self.reply_with(0, |_| Ok(()));
                }
            },
            (Ok(()), true) => {}
            (Err(e), false) => {
                let kind = match e {
                    CallError::UnknownMethod { .. } => RemoteErrorKind::UnknownMethod,
                    CallError::Decode { .. } => RemoteErrorKind::BadArguments,
                    _ => RemoteErrorKind::Failed,
                };
                if kind != RemoteErrorKind::Failed {
                    tracing::warn!(session = %self.shared.name, interface = self.interface, method = self.method, "rejected call: {e}");
                }
                let message = match e {
                    CallError::Failed { message } => message,
                    e => e.to_string(),
                };
                self.reply_error(kind, &message);
            }
            (Err(e), true) => {
                tracing::warn!(session = %self.shared.name, interface = self.interface, method = self.method, "error after replying: {e}");
            }
        }
    }
}

/// What a method that reads or answers a request its caller voided learns.
const VOIDED_REQUEST: &str = "the caller could not finish its request";

impl Drop for ServerCall<'_> {
    fn drop(&mut self) {
        // A panic in `dispatch` unwinds through here with the arguments possibly unread.
        self.release_ring();
    }
}
