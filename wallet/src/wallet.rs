//! One loaded wallet: bdk's descriptor wallet, its SQLite database and its master key,
//! behind one lock so that any number of threads (IPC callers, chain notifications) can use
//! it at once.
//!
//! **Invariant: nothing leaves the wallet before it is on disk.** Every operation that
//! changes the wallet persists bdk's staged changes before it returns, in the same critical
//! section, so an address handed out or a transaction built survives a `kill -9` and is
//! never handed out twice.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bdk_wallet::chain::{BlockId, CheckPoint, Merge};
use bdk_wallet::rusqlite::{Connection, TransactionBehavior};
use bdk_wallet::{ChangeSet, KeychainKind, LoadParams, PersistedWallet, Update};
use bitcoin::{Address, Network};

use crate::coins::{CoinClass, classify};
use crate::error::{WalletError, db_error};
use crate::keys::WalletKeys;
use crate::notify::{self, Handler, Subscribers};
use interfaces::{Balances, BlockRef, TransactionChangedFn};

/// A loaded wallet. Cheap to share (`Arc<Wallet>`); every method takes `&self`.
pub struct Wallet {
    name: String,
    path: PathBuf,
    network: Network,
    state: Mutex<State>,
    subscribers: Arc<Subscribers>,
    /// Set (under the state's lock) when the wallet is unloaded: every later use of this
    /// handle fails, so that it never writes the database a reloaded wallet owns.
    unloaded: AtomicBool,
}

// Names the wallet; its state (keys, transactions) stays out of logs.
impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// Everything behind the wallet's lock.
pub(crate) struct State {
    pub(crate) bdk: PersistedWallet<Connection>,
    pub(crate) conn: Connection,
    pub(crate) keys: WalletKeys,
    /// The last "seen in mempool" time handed to bdk; see [`State::next_seen_time`].
    last_seen_time: u64,
}

impl State {
    /// A timestamp for a mempool event: the current UNIX time, but strictly later than every
    /// earlier one (also of earlier runs), because bdk orders conflicting and evicted
    /// transactions by it and two events in the same second must not tie.
    pub(crate) fn next_seen_time(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_seen_time = now.max(self.last_seen_time + 1);
        self.last_seen_time
    }

    /// The height of the wallet's chain tip.
    pub(crate) fn tip_height(&self) -> u32 {
        self.bdk.latest_checkpoint().height()
    }
}

impl Wallet {
    /// Creates the database at `path` with a fresh key, atomically: either the whole wallet
    /// (key, descriptors, network, genesis) is committed or nothing is.
    pub(crate) fn create(name: &str, path: &Path, network: Network) -> Result<Self, WalletError> {
        let mut conn = open_connection(path)?;
        let db = |err| db_error(path, err);
        let keys = WalletKeys::generate(network);
        {
            let db_tx = conn.transaction().map_err(db)?;
            ChangeSet::init_sqlite_tables(&db_tx).map_err(db)?;
            let existing = ChangeSet::from_sqlite(&db_tx).map_err(db)?;
            if !existing.is_empty() || WalletKeys::exists(&db_tx).map_err(db)? {
                return Err(WalletError::AlreadyExists {
                    name: name.to_owned(),
                });
            }
            let mut fresh =
                bdk_wallet::Wallet::create(keys.external_descriptor(), keys.internal_descriptor())
                    .network(network)
                    .create_wallet_no_persist()
                    .map_err(|err| WalletError::Corrupt {
                        path: path.to_owned(),
                        reason: format!("descriptor: {err}"),
                    })?;
            keys.store(&db_tx).map_err(db)?;
            if let Some(initial) = fresh.take_staged() {
                initial.persist_to_sqlite(&db_tx).map_err(db)?;
            }
            db_tx.commit().map_err(db)?;
        }
        Self::load_with(name, path, network, conn, keys)
    }

    /// Opens the existing wallet database at `path`.
    pub(crate) fn open(name: &str, path: &Path, network: Network) -> Result<Self, WalletError> {
        let conn = open_connection(path)?;
        let keys =
            WalletKeys::load(&conn, network, path)?.ok_or_else(|| WalletError::NotFound {
                name: name.to_owned(),
            })?;
        Self::load_with(name, path, network, conn, keys)
    }

    fn load_with(
        name: &str,
        path: &Path,
        network: Network,
        mut conn: Connection,
        keys: WalletKeys,
    ) -> Result<Self, WalletError> {
        let bdk = load_bdk(&mut conn, &keys, network, path)?;
        // Continue the seen-time sequence where the last run left it (see next_seen_time).
        let graph = bdk.tx_graph();
        let last_seen_time = graph
            .full_txs()
            .flat_map(|node| [node.last_seen, graph.get_last_evicted(node.txid)])
            .flatten()
            .max()
            .unwrap_or(0);
        Ok(Self {
            name: name.to_owned(),
            path: path.to_owned(),
            network,
            state: Mutex::new(State {
                bdk,
                conn,
                keys,
                last_seen_time,
            }),
            subscribers: Arc::default(),
            unloaded: AtomicBool::new(false),
        })
    }

    /// The wallet's name (its directory under `wallets/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The network the wallet's keys and addresses belong to.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The wallet's chain tip: the last block it has applied.
    pub fn last_block(&self) -> Result<BlockRef, WalletError> {
        let tip = self.lock()?.bdk.latest_checkpoint();
        Ok(BlockRef {
            hash: tip.hash(),
            height: tip.height(),
        })
    }

    /// Starts a new wallet's chain at `birth`, the chain's tip when the wallet was created,
    /// instead of at genesis: its keys are fresh, so no earlier block can pay them, and
    /// catch-up skips the whole history. Does nothing once the wallet has applied a block.
    pub(crate) fn set_birthday(&self, birth: BlockRef) -> Result<(), WalletError> {
        crate::sync::check_height(birth.height)?;
        self.mutate(|state| {
            let genesis = state.bdk.local_chain().genesis_hash();
            if state.tip_height() > 0 || birth.height == 0 {
                return Ok(());
            }
            let chain = CheckPoint::from_block_ids([
                BlockId {
                    height: 0,
                    hash: genesis,
                },
                BlockId {
                    height: birth.height,
                    hash: birth.hash,
                },
            ])
            .expect("heights 0 < birth.height are in order");
            state
                .bdk
                .apply_update(Update {
                    chain: Some(chain),
                    ..Update::default()
                })
                .map_err(|_| WalletError::NoCommonBlock)
        })
    }

    /// A fresh receiving address, persisted before it is returned: never handed out twice,
    /// also across restarts and crashes.
    pub fn get_new_address(&self) -> Result<Address, WalletError> {
        self.mutate(|state| {
            Ok(state
                .bdk
                .reveal_next_address(KeychainKind::External)
                .address)
        })
    }

    /// Trusted balance (spendable now: confirmed and mature, plus unconfirmed outputs of
    /// the wallet's own transactions), untrusted pending (unconfirmed, paid by others) and
    /// immature (coinbase with fewer than 101 confirmations, as Bitcoin Core's wallet counts).
    pub fn get_balances(&self) -> Result<Balances, WalletError> {
        let state = self.lock()?;
        let tip = state.tip_height();
        let mut balances = Balances::default();
        for output in state.bdk.list_unspent() {
            let sum = match classify(&state.bdk, &output, tip) {
                CoinClass::Trusted => &mut balances.trusted,
                CoinClass::UntrustedPending => &mut balances.untrusted_pending,
                CoinClass::Immature => &mut balances.immature,
            };
            // Checked, not `+=` (which panics): the coins were checked to stay within 21
            // million BTC as they came (`sync::check_wallet_total`), and a wallet written
            // before that check must fail this call, not poison its lock.
            *sum = sum.checked_add(output.txout.value).ok_or_else(|| {
                WalletError::InvalidFromChain {
                    reason: "coins adding up past the largest amount".into(),
                }
            })?;
        }
        Ok(balances)
    }

    /// Subscribes `callback` to transaction changes (Core's `handleTransactionChanged`): after
    /// each change it hears which canonical transactions are new, updated (confirmed,
    /// unconfirmed by a reorg) or deleted (evicted, replaced, disconnected coinbase), in the
    /// order the changes happened. It runs on a thread of its own, outside the wallet's
    /// locks, so it may call back into the wallet, and a slow callback delays nobody else
    /// (see the limits [`crate::MAX_SUBSCRIBERS`] and [`crate::MAX_QUEUED_CHANGES`]). Dropping the handler unsubscribes.
    pub fn handle_transaction_changed(
        &self,
        callback: TransactionChangedFn,
    ) -> Result<Handler, WalletError> {
        // Under the lock, so that no subscription outlives an `unload` running meanwhile.
        let _state = self.lock()?;
        self.subscribers.subscribe(callback)
    }

    /// Waits until every subscriber has heard of every change made before this call (as
    /// `Chain::wait_for_notifications` does for the node's). A callback calling this does not
    /// wait for itself.
    pub fn wait_for_notifications(&self) {
        self.subscribers.sync();
    }

    /// Locks the wallet for reading. Fails once the wallet is unloaded.
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, State>, WalletError> {
        let state = self.state.lock().map_err(|_| WalletError::Poisoned)?;
        // Checked under the lock, which `unload` sets the flag under: no change starts
        // after an unload.
        self.check_loaded()?;
        Ok(state)
    }

    /// Fails once the wallet is unloaded (for the calls that do not lock it).
    pub fn check_loaded(&self) -> Result<(), WalletError> {
        // Relaxed: under the lock it is ordered by the lock; outside it, a call racing with
        // `unload` may go either way, and later ones see it.
        if self.unloaded.load(Ordering::Relaxed) {
            return Err(WalletError::Unloaded {
                name: self.name.clone(),
            });
        }
        Ok(())
    }

    /// Unloads the wallet (see [`WalletStore::unload_wallet`](crate::WalletStore::unload_wallet)):
    /// waits for the change in progress, if any, then fails every later use of this
    /// handle and ends its transaction-changed subscriptions. The database stays open (and
    /// locked) until the last handle is dropped.
    pub(crate) fn unload(&self) {
        // A poisoned lock is unloaded all the same: nothing will use the state again.
        let _state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.unloaded.store(true, Ordering::Relaxed);
        self.subscribers.close_all();
    }

    /// Runs `change` under the lock, persists what it staged, then (lock released) tells the
    /// subscribers which transactions changed. If `change` fails nothing is persisted by this
    /// call; what it staged stays staged and is written by the next successful change. If
    /// persisting fails, the change is undone in memory too (see [`Wallet::change`]).
    pub(crate) fn mutate<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, WalletError>,
    ) -> Result<T, WalletError> {
        self.change(true, change)
    }

    /// [`Wallet::mutate`], but writing the database only if `persist`: for changes that hand
    /// nothing out and can be redone after a crash (blocks applied during catch-up).
    pub(crate) fn change<T>(
        &self,
        persist: bool,
        change: impl FnOnce(&mut State) -> Result<T, WalletError>,
    ) -> Result<T, WalletError> {
        let mut state = self.lock()?;
        // Read under the lock: a subscriber that subscribed before it was taken hears of
        // this change, and one that subscribes later reads the wallet after it.
        let before = self.subscribers.any().then(|| notify::snapshot(&state.bdk));
        let result = change(&mut state).and_then(|out| {
            if persist && let Err(err) = self.persist(&mut state) {
                // The caller hears of a failure: what the change did in memory must not
                // outlive it, or the next change would write it (a payment reported as
                // failed would be saved, and broadcast at the next start). The database
                // holds the wallet as it was before.
                if let Err(reload) = self.reload(&mut state) {
                    tracing::error!(wallet = %self.name, error = %reload, "cannot reload the wallet after a failed write");
                }
                return Err(err);
            }
            Ok(out)
        });
        if let Some(before) = before {
            // Whatever the wallet now holds that differs from what subscribers last heard,
            // failure or not: a failed change may have changed the wallet partly, and a
            // reload after a failed write takes back blocks applied (and heard of) since
            // the last write. Queued under the lock, so that subscribers hear changes in
            // the order they were made; delivered on the subscribers' threads.
            let changes = notify::diff(&before, &notify::snapshot(&state.bdk));
            self.subscribers.notify(&changes);
        }
        drop(state);
        result
    }

    /// Writes bdk's staged changes in one SQLite transaction.
    pub(crate) fn persist(&self, state: &mut State) -> Result<(), WalletError> {
        let State { bdk, conn, .. } = state;
        bdk.persist(conn).map_err(|err| db_error(&self.path, err))?;
        Ok(())
    }

    /// Makes every write to the database fail (SQLite's `query_only`), or work again: for
    /// tests of what a failed write leaves behind.
    #[doc(hidden)]
    pub fn refuse_writes(&self, refuse: bool) -> Result<(), WalletError> {
        let state = self.lock()?;
        state
            .conn
            .pragma_update(None, "query_only", refuse)
            .map_err(|err| db_error(&self.path, err))
    }

    /// Replaces the in-memory wallet with what the database holds, after a change written
    /// straight to the database (see [`crate::sync`]).
    pub(crate) fn reload(&self, state: &mut State) -> Result<(), WalletError> {
        let State {
            bdk, conn, keys, ..
        } = state;
        *bdk = load_bdk(conn, keys, self.network, &self.path)?;
        Ok(())
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens (creating if needed) the database file, private to its owner, and takes SQLite's
/// exclusive lock for the connection's lifetime, so that a second process (or a second
/// loader) cannot open the same wallet and the two never interleave writes.
fn open_connection(path: &Path) -> Result<Connection, WalletError> {
    let db = |err| db_error(path, err);
    let conn = Connection::open(path).map_err(db)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|source| {
        WalletError::Io {
            path: path.to_owned(),
            source,
        }
    })?;
    // Fail at once rather than wait when another connection holds the lock.
    conn.busy_timeout(std::time::Duration::ZERO).map_err(db)?;
    conn.execute_batch(
        "PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;",
    )
    .map_err(db)?;
    // Locking mode EXCLUSIVE only takes the lock at the first write: take it now.
    let mut conn = conn;
    conn.transaction_with_behavior(TransactionBehavior::Exclusive)
        .and_then(|tx| tx.commit())
        .map_err(db)?;
    Ok(conn)
}

/// Loads bdk's wallet, checking that the stored public descriptors are the ones our key
/// derives and that the network matches.
fn load_bdk(
    conn: &mut Connection,
    keys: &WalletKeys,
    network: Network,
    path: &Path,
) -> Result<PersistedWallet<Connection>, WalletError> {
    let corrupt = |reason: String| WalletError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let mut wallet = LoadParams::new()
        .descriptor(KeychainKind::External, Some(keys.external_descriptor()))
        .descriptor(KeychainKind::Internal, Some(keys.internal_descriptor()))
        .check_network(network)
        .load_wallet(conn)
        .map_err(|err| match err {
            bdk_wallet::LoadWithPersistError::Persist(err) => db_error(path, err),
            bdk_wallet::LoadWithPersistError::InvalidChangeSet(err) => corrupt(err.to_string()),
        })?
        .ok_or_else(|| corrupt("the key is stored but the wallet data is missing".to_owned()))?;
    restore_first_seen(&mut wallet, conn).map_err(|err| db_error(path, err))?;
    Ok(wallet)
}

/// Puts back the first-seen time of every transaction, which a transaction's `time` in the
/// history comes from. bdk_chain 0.23's `TxGraph::apply_changeset` skips the persisted
/// first-seen times, so a reloaded wallet would date each transaction by when it was *last*
/// seen and its history would change across a restart. A seen time only ever lowers
/// first-seen (and never raises last-seen), so applying them again restores them exactly.
fn restore_first_seen(
    wallet: &mut PersistedWallet<Connection>,
    conn: &mut Connection,
) -> bdk_wallet::rusqlite::Result<()> {
    let first_seen = {
        let db_tx = conn.transaction()?;
        ChangeSet::from_sqlite(&db_tx)?.tx_graph.first_seen
    };
    let seen: Vec<_> = first_seen
        .into_iter()
        .filter_map(|(txid, at)| Some((wallet.get_tx(txid)?.tx_node.tx.clone(), at)))
        .collect();
    wallet.apply_unconfirmed_txs(seen);
    Ok(())
}
