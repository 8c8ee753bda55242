//! The proxies and servers against hostile bytes, concurrency, object lifetimes and
//! disconnection, over a real session.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, OutPoint, Txid};
use interfaces::codec::DecodeError;
use interfaces::remote::{
    BlockTemplateMethod, ChainMethod, ChainProxy, EchoMethod, InitMethod, MiningMethod, NodeMethod,
    WalletLoaderMethod, WalletMethod,
};
use interfaces::{
    BlockTemplate, BlockWhat, Chain, ChainNotifications, ErrorCode, FoundBlock, Init,
    InterfaceError, Mining, Node, TipInfo, Wallet,
};
use ipc_shm::call::{
    CallError, Dispatch, Incoming, MethodId, RemoteObject, Session, SessionConfig,
};
use ipc_shm::wait::WaitPolicy;
use proptest::prelude::*;

use super::keys::Key;
use super::suite::START_BLOCKS;
use super::{Remote, TRANSPORTS, Watchdog, connected, fresh};

/// Waits until `done` holds, failing after 30 s: for effects the call layer completes
/// asynchronously (releasing an object the peer dropped).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 30 s"
        );
        std::thread::yield_now();
    }
}

/// Calls `method` on `object` with raw argument bytes and returns the raw reply.
fn raw_call(object: &RemoteObject, method: MethodId, args: &[u8]) -> Result<Vec<u8>, CallError> {
    object.call_with(
        method,
        args.len(),
        |enc| enc.put_raw(args),
        |dec| {
            let mut out = vec![0; dec.remaining()];
            dec.get_raw(&mut out)?;
            Ok(out)
        },
    )
}

/// Calls an `Init` method that returns an object, the raw way.
fn raw_make(
    init: &RemoteObject,
    method: InitMethod,
    args: impl FnOnce(&mut ipc_shm::call::Encoder<'_>) -> Result<(), CallError>,
) -> RemoteObject {
    init.call_with(method.id(), 8, args, |dec| {
        assert_eq!(dec.get::<u8>()?, 0, "{method:?} succeeds");
        dec.get_object()
    })
    .expect("the object is handed out")
}

/// Every method id of every server, with every argument encoding proptest makes up:
/// the server answers (an error or a value), never panics, and still serves afterwards.
#[test]
fn servers_survive_arbitrary_arguments() {
    let _watchdog = Watchdog::new(Duration::from_secs(300));
    for transport in TRANSPORTS {
        let (_world, init) = fresh();
        let Remote {
            proxy: _proxy,
            server: _server,
            client,
            ..
        } = connected(init, transport);
        let boot = client.bootstrap();
        let no_args = |_: &mut ipc_shm::call::Encoder<'_>| Ok(());
        let chain = raw_make(&boot, InitMethod::MakeChain, no_args);
        let node = raw_make(&boot, InitMethod::MakeNode, no_args);
        let echo = raw_make(&boot, InitMethod::MakeEcho, no_args);
        let mining = raw_make(&boot, InitMethod::MakeMining, no_args);
        let template = mining
            .call_with(
                MiningMethod::CreateNewBlock.id(),
                8,
                |enc| enc.put_raw(&[1, 0, 0, 0, 0x51]),
                |dec| {
                    assert_eq!(dec.get::<u8>()?, 0);
                    dec.get_object()
                },
            )
            .expect("template");
        // A wallet loader built on the client's own chain proxy, exported back.
        let loader = {
            let chain_server: Arc<dyn Dispatch> = Arc::new(interfaces::remote::ChainServer::new(
                Arc::new(ChainProxy::new(chain.clone())),
            ));
            raw_make(&boot, InitMethod::MakeWalletLoader, |enc| {
                enc.put_object(chain_server)
            })
        };
        let wallet = loader
            .call_with(
                WalletLoaderMethod::CreateWallet.id(),
                9,
                |enc| enc.put_raw(&[1, 0, 0, 0, b'w']),
                |dec| {
                    assert_eq!(dec.get::<u8>()?, 0);
                    dec.get_object()
                },
            )
            .expect("wallet");
        let targets: Vec<(&str, RemoteObject, MethodId)> = vec![
            ("Init", boot.clone(), 5),
            (
                "Chain",
                chain.clone(),
                ChainMethod::WaitForNotifications.id() + 1,
            ),
            (
                "Node",
                node.clone(),
                NodeMethod::HandleNotifyBlockTip.id() + 1,
            ),
            ("Echo", echo.clone(), EchoMethod::Echo.id() + 1),
            (
                "Mining",
                mining.clone(),
                MiningMethod::CreateNewBlock.id() + 1,
            ),
            (
                "BlockTemplate",
                template.clone(),
                BlockTemplateMethod::SubmitSolution.id() + 1,
            ),
            (
                "WalletLoader",
                loader.clone(),
                WalletLoaderMethod::UnloadWallet.id() + 1,
            ),
            (
                "Wallet",
                wallet.clone(),
                WalletMethod::HandleTransactionChanged.id() + 1,
            ),
        ];
        let calls = AtomicUsize::new(0);
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: crate::fuzz_cases(64),
            ..ProptestConfig::default()
        });
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..200), |bytes| {
                for (name, object, methods) in &targets {
                    for method in 0..=*methods {
                        // Skip the methods that would block or stop the world on a valid
                        // argument, and those taking an object: a made-up object id is the call
                        // layer's to police (it closes the connection).
                        let skip = match *name {
                            "Mining" => method == MiningMethod::WaitTipChanged.id(),
                            "Node" => [
                                NodeMethod::Shutdown,
                                NodeMethod::GenerateToAddress,
                                NodeMethod::HandleNotifyBlockTip,
                            ]
                            .iter()
                            .any(|m| m.id() == method),
                            "Init" => method == InitMethod::MakeWalletLoader.id(),
                            "Chain" => method == ChainMethod::HandleNotifications.id(),
                            "Wallet" => method == WalletMethod::HandleTransactionChanged.id(),
                            _ => false,
                        };
                        if skip {
                            continue;
                        }
                        calls.fetch_add(1, Ordering::Relaxed);
                        match raw_call(object, method, &bytes) {
                            Ok(_) | Err(CallError::Remote { .. }) => {}
                            Err(e) => {
                                return Err(TestCaseError::fail(format!(
                                    "{name} method {method}: {e}"
                                )));
                            }
                        }
                    }
                }
                Ok(())
            })
            .expect("every server answers every input");
        // Still serving, with the right answers.
        let chain = ChainProxy::new(chain);
        assert_eq!(chain.get_height(), Ok(Some(START_BLOCKS)));
        assert!(calls.load(Ordering::Relaxed) > 64 * 40);
    }
}

/// A chain (and node) whose found blocks carry another block than their header names: the
/// client refuses the reply, as undecodable, and the connection goes on serving.
#[test]
fn a_found_block_carrying_another_block_is_refused() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    let refused = |r: Result<Option<FoundBlock>, InterfaceError>, transport: &str| {
        assert!(
            matches!(
                r,
                Err(InterfaceError::Decode(DecodeError::InvalidValue {
                    what: "found block's block header",
                    ..
                }))
            ),
            "{transport}: {r:?}"
        );
    };
    for transport in TRANSPORTS {
        let (world, init) = fresh();
        world.serve_wrong_blocks();
        let remote = connected(init, transport);
        let chain = remote.proxy.make_chain().expect("make_chain");
        let tip = chain.get_block_hash(START_BLOCKS).unwrap().unwrap();
        refused(
            chain.find_block(&tip, BlockWhat::Full),
            &format!("{transport:?}"),
        );
        refused(
            chain.find_ancestor_by_height(&tip, 1, BlockWhat::Full),
            &format!("{transport:?}"),
        );
        let node = remote.proxy.make_node().expect("make_node");
        refused(node.get_block(&tip), &format!("{transport:?}"));
        // The header alone is still served, and so is everything else.
        let found = chain.find_block(&tip, BlockWhat::Header).unwrap().unwrap();
        assert_eq!(found.header.block_hash(), tip, "{transport}");
        assert_eq!(chain.get_height(), Ok(Some(START_BLOCKS)), "{transport}");
    }
}

/// An unknown method is reported like a method the implementation does not offer.
#[test]
fn unknown_method_is_method_not_found() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    for transport in TRANSPORTS {
        let (_world, init) = fresh();
        let Remote {
            proxy: _proxy,
            server: _server,
            client,
            ..
        } = connected(init, transport);
        let e =
            InterfaceError::from(raw_call(&client.bootstrap(), 77, &[]).expect_err("no method 77"));
        assert_eq!(e.code(), Some(ErrorCode::METHOD_NOT_FOUND));
    }
}

/// A peer that answers every call with the same bytes.
struct Garbage(Vec<u8>);

impl std::fmt::Debug for Garbage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Garbage")
    }
}

impl Dispatch for Garbage {
    fn interface_name(&self) -> &'static str {
        "Garbage"
    }

    fn dispatch(&self, call: &mut Incoming<'_>) -> Result<(), CallError> {
        call.args_with(|dec| {
            let mut skip = vec![0; dec.remaining()];
            dec.get_raw(&mut skip)
        })?;
        call.reply_with(self.0.len(), |enc| enc.put_raw(&self.0))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::fuzz_cases(48), ..ProptestConfig::default() })]

    /// Proxies given arbitrary replies return an error or a value, never panic.
    #[test]
    fn proxies_survive_arbitrary_replies(reply in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _watchdog = Watchdog::new(Duration::from_secs(120));
        let garbage: Arc<dyn Dispatch> = Arc::new(Garbage(reply));
        let (client, _server) =
            Session::pair(1 << 16, WaitPolicy::default(), None, Some(garbage), &SessionConfig::default())
                .expect("session pair");
        let object = client.bootstrap();
        let chain = ChainProxy::new(object.clone());
        let _ = chain.get_height();
        let _ = chain.find_block(&BlockHash::all_zeros(), interfaces::BlockWhat::Full);
        let _ = chain.find_coins(&[]);
        let _ = chain.is_in_mempool(&Txid::all_zeros());
        let node = interfaces::remote::NodeProxy::new(object.clone());
        let _ = node.get_tip_info();
        let _ = node.get_mempool_info();
        let _ = node.get_raw_transaction(&Txid::all_zeros());
        let _ = node.wallet_loader().map(|l| l.list_wallets());
        let init = interfaces::remote::InitProxy::new(object.clone());
        let _ = init.make_chain().map(|c| c.get_height());
        let wallet = interfaces::remote::WalletProxy::new(object.clone());
        let _ = wallet.list_transactions();
        let _ = wallet.get_new_address();
        let _ = wallet.get_balances();
        let mining = interfaces::remote::MiningProxy::new(object.clone());
        let _ = mining.get_tip();
        let template = interfaces::remote::BlockTemplateProxy::new(object);
        let _ = template.get_block();
        let _ = template.get_coinbase_merkle_path();
    }
}

/// A reply that does not decode is reported with what was wrong; bytes left over after a
/// valid reply are the call layer's to report.
#[test]
fn undecodable_reply_is_a_decode_error() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    let garbage: Arc<dyn Dispatch> = Arc::new(Garbage(vec![0, 7]));
    let (client, _server) = Session::pair(
        1 << 16,
        WaitPolicy::default(),
        None,
        Some(garbage),
        &SessionConfig::default(),
    )
    .expect("pair");
    let chain = ChainProxy::new(client.bootstrap());
    assert!(
        matches!(chain.get_height(), Err(InterfaceError::Decode(_))),
        "{:?}",
        chain.get_height()
    );
    assert_eq!(
        chain.is_in_mempool(&Txid::all_zeros()),
        Err(InterfaceError::Decode(
            interfaces::codec::DecodeError::InvalidValue {
                what: "bool",
                value: 7
            }
        ))
    );
    let trailing: Arc<dyn Dispatch> = Arc::new(Garbage(vec![0, 1, 2]));
    let (client, _server) = Session::pair(
        1 << 16,
        WaitPolicy::default(),
        None,
        Some(trailing),
        &SessionConfig::default(),
    )
    .expect("pair");
    let chain = ChainProxy::new(client.bootstrap());
    assert!(matches!(
        chain.is_in_mempool(&Txid::all_zeros()),
        Err(InterfaceError::Call { .. })
    ));
}

/// A `find_coins` reply answers each outpoint asked about once: a longer list is refused
/// from its count, before it is decoded (an unspent-nothing takes one byte on the wire and
/// 48 in memory), and a shorter one after.
#[test]
fn a_find_coins_reply_with_more_coins_than_asked_for_is_refused() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    let reply = |count: u32| {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.resize(bytes.len() + count as usize, 0);
        bytes
    };
    let asked = [OutPoint::null()];
    for (count, expected) in [
        (
            100_000,
            DecodeError::TooLong {
                what: "list",
                len: 100_000,
                max: 1,
            },
        ),
        (
            0,
            DecodeError::InvalidValue {
                what: "number of coins found",
                value: 0,
            },
        ),
    ] {
        let garbage: Arc<dyn Dispatch> = Arc::new(Garbage(reply(count)));
        let (client, _server) = Session::pair(
            1 << 20,
            WaitPolicy::default(),
            None,
            Some(garbage),
            &SessionConfig::default(),
        )
        .expect("pair");
        let chain = ChainProxy::new(client.bootstrap());
        assert_eq!(
            chain.find_coins(&asked),
            Err(InterfaceError::Decode(expected))
        );
    }
    let one: Arc<dyn Dispatch> = Arc::new(Garbage(reply(1)));
    let (client, _server) = Session::pair(
        1 << 16,
        WaitPolicy::default(),
        None,
        Some(one),
        &SessionConfig::default(),
    )
    .expect("pair");
    assert_eq!(
        ChainProxy::new(client.bootstrap()).find_coins(&asked),
        Ok(vec![None])
    );
}

/// A byte string whose length claims more bytes than its message carries is refused both
/// ways, in bodies short enough to be copied out whole and in bodies read in place from
/// the ring (over 256 bytes), without allocating what was claimed; the session goes on.
#[test]
fn byte_strings_longer_than_their_message_are_refused_both_ways() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    let lying = |carried: usize, claimed: u32| {
        let mut bytes = claimed.to_le_bytes().to_vec();
        bytes.extend((0..carried).map(|i| i as u8));
        bytes
    };
    let cases = [
        (100, 101),
        (300, 301),
        (300, interfaces::codec::MAX_BYTES),
        (70_000, 70_001),
        (70_000, u32::MAX),
    ];
    for transport in TRANSPORTS {
        let (_world, init) = fresh();
        let Remote {
            proxy: _proxy,
            server: _server,
            client,
            ..
        } = connected(init, transport);
        let echo = raw_make(&client.bootstrap(), InitMethod::MakeEcho, |_| Ok(()));
        for (carried, claimed) in cases {
            let refused = raw_call(&echo, EchoMethod::Echo.id(), &lying(carried, claimed));
            assert!(
                matches!(
                    &refused,
                    Err(CallError::Remote {
                        kind: ipc_shm::call::RemoteErrorKind::BadArguments,
                        ..
                    })
                ),
                "{transport}: {carried} bytes claiming {claimed}: {refused:?}"
            );
        }
        let echo = interfaces::remote::EchoProxy::new(echo);
        let data: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        assert_eq!(
            interfaces::Echo::echo(&echo, &data).as_deref(),
            Ok(&data[..]),
            "{transport}"
        );
    }
    for (carried, claimed) in cases {
        // An `Ok` reply (tag 0) holding the lying byte string.
        let reply = [&[0u8][..], &lying(carried, claimed)].concat();
        let garbage: Arc<dyn Dispatch> = Arc::new(Garbage(reply));
        let (client, _server) = Session::pair(
            1 << 20,
            WaitPolicy::default(),
            None,
            Some(garbage),
            &SessionConfig::default(),
        )
        .expect("pair");
        let echo = interfaces::remote::EchoProxy::new(client.bootstrap());
        let answer = interfaces::Echo::echo(&echo, b"x");
        assert!(
            matches!(answer, Err(InterfaceError::Decode(_))),
            "{carried} bytes claiming {claimed}: {answer:?}"
        );
    }
}

/// Objects handed out live as long as the peer holds them: dropping a `Handler` proxy
/// unsubscribes, and dropping every proxy releases every object but the bootstrap.
#[test]
fn dropping_proxies_releases_objects_and_unsubscribes() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    for transport in TRANSPORTS {
        let (world, init) = fresh();
        let Remote {
            proxy,
            server,
            client: _client,
            ..
        } = connected(init, transport);
        assert_eq!(server.exported_objects(), 1, "the bootstrap object");
        let node = proxy.make_node().expect("node");
        let heard = Arc::new(AtomicUsize::new(0));
        let counter = heard.clone();
        let handler = node
            .handle_notify_block_tip(Arc::new(move |_: &TipInfo| {
                counter.fetch_add(1, Ordering::SeqCst);
            }))
            .expect("subscribe");
        let miner = Key::new(1).script();
        world.mine(&miner);
        assert_eq!(heard.load(Ordering::SeqCst), 1);
        assert_eq!(server.exported_objects(), 3, "bootstrap, node, handler");
        drop(handler);
        // The release travels to the server, which drops its handler on a worker thread.
        eventually("the handler's release", || server.exported_objects() == 2);
        eventually("the unsubscription", || world.subscribers() == 0);
        world.mine(&miner);
        assert_eq!(
            heard.load(Ordering::SeqCst),
            1,
            "no notification after the handler was dropped"
        );
        drop(node);
        eventually("the node's release", || server.exported_objects() == 1);
    }
}

/// Notifications subscribed over a connection stop when the subscriber's side goes away:
/// the node's handler is released with the connection.
#[test]
fn subscriptions_end_with_the_connection() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    for transport in TRANSPORTS {
        struct Quiet;
        impl ChainNotifications for Quiet {}
        let (world, init) = fresh();
        let Remote {
            proxy,
            server,
            client,
            ..
        } = connected(init, transport);
        let chain = proxy.make_chain().expect("chain");
        let _handler = chain
            .handle_notifications(Arc::new(Quiet))
            .expect("subscribe");
        assert_eq!(server.exported_objects(), 3, "bootstrap, chain, handler");
        drop(client);
        eventually("the server noticing the hang-up", || {
            server.exported_objects() == 0
        });
        // Mining still works on the node's side, with nobody left to notify.
        world.mine(&Key::new(1).script());
    }
}

/// Many threads calling through one connection get the in-process answers.
#[test]
fn concurrent_callers_get_in_process_answers() {
    let _watchdog = Watchdog::new(Duration::from_secs(120));
    for transport in TRANSPORTS {
        let (_world, init) = fresh();
        let direct_chain = init.make_chain().expect("chain");
        let direct_node = init.make_node().expect("node");
        let Remote {
            proxy,
            server: _server,
            client: _client,
            ..
        } = connected(init, transport);
        let chain = proxy.make_chain().expect("chain");
        let node = proxy.make_node().expect("node");
        std::thread::scope(|s| {
            for t in 0..8u32 {
                let (chain, node, direct_chain, direct_node) =
                    (&chain, &node, &direct_chain, &direct_node);
                s.spawn(move || {
                    for i in 0..500u32 {
                        let height = (t + i) % (START_BLOCKS + 2);
                        assert_eq!(
                            chain.get_block_hash(height),
                            direct_chain.get_block_hash(height)
                        );
                        let hash = direct_chain
                            .get_block_hash(height % START_BLOCKS)
                            .expect("ok")
                            .expect("block");
                        assert_eq!(
                            chain.find_block(&hash, interfaces::BlockWhat::Full),
                            direct_chain.find_block(&hash, interfaces::BlockWhat::Full)
                        );
                        assert_eq!(node.get_tip_info(), direct_node.get_tip_info());
                        assert_eq!(
                            chain.estimate_fee_rate(i % 30),
                            direct_chain.estimate_fee_rate(i % 30)
                        );
                    }
                });
            }
        });
    }
}

/// Calls blocked in the callee (`wait_tip_changed`) all return `Disconnected` when the
/// connection goes, and later calls fail the same way.
#[test]
fn pending_calls_fail_on_disconnect() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    for transport in TRANSPORTS {
        let (world, init) = fresh();
        let Remote {
            proxy,
            server,
            client: _client,
            ..
        } = connected(init, transport);
        let mining = proxy.make_mining().expect("mining");
        let tip = mining.get_tip().expect("tip").expect("blocks");
        let started = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            let waiters: Vec<_> = (0..8)
                .map(|_| {
                    let (mining, started) = (&mining, started.clone());
                    s.spawn(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        mining.wait_tip_changed(&tip.hash, Duration::from_secs(3600))
                    })
                })
                .collect();
            eventually("all eight waiters starting", || {
                started.load(Ordering::SeqCst) == 8
            });
            server.close();
            for waiter in waiters {
                assert_eq!(
                    waiter.join().expect("no panic"),
                    Err(InterfaceError::Disconnected)
                );
            }
        });
        assert_eq!(mining.get_tip(), Err(InterfaceError::Disconnected));
        // The node side is unharmed; its waiters are woken by its own shutdown.
        Node::shutdown(&*world).expect("shutdown");
    }
}

/// A transaction that does not decode is answered as bad arguments, and the connection
/// stays usable.
#[test]
fn undecodable_transaction_is_bad_arguments() {
    let _watchdog = Watchdog::new(Duration::from_secs(60));
    for transport in TRANSPORTS {
        let (_world, init) = fresh();
        let Remote {
            proxy: _proxy,
            server: _server,
            client,
            ..
        } = connected(init, transport);
        let chain = raw_make(&client.bootstrap(), InitMethod::MakeChain, |_| Ok(()));
        // A transaction announced as 5 bytes of garbage, then a fee rate.
        let mut args = vec![5, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0x00];
        args.extend_from_slice(&0u64.to_le_bytes());
        let refused = raw_call(&chain, ChainMethod::BroadcastTransaction.id(), &args)
            .map_err(InterfaceError::from);
        match refused {
            Err(InterfaceError::Call {
                remote: Some(ipc_shm::call::RemoteErrorKind::BadArguments),
                ..
            }) => {}
            other => panic!("expected bad arguments, got {other:?}"),
        }
        assert_eq!(ChainProxy::new(chain).get_height(), Ok(Some(START_BLOCKS)));
    }
}
