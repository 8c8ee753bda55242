//! `transport_roundtrip`: a payload to the peer process and back, per transport.
//!
//! Ids: `floor` (a cache line bounced between two processes, 64 B only), `shm` and `socket`
//! (an `ipc_shm::Connection` over each transport, 4 MiB rings), `unix_socketpair` (plain
//! blocking read/write), `iceoryx2` (its request-response API). Parameter: payload bytes.
//! After each case, a separate loop times single round trips for percentiles.

use std::hint::black_box;

use benches::conn::{self, Mode, Setup};
use benches::cpu::{last_cpu, total_context_switches};
use benches::floor::Floor;
use benches::socketpair::SocketPair;
use benches::stats::{record, report_percentiles};
use benches::{PAYLOAD_SIZES, payload, peer};
use criterion::{BenchmarkId, Criterion, Throughput};
use ipc_shm::Transport;

const GROUP: &str = "transport_roundtrip";

fn transport_roundtrip(c: &mut Criterion) -> anyhow::Result<()> {
    let mut group = c.benchmark_group(GROUP);

    let mut floor = Floor::spawn()?;
    group.throughput(Throughput::Bytes(64));
    group.bench_function(BenchmarkId::new("floor", 64), |b| {
        b.iter(|| floor.round_trip().expect("floor round trip"))
    });
    report_percentiles(GROUP, "floor", 64, || floor.round_trip())?;
    // Where the two spinning processes ran: on different CPUs unless the machine is busy.
    let (mine, theirs) = (last_cpu(std::process::id())?, last_cpu(floor.peer_pid())?);
    println!("{GROUP}/floor: client on cpu {mine}, peer on cpu {theirs}");
    record(
        GROUP,
        "floor_cpus",
        64,
        &[("client_cpu", mine.into()), ("peer_cpu", theirs.into())],
    )?;
    drop(floor);

    for size in PAYLOAD_SIZES {
        let data = payload(size);
        group.throughput(Throughput::Bytes(size as u64));

        for (id, transport) in [("shm", Transport::Shm), ("socket", Transport::Socket)] {
            let mut client = conn::Client::spawn(Setup::new(transport, Mode::Echo))?;
            group.bench_with_input(BenchmarkId::new(id, size), &data, |b, data| {
                b.iter(|| {
                    client
                        .round_trip(black_box(data))
                        .expect("connection round trip")
                })
            });
            let pids = [std::process::id(), client.peer_pid()];
            // Of both processes: voluntary ones are waits that ended parked.
            let before = total_context_switches(&pids)?;
            let p = report_percentiles(GROUP, id, size, || client.round_trip(&data))?;
            let (vol, invol) = total_context_switches(&pids)?
                .since(before)
                .per(p.calls as f64);
            println!(
                "{GROUP}/{id}/{size}: context switches per round trip: {vol:.3} voluntary, {invol:.3} involuntary"
            );
            record(
                GROUP,
                &format!("{id}_switches"),
                size,
                &[("per_round_trip", vol), ("involuntary", invol)],
            )?;
        }

        let mut pair = SocketPair::spawn()?;
        group.bench_with_input(
            BenchmarkId::new("unix_socketpair", size),
            &data,
            |b, data| {
                b.iter(|| {
                    pair.round_trip(black_box(data))
                        .expect("socketpair round trip")
                })
            },
        );
        report_percentiles(GROUP, "unix_socketpair", size, || pair.round_trip(&data))?;
        drop(pair);

        let mut ice = iceoryx::Client::spawn()?;
        group.bench_with_input(BenchmarkId::new("iceoryx2", size), &data, |b, data| {
            b.iter(|| {
                ice.round_trip(black_box(data))
                    .expect("iceoryx2 round trip")
            })
        });
        report_percentiles(GROUP, "iceoryx2", size, || ice.round_trip(&data))?;
    }
    group.finish();
    Ok(())
}

fn main() {
    peer::serve_if_peer(|role| match role {
        iceoryx::ROLE => iceoryx::serve(),
        other => benches::serve(other),
    });
    let mut c = Criterion::default().configure_from_args();
    if let Err(e) = transport_roundtrip(&mut c) {
        eprintln!("transport_roundtrip: {e:#}");
        std::process::exit(1);
    }
    c.final_summary();
}

/// iceoryx2's request-response between two processes, busy-polling on both sides (as our
/// rings do while they spin), with slices of bytes as request and response.
mod iceoryx {
    use std::io::{Read, Write, stdin};
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use anyhow::{Context, anyhow};
    use benches::peer::{self, Peer, spin_until};
    use iceoryx2::port::client::Client as IceClient;
    use iceoryx2::prelude::*;

    pub(crate) const ROLE: &str = "iceoryx2";
    const MAX_PAYLOAD: usize = 1 << 20;

    type Service = ipc::Service;

    fn service_name() -> String {
        format!("bitcoin-shm/bench/{}", std::process::id())
    }

    pub(crate) struct Client {
        _node: Node<Service>,
        client: IceClient<Service, [u8], (), [u8], ()>,
        reply: Vec<u8>,
        /// The server and its lifeline: closed first, so that the server exits and removes
        /// its segments from `/dev/shm` (killed, it would leave 400 MB there).
        peer: Option<(Peer, UnixStream)>,
    }

    impl Drop for Client {
        fn drop(&mut self) {
            if let Some((peer, lifeline)) = self.peer.take() {
                drop(lifeline);
                peer.finish(Duration::from_secs(2));
            }
        }
    }

    impl Client {
        pub(crate) fn spawn() -> anyhow::Result<Client> {
            let name = service_name();
            let node = NodeBuilder::new()
                .create::<Service>()
                .map_err(|e| anyhow!("iceoryx2 node: {e:?}"))?;
            let service = node
                .service_builder(
                    &name
                        .as_str()
                        .try_into()
                        .map_err(|e| anyhow!("service name: {e:?}"))?,
                )
                .request_response::<[u8], [u8]>()
                .open_or_create()
                .map_err(|e| anyhow!("iceoryx2 service: {e:?}"))?;
            let client = service
                .client_builder()
                .initial_max_slice_len(MAX_PAYLOAD)
                .create()
                .map_err(|e| anyhow!("iceoryx2 client: {e:?}"))?;
            let (mut ours, theirs) = UnixStream::pair()?;
            ours.set_read_timeout(Some(peer::HANG_LIMIT))?;
            let peer = Peer::spawn(ROLE, &[format!("--service={name}")], OwnedFd::from(theirs))?;
            // The server announces itself once its port exists; requests sent earlier would
            // reach nobody.
            let mut ready = [0u8; 1];
            ours.read_exact(&mut ready)
                .context("wait for the iceoryx2 server")?;
            Ok(Client {
                _node: node,
                client,
                reply: Vec::new(),
                peer: Some((peer, ours)),
            })
        }

        #[inline]
        pub(crate) fn round_trip(&mut self, payload: &[u8]) -> anyhow::Result<()> {
            let request = self
                .client
                .loan_slice_uninit(payload.len())
                .map_err(|e| anyhow!("loan a request: {e:?}"))?
                .write_from_slice(payload);
            let pending = request
                .send()
                .map_err(|e| anyhow!("send a request: {e:?}"))?;
            let response = spin_until("iceoryx2 response", || pending.receive().ok().flatten())?;
            self.reply.clear();
            self.reply.extend_from_slice(response.payload());
            Ok(())
        }
    }

    /// Whether the client closed its end of the lifeline (it never writes to it).
    fn client_gone(lifeline: &mut UnixStream) -> anyhow::Result<bool> {
        match lifeline.read(&mut [0u8; 1]) {
            Ok(0) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e).context("watch the lifeline"),
        }
    }

    pub(crate) fn serve() -> anyhow::Result<()> {
        let name = peer::arg("service").context("no --service argument")?;
        let fd = stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("take the lifeline from stdin")?;
        let mut lifeline = UnixStream::from(fd);
        let node = NodeBuilder::new()
            .create::<Service>()
            .map_err(|e| anyhow!("iceoryx2 node: {e:?}"))?;
        let service = node
            .service_builder(
                &name
                    .as_str()
                    .try_into()
                    .map_err(|e| anyhow!("service name: {e:?}"))?,
            )
            .request_response::<[u8], [u8]>()
            .open_or_create()
            .map_err(|e| anyhow!("iceoryx2 service: {e:?}"))?;
        let server = service
            .server_builder()
            .initial_max_slice_len(MAX_PAYLOAD)
            .create()
            .map_err(|e| anyhow!("iceoryx2 server: {e:?}"))?;
        lifeline.write_all(&[1]).context("announce the server")?;
        lifeline
            .set_nonblocking(true)
            .context("make the lifeline non-blocking")?;
        let mut idle = 0u32;
        loop {
            let Some(request) = server
                .receive()
                .map_err(|e| anyhow!("receive a request: {e:?}"))?
            else {
                // Now and then (a system call every 64Ki empty looks, well under a
                // millisecond apart), see whether the client has gone: then return, and
                // dropping the node removes our segments.
                idle = idle.wrapping_add(1);
                if idle.is_multiple_of(1 << 16) && client_gone(&mut lifeline)? {
                    return Ok(());
                }
                std::hint::spin_loop();
                continue;
            };
            let response = request
                .loan_slice_uninit(request.payload().len())
                .map_err(|e| anyhow!("loan a response: {e:?}"))?
                .write_from_slice(request.payload());
            response
                .send()
                .map_err(|e| anyhow!("send a response: {e:?}"))?;
        }
    }
}
