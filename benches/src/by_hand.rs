//! `Echo::echo`'s records, written and read by hand: what the call layer's wire format and
//! copies cost on their own, without the session around them (call slots, the send lock,
//! leadership of the receiving ring, the codec, the interface's proxy and server).
//!
//! Either end of an `Echo::echo` round trip can be taken by hand here, and the other left
//! to the call layer, so that [`decompose`] (the `echo_roundtrip/decompose` bench, and
//! `round_trips decompose`) can say where the echo's time goes:
//! a [`ByHandClient`] calls a peer that serves `Echo` any of three ways ([`EchoPeer`]), and a
//! session calls a peer that answers by hand. The records are those of `docs/protocol.md`
//! (§7 and §8): a 32-byte header, then a request body of a `u32` length and the bytes,
//! or a response body of an `Ok` tag byte, a `u32` length and the bytes. A session on the
//! other end checks every record it gets, and the by-hand ends check what matters to them,
//! so a layout that drifted from the call layer's fails the round trip rather than
//! measuring something else.

use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use ipc_shm::call::{CallError, Dispatch, Incoming, RemoteObject};
use ipc_shm::{Error, ReadGrant, Receiver, Sender, SpawnedChild, Transport};

use interfaces::remote::{EchoMethod, EchoServer};

use crate::conn::{self, Setup};
use crate::echo::{Mirror, RemoteEcho};
use crate::remote::Remote;
use crate::stats::{self, BlockTiming};

/// Header bytes at the start of every call record.
const HEADER_LEN: usize = 32;
/// Offsets in the header (little-endian): kind (`u8`), flags (`u8`), status (`u16`), method
/// (`u32`, at 4), call id (`u64`), object (`u64`), body length (`u64`). In `Echo::echo`'s
/// records the method and the object are 0 (method 0 of the bootstrap object, which is
/// object 0), and so is a successful status.
const KIND: usize = 0;
const FLAGS: usize = 1;
const STATUS: usize = 2;
const CALL: usize = 8;
const OBJECT: usize = 16;
const LEN: usize = 24;
const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;
/// The response took none of the request's objects (there were none).
const FLAG_UNTAKEN: u8 = 4;
/// The longest payload handled here: small messages are what this measures.
pub const MAX_PAYLOAD: usize = 200;
/// The longest record handled here: a response carrying [`MAX_PAYLOAD`] bytes.
const RECORD_LEN: usize = HEADER_LEN + 5 + MAX_PAYLOAD;
type Record = [u8; RECORD_LEN];

/// How the echo peer serves `Echo` (its `--server=` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoPeer {
    /// `EchoServer` over a session: what the project runs.
    Interfaces,
    /// A session serving a `Dispatch` that decodes and encodes the bytes itself: the
    /// session without the interface layer.
    Session,
    /// No session: each request record answered by hand.
    ByHand,
}

impl EchoPeer {
    pub(crate) fn as_arg(self) -> String {
        let name = match self {
            EchoPeer::Interfaces => "interfaces",
            EchoPeer::Session => "session",
            EchoPeer::ByHand => "by-hand",
        };
        format!("--server={name}")
    }

    pub(crate) fn from_arg(arg: Option<&str>) -> anyhow::Result<EchoPeer> {
        Ok(match arg {
            None | Some("interfaces") => EchoPeer::Interfaces,
            Some("session") => EchoPeer::Session,
            Some("by-hand") => EchoPeer::ByHand,
            Some(other) => bail!("unknown --server={other}"),
        })
    }
}

/// A client that calls `Echo::echo` on an echo peer by hand, over a raw connection.
#[derive(Debug)]
pub struct ByHandClient {
    sender: Sender,
    receiver: Receiver,
    next_call: u64,
    // Dropped after the ends: the peer sees the connection close, exits, and is reaped.
    _child: SpawnedChild,
}

impl ByHandClient {
    /// Starts an echo peer serving as `server` does and connects to it.
    pub fn spawn(setup: Setup, server: EchoPeer) -> anyhow::Result<ByHandClient> {
        let (child, connection) = conn::spawn(crate::echo::ROLE, setup, &[server.as_arg()])?;
        let (sender, receiver) = connection.split();
        Ok(ByHandClient {
            sender,
            receiver,
            next_call: 1,
            _child: child,
        })
    }

    /// One call: the request written by hand, the reply's bytes copied out of the ring and
    /// returned as a new vector, as `EchoProxy` returns them.
    pub fn echo(&mut self, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
        ensure!(
            payload.len() <= MAX_PAYLOAD,
            "payload over {MAX_PAYLOAD} bytes"
        );
        let call = self.next_call;
        self.next_call += 1;
        let mut record: Record = [0; RECORD_LEN];
        let body = 4 + payload.len();
        write_header(&mut record, KIND_REQUEST, 0, call, body);
        put_bytes(&mut record[HEADER_LEN..], payload);
        self.sender.send_bytes(&record[..HEADER_LEN + body])?;
        let grant = self.receiver.recv().context("receive the reply")?;
        let (header, body) = copy_out(&grant, &mut record)?;
        drop(grant);
        ensure!(
            header[KIND] == KIND_RESPONSE && u64_at(header, CALL) == call,
            "not the reply to call {call}"
        );
        let status = u16::from_le_bytes([header[STATUS], header[STATUS + 1]]);
        ensure!(
            status == 0,
            "the call failed (status {status}): {}",
            String::from_utf8_lossy(body)
        );
        match body.split_first() {
            Some((0, bytes)) => get_bytes(bytes).map(<[u8]>::to_vec),
            _ => bail!("the call failed: {}", String::from_utf8_lossy(body)),
        }
    }
}

/// A caller of `Echo::echo` through a session, without the interface layer: the bytes
/// encoded and the result decoded with the call layer's own codec calls.
#[derive(Debug)]
pub struct SessionCaller(Remote<RemoteObject>);

impl SessionCaller {
    /// Starts an echo peer serving as `server` does and connects a session to it.
    pub fn spawn(setup: Setup, server: EchoPeer) -> anyhow::Result<SessionCaller> {
        Remote::spawn(
            crate::echo::ROLE,
            setup,
            &[server.as_arg()],
            std::convert::identity,
        )
        .map(SessionCaller)
    }

    /// One call.
    pub fn echo(&self, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
        ensure!(
            payload.len() <= MAX_PAYLOAD,
            "payload over {MAX_PAYLOAD} bytes"
        );
        let result = self.0.call(|object| {
            object.call_with(
                EchoMethod::Echo.id(),
                4 + payload.len(),
                |enc| {
                    enc.put(&(payload.len() as u32))?;
                    enc.put_raw(payload)
                },
                |dec| {
                    let mut tag = [0];
                    dec.get_raw(&mut tag)?;
                    if tag != [0] {
                        return Err(CallError::failed("the call failed"));
                    }
                    let n = dec.get::<u32>()? as usize;
                    let mut out = Vec::new();
                    dec.append_raw(n, &mut out)?;
                    Ok(out)
                },
            )
        })?;
        Ok(result)
    }
}

/// The ways `decompose` makes the round trip: a key for recorded values, and a label (caller
/// then server).
pub const ROWS: [(&str, &str); 7] = [
    ("raw", "raw transport round trip"),
    ("hand_hand", "by hand -> by hand"),
    ("session_hand", "session -> by hand"),
    ("proxy_hand", "EchoProxy -> by hand"),
    ("hand_session", "by hand -> session"),
    ("hand_interfaces", "by hand -> EchoServer"),
    ("echo", "EchoProxy -> EchoServer (the echo)"),
];

/// One way of making the round trip, as `decompose` timed it.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    /// The median of its block figures, in nanoseconds.
    pub ns: f64,
    /// Quartiles of its per-round ratios to the raw round trip.
    pub ratio: [f64; 3],
}

/// Times each way of [`ROWS`] of making a round trip of `size` bytes over shared memory, in
/// `rounds` rounds of alternating blocks (see [`stats::alternating`]): the raw transport,
/// `Echo::echo`'s records by hand on both sides, each side of the echo taken by the call
/// layer (with and without the interface layer) against the other by hand, and the echo.
pub fn decompose(size: usize, rounds: usize, timing: BlockTiming) -> anyhow::Result<Vec<Part>> {
    ensure!(
        size <= MAX_PAYLOAD,
        "payloads of at most {MAX_PAYLOAD} bytes"
    );
    let setup = Setup::new(Transport::Shm, conn::Mode::Echo);
    let data = crate::payload(size);
    let mut raw = conn::Client::spawn(setup)?;
    let mut hand_hand = ByHandClient::spawn(setup, EchoPeer::ByHand)?;
    let session_hand = SessionCaller::spawn(setup, EchoPeer::ByHand)?;
    let proxy_hand = RemoteEcho::spawn_serving(setup, EchoPeer::ByHand)?;
    let mut hand_session = ByHandClient::spawn(setup, EchoPeer::Session)?;
    let mut hand_interfaces = ByHandClient::spawn(setup, EchoPeer::Interfaces)?;
    let echo = RemoteEcho::spawn(setup)?;
    let mut cases: [(&str, &mut dyn FnMut() -> anyhow::Result<()>); ROWS.len()] = [
        ("raw", &mut || raw.round_trip(&data)),
        ("hand_hand", &mut || hand_hand.echo(&data).map(drop)),
        ("session_hand", &mut || session_hand.echo(&data).map(drop)),
        ("proxy_hand", &mut || proxy_hand.echo(&data).map(drop)),
        ("hand_session", &mut || hand_session.echo(&data).map(drop)),
        ("hand_interfaces", &mut || {
            hand_interfaces.echo(&data).map(drop)
        }),
        ("echo", &mut || echo.echo(&data).map(drop)),
    ];
    ensure!(
        cases.iter().map(|c| c.0).eq(ROWS.iter().map(|r| r.0)),
        "the cases are out of step with ROWS"
    );
    let mut runs: Vec<&mut dyn FnMut() -> anyhow::Result<()>> =
        cases.iter_mut().map(|(_, run)| &mut **run).collect();
    let figures = stats::alternating(rounds, timing, &mut runs)?;
    Ok(figures
        .iter()
        .map(|case| Part {
            ns: stats::median(case),
            ratio: stats::ratio_quartiles(case, &figures[0]),
        })
        .collect())
}

/// Serves the requests `receiver` brings as `EchoServer` would, by hand: each argument
/// copied out of its record into a buffer kept from call to call (as `EchoServer` decodes
/// into one per thread), a new vector made of it (as `Mirror` does), and the reply written
/// after its header.
pub(crate) fn serve(sender: &mut Sender, receiver: &mut Receiver) -> anyhow::Result<()> {
    let mut record: Record = [0; RECORD_LEN];
    let mut argument = Vec::with_capacity(MAX_PAYLOAD);
    loop {
        let grant = match receiver.recv() {
            Ok(grant) => grant,
            Err(Error::Disconnected) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let (header, body) = copy_out(&grant, &mut record)?;
        drop(grant);
        ensure!(
            header[KIND] == KIND_REQUEST
                && header[FLAGS..CALL].iter().all(|&b| b == 0)
                && u64_at(header, OBJECT) == 0,
            "not a call of Echo::echo on the bootstrap object"
        );
        let call = u64_at(header, CALL);
        let bytes = get_bytes(body)?;
        ensure!(
            bytes.len() <= MAX_PAYLOAD,
            "payload over {MAX_PAYLOAD} bytes"
        );
        argument.clear();
        argument.extend_from_slice(bytes);
        let result = std::hint::black_box(&argument).to_vec();
        let body = 5 + result.len();
        write_header(&mut record, KIND_RESPONSE, FLAG_UNTAKEN, call, body);
        record[HEADER_LEN] = 0;
        put_bytes(&mut record[HEADER_LEN + 1..], &result);
        sender.send_bytes(&record[..HEADER_LEN + body])?;
    }
}

/// `Echo` served by a session without the interface layer: the argument decoded into a
/// buffer each thread keeps (as `EchoServer` does), the result encoded with the call
/// layer's own codec calls.
#[derive(Debug)]
pub(crate) struct SessionEcho;

thread_local! {
    static ARGUMENT: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Dispatch for SessionEcho {
    fn interface_name(&self) -> &'static str {
        "Echo"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        let mut argument = ARGUMENT.take();
        argument.clear();
        call.args_with(|dec| {
            let n = dec.get::<u32>()? as usize;
            dec.append_raw(n, &mut argument)
        })?;
        let result = std::hint::black_box(&argument).to_vec();
        ARGUMENT.set(argument);
        call.reply_with(5 + result.len(), |enc| {
            enc.put_raw(&[0])?;
            enc.put(&(result.len() as u32))?;
            enc.put_raw(&result)
        })
    }
}

/// Serves as the echo peer with `server` (the `--server=` argument of the role).
pub(crate) fn serve_echo(server: EchoPeer) -> anyhow::Result<()> {
    match server {
        EchoPeer::Interfaces => crate::remote::serve(Arc::new(EchoServer::new(Arc::new(Mirror)))),
        EchoPeer::Session => crate::remote::serve(Arc::new(SessionEcho)),
        EchoPeer::ByHand => {
            let connection = conn::accept(conn::Mode::Echo)?;
            let (mut sender, mut receiver) = connection.split();
            serve(&mut sender, &mut receiver)
        }
    }
}

/// Copies a record's header and body out of the ring (as the call layer copies a small
/// body out before decoding it), checking the body length the header announces.
fn copy_out<'r>(
    grant: &ReadGrant<'_>,
    record: &'r mut Record,
) -> anyhow::Result<(&'r [u8], &'r [u8])> {
    let len = grant.len();
    ensure!(
        (HEADER_LEN..=record.len()).contains(&len) && grant.read_at(0, &mut record[..len]),
        "a record of {len} bytes"
    );
    let (header, body) = record[..len].split_at(HEADER_LEN);
    ensure!(
        u64_at(header, LEN) == body.len() as u64,
        "body length disagrees with the record"
    );
    Ok((header, body))
}

/// Writes a call header: `kind`, `flags`, `call` and a body of `len` bytes; the other fields
/// 0.
fn write_header(record: &mut Record, kind: u8, flags: u8, call: u64, len: usize) {
    record[..HEADER_LEN].fill(0);
    record[KIND] = kind;
    record[FLAGS] = flags;
    record[CALL..CALL + 8].copy_from_slice(&call.to_le_bytes());
    record[LEN..LEN + 8].copy_from_slice(&(len as u64).to_le_bytes());
}

/// Writes a `u32` length and `bytes` (which fit: at most [`MAX_PAYLOAD`]).
fn put_bytes(out: &mut [u8], bytes: &[u8]) {
    out[..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    out[4..4 + bytes.len()].copy_from_slice(bytes);
}

/// Reads a `u32` length and that many bytes, which must end the body.
fn get_bytes(body: &[u8]) -> anyhow::Result<&[u8]> {
    let (len, rest) = body.split_first_chunk::<4>().context("body too short")?;
    let len = u32::from_le_bytes(*len) as usize;
    ensure!(rest.len() == len, "length {len} disagrees with the body");
    Ok(rest)
}

/// The little-endian `u64` at `at` of a header.
fn u64_at(header: &[u8], at: usize) -> u64 {
    let word = header[at..]
        .first_chunk::<8>()
        .expect("header fields lie inside the header");
    u64::from_le_bytes(*word)
}
