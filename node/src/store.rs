//! Persistent chain state: an embedded ACID database (redb) under `DATADIR/regtest/`.
//!
//! # Schema
//!
//! | table         | key                              | value                                                        |
//! |---------------|----------------------------------|--------------------------------------------------------------|
//! | `block_index` | block hash (32 bytes)            | header (80) ‖ height (u32 LE) ‖ chain work (32, BE) ‖ status (u8) |
//! | `blocks`      | block hash                       | the block, consensus encoding                                |
//! | `undo`        | block hash of a connected block  | the coins its transactions spent, in spending order          |
//! | `utxos`       | txid (32) ‖ vout (u32 LE)        | height (u32 LE) ‖ is_coinbase (u8) ‖ `TxOut`, consensus encoding |
//! | `txindex`     | txid                             | hash of the active block holding it                          |
//! | `mempool`     | position (u64 BE)                | a mempool transaction saved at shutdown, in arrival order    |
//! | `meta`        | `"tip"`                          | hash of the active tip                                       |
//!
//! # Invariants
//!
//! - Every change is made through [`Store::commit`], which applies one [`Batch`] in ONE redb
//!   write transaction with immediate durability. A block connection (UTXO changes, undo data,
//!   the new tip) is one batch, so after a crash at any moment the database holds exactly the
//!   state after the last committed batch: the UTXO set always matches the chain ending at
//!   `tip`.
//! - The parent of a block is the `prev_blockhash` of its header; it is not stored twice.
//! - The data directory is held with an exclusive `flock` on `.lock` for the lifetime of the
//!   [`Store`], so a second process fails fast instead of sharing the database.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::{Block, BlockHash, OutPoint, TxOut, Txid};
use interfaces::EncodedBlock;
use nix::fcntl::{Flock, FlockArg};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const BLOCK_INDEX: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("block_index");
const BLOCKS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("blocks");
const UNDO: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("undo");
const UTXOS: TableDefinition<'_, &[u8; 36], &[u8]> = TableDefinition::new("utxos");
const TXINDEX: TableDefinition<'_, &[u8; 32], &[u8; 32]> = TableDefinition::new("txindex");
const MEMPOOL: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("mempool");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const TIP_KEY: &str = "tip";

/// File name of the database inside the chain directory.
const DB_FILE: &str = "chainstate.redb";
/// File name of the data directory lock inside the chain directory.
const LOCK_FILE: &str = ".lock";

/// Error of the persistent store.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process holds the data directory lock.
    Locked(PathBuf),
    /// Creating or opening a file or directory failed.
    Io(PathBuf, std::io::Error),
    /// The database engine failed.
    Database(redb::Error),
    /// A stored record does not decode; the database is corrupt.
    Corrupt(&'static str),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Locked(dir) => write!(
                f,
                "cannot obtain a lock on data directory {}; bitcoin-node is probably already running",
                dir.display()
            ),
            Self::Io(path, e) => write!(f, "cannot access {}: {e}", path.display()),
            Self::Database(e) => write!(f, "database error: {e}"),
            Self::Corrupt(what) => write!(f, "corrupt database record: {what}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        Self::Database(e.into())
    }
}

/// Validation state of a block in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Header and context-free checks passed, data stored; not connected yet.
    Stored,
    /// The block has been connected (all its scripts verified) at least once.
    Valid,
    /// The block itself failed validation.
    Failed,
    /// An ancestor of the block failed validation.
    FailedChild,
}

impl BlockStatus {
    fn to_byte(self) -> u8 {
        match self {
            Self::Stored => 0,
            Self::Valid => 1,
            Self::Failed => 2,
            Self::FailedChild => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Stored,
            1 => Self::Valid,
            2 => Self::Failed,
            3 => Self::FailedChild,
            _ => return None,
        })
    }

    /// Whether the block or one of its ancestors is known to be invalid.
    pub fn is_failed(self) -> bool {
        matches!(self, Self::Failed | Self::FailedChild)
    }
}

/// One entry of the block index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The block header.
    pub header: Header,
    /// Height of the block (genesis is 0).
    pub height: u32,
    /// Total work of the chain ending with this block.
    pub chain_work: Work,
    /// Validation state.
    pub status: BlockStatus,
}

const INDEX_LEN: usize = 80 + 4 + 32 + 1;

impl IndexEntry {
    fn encode(&self) -> Vec<u8> {
        let mut v = serialize(&self.header);
        v.extend_from_slice(&self.height.to_le_bytes());
        v.extend_from_slice(&self.chain_work.to_be_bytes());
        v.push(self.status.to_byte());
        v
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = StoreError::Corrupt("block index entry");
        if bytes.len() != INDEX_LEN {
            return Err(corrupt);
        }
        let header: Header =
            deserialize(&bytes[..80]).map_err(|_| StoreError::Corrupt("block header"))?;
        let height = u32::from_le_bytes(
            bytes[80..84]
                .try_into()
                .map_err(|_| StoreError::Corrupt("height"))?,
        );
        let work: [u8; 32] = bytes[84..116]
            .try_into()
            .map_err(|_| StoreError::Corrupt("chain work"))?;
        let status = BlockStatus::from_byte(bytes[116]).ok_or(corrupt)?;
        Ok(Self {
            header,
            height,
            chain_work: Work::from_be_bytes(work),
            status,
        })
    }
}

/// An unspent transaction output with the context validation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// The output itself.
    pub output: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether it was created by a coinbase (maturity rule applies).
    pub is_coinbase: bool,
}

impl Coin {
    fn encode_into(&self, v: &mut Vec<u8>) {
        v.extend_from_slice(&self.height.to_le_bytes());
        v.push(u8::from(self.is_coinbase));
        v.extend_from_slice(&serialize(&self.output));
    }

    /// Decodes one coin from the front of `bytes`, returning it and the rest.
    fn decode_from(bytes: &[u8]) -> Result<(Self, &[u8]), StoreError> {
        let corrupt = StoreError::Corrupt("coin");
        if bytes.len() < 5 {
            return Err(corrupt);
        }
        let height = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let is_coinbase = match bytes[4] {
            0 => false,
            1 => true,
            _ => return Err(corrupt),
        };
        let (output, used): (TxOut, usize) = bitcoin::consensus::deserialize_partial(&bytes[5..])
            .map_err(|_| StoreError::Corrupt("coin output"))?;
        Ok((
            Self {
                output,
                height,
                is_coinbase,
            },
            &bytes[5 + used..],
        ))
    }
}

/// Encodes the coins a block spent (its undo data).
fn encode_undo(coins: &[Coin]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&u32::try_from(coins.len()).unwrap_or(u32::MAX).to_le_bytes());
    for c in coins {
        c.encode_into(&mut v);
    }
    v
}

fn decode_undo(mut bytes: &[u8]) -> Result<Vec<Coin>, StoreError> {
    if bytes.len() < 4 {
        return Err(StoreError::Corrupt("undo data"));
    }
    let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    bytes = &bytes[4..];
    // Each coin takes at least 5 + 9 bytes, which bounds the allocation by the record size.
    let mut coins = Vec::with_capacity(n.min(bytes.len() / 14));
    for _ in 0..n {
        let (coin, rest) = Coin::decode_from(bytes)?;
        coins.push(coin);
        bytes = rest;
    }
    if !bytes.is_empty() {
        return Err(StoreError::Corrupt("undo data"));
    }
    Ok(coins)
}

fn outpoint_key(op: &OutPoint) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(op.txid.as_byte_array());
    k[32..].copy_from_slice(&op.vout.to_le_bytes());
    k
}

fn outpoint_from_key(k: &[u8; 36]) -> OutPoint {
    let mut txid = [0u8; 32];
    txid.copy_from_slice(&k[..32]);
    OutPoint {
        txid: Txid::from_byte_array(txid),
        vout: u32::from_le_bytes([k[32], k[33], k[34], k[35]]),
    }
}

/// A set of changes applied atomically by [`Store::commit`].
#[derive(Debug, Default)]
pub struct Batch {
    blocks: Vec<(BlockHash, Vec<u8>)>,
    index: Vec<(BlockHash, IndexEntry)>,
    /// UTXO changes in order: `Some` adds (or replaces), `None` removes.
    coins: Vec<(OutPoint, Option<Coin>)>,
    put_undo: Vec<(BlockHash, Vec<u8>)>,
    /// Transaction index changes in order: `Some` sets the block, `None` removes.
    txindex: Vec<(Txid, Option<BlockHash>)>,
    remove_undo: Vec<BlockHash>,
    tip: Option<BlockHash>,
}

impl Batch {
    /// Stores a block's data.
    pub fn put_block(&mut self, block: &Block) {
        self.blocks.push((block.block_hash(), serialize(block)));
    }

    /// Writes (inserts or replaces) a block index entry.
    pub fn put_index(&mut self, hash: BlockHash, entry: IndexEntry) {
        self.index.push((hash, entry));
    }

    /// Adds an unspent output. Coin changes are applied in the order they were made.
    pub fn add_coin(&mut self, outpoint: OutPoint, coin: Coin) {
        self.coins.push((outpoint, Some(coin)));
    }

    /// Removes an unspent output. Coin changes are applied in the order they were made.
    pub fn spend_coin(&mut self, outpoint: OutPoint) {
        self.coins.push((outpoint, None));
    }

    /// Stores the undo data (spent coins, in spending order) of a connected block.
    pub fn put_undo(&mut self, hash: BlockHash, spent: &[Coin]) {
        self.put_undo.push((hash, encode_undo(spent)));
    }

    /// Drops the undo data of a disconnected block.
    pub fn remove_undo(&mut self, hash: BlockHash) {
        self.remove_undo.push(hash);
    }

    /// Records that `txid` is confirmed in the active block `block`.
    pub fn index_tx(&mut self, txid: Txid, block: BlockHash) {
        self.txindex.push((txid, Some(block)));
    }

    /// Forgets where `txid` is confirmed (its block was disconnected).
    pub fn unindex_tx(&mut self, txid: Txid) {
        self.txindex.push((txid, None));
    }

    /// Sets the active tip.
    pub fn set_tip(&mut self, hash: BlockHash) {
        self.tip = Some(hash);
    }
}

/// Creates the database at `path`, with its tables, so that it appears whole or not at all:
/// built under a temporary name, then renamed into place. (The engine writes a new file in
/// several steps, and one cut short by a crash is refused at every later start as "not a
/// database": the data directory would stay unusable until the file was deleted by hand.)
fn create_database(chain_dir: &Path, path: &Path) -> Result<(), StoreError> {
    let fresh = chain_dir.join(format!("{DB_FILE}.new"));
    // Left by a first start that did not finish: nothing was ever stored in it.
    match fs::remove_file(&fresh) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::Io(fresh, e)),
    }
    let db = Database::create(&fresh)?;
    let txn = db.begin_write()?;
    {
        txn.open_table(BLOCK_INDEX)?;
        txn.open_table(BLOCKS)?;
        txn.open_table(UNDO)?;
        txn.open_table(UTXOS)?;
        txn.open_table(TXINDEX)?;
        txn.open_table(MEMPOOL)?;
        txn.open_table(META)?;
    }
    txn.commit()?;
    drop(db);
    fs::rename(&fresh, path).map_err(|e| StoreError::Io(path.to_owned(), e))?;
    // The rename, and the directory itself if it is new, outlive a power cut too.
    for dir in [Some(chain_dir), chain_dir.parent()].into_iter().flatten() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::Io(dir.to_owned(), e))?;
    }
    Ok(())
}

/// The chain database of one data directory, locked for exclusive use.
#[derive(Debug)]
pub struct Store {
    db: Database,
    _lock: Flock<File>,
}

impl Store {
    /// Opens (creating if needed) the store in `chain_dir` (e.g. `DATADIR/regtest`), taking the
    /// data directory lock first.
    pub fn open(chain_dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(chain_dir).map_err(|e| StoreError::Io(chain_dir.to_owned(), e))?;
        let lock_path = chain_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Io(lock_path.clone(), e))?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(
                |(_, errno)| match errno {
                    nix::errno::Errno::EWOULDBLOCK => StoreError::Locked(chain_dir.to_owned()),
                    other => StoreError::Io(lock_path.clone(), other.into()),
                },
            )?;
        let path = chain_dir.join(DB_FILE);
        let exists = path
            .try_exists()
            .map_err(|e| StoreError::Io(path.clone(), e))?;
        if !exists {
            create_database(chain_dir, &path)?;
        }
        let db = Database::create(&path)?;
        Ok(Self { db, _lock: lock })
    }

    /// Applies every change of `batch` in one durable write transaction.
    pub fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut blocks = txn.open_table(BLOCKS)?;
            for (hash, bytes) in &batch.blocks {
                blocks.insert(hash.as_byte_array(), bytes.as_slice())?;
            }
            let mut index = txn.open_table(BLOCK_INDEX)?;
            for (hash, entry) in &batch.index {
                index.insert(hash.as_byte_array(), entry.encode().as_slice())?;
            }
            let mut utxos = txn.open_table(UTXOS)?;
            let mut buf = Vec::new();
            for (op, coin) in &batch.coins {
                match coin {
                    Some(coin) => {
                        buf.clear();
                        coin.encode_into(&mut buf);
                        utxos.insert(&outpoint_key(op), buf.as_slice())?;
                    }
                    None => {
                        utxos.remove(&outpoint_key(op))?;
                    }
                }
            }
            let mut undo = txn.open_table(UNDO)?;
            for (hash, bytes) in &batch.put_undo {
                undo.insert(hash.as_byte_array(), bytes.as_slice())?;
            }
            for hash in &batch.remove_undo {
                undo.remove(hash.as_byte_array())?;
            }
            let mut txindex = txn.open_table(TXINDEX)?;
            for (txid, block) in &batch.txindex {
                match block {
                    Some(b) => {
                        txindex.insert(txid.as_byte_array(), b.as_byte_array())?;
                    }
                    None => {
                        txindex.remove(txid.as_byte_array())?;
                    }
                }
            }
            if let Some(tip) = batch.tip {
                txn.open_table(META)?
                    .insert(TIP_KEY, tip.as_byte_array().as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Replaces the saved mempool with `txs` (in arrival order), in one transaction.
    pub fn save_mempool(
        &self,
        txs: &[std::sync::Arc<bitcoin::Transaction>],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(MEMPOOL)?;
            table.retain(|_, _| false)?;
            for (i, tx) in (0u64..).zip(txs) {
                table.insert(i, serialize(tx.as_ref()).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The saved mempool, in arrival order. Undecodable entries are skipped: the mempool is
    /// a cache, not consensus state.
    pub fn load_mempool(&self) -> Result<Vec<bitcoin::Transaction>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MEMPOOL)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (_, v) = item?;
            if let Ok(tx) = deserialize(v.value()) {
                out.push(tx);
            }
        }
        Ok(out)
    }

    /// The active tip, or `None` for a new database.
    pub fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let Some(v) = meta.get(TIP_KEY)? else {
            return Ok(None);
        };
        let bytes: [u8; 32] = v
            .value()
            .try_into()
            .map_err(|_| StoreError::Corrupt("tip"))?;
        Ok(Some(BlockHash::from_byte_array(bytes)))
    }

    /// Every block index entry.
    pub fn load_index(&self) -> Result<Vec<(BlockHash, IndexEntry)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCK_INDEX)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.push((
                BlockHash::from_byte_array(*k.value()),
                IndexEntry::decode(v.value())?,
            ));
        }
        Ok(out)
    }

    /// A stored block.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        let Some(v) = table.get(hash.as_byte_array())? else {
            return Ok(None);
        };
        deserialize(v.value())
            .map(Some)
            .map_err(|_| StoreError::Corrupt("block"))
    }

    /// A stored block in its consensus encoding, as stored: only its framing is checked
    /// (so that a damaged record shows here, as corrupt), nothing is decoded.
    pub fn encoded_block(&self, hash: &BlockHash) -> Result<Option<EncodedBlock>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        let Some(v) = table.get(hash.as_byte_array())? else {
            return Ok(None);
        };
        EncodedBlock::from_bytes(v.value().to_vec())
            .and_then(|block| block.check().map(|()| Some(block)))
            .map_err(|_| StoreError::Corrupt("block"))
    }

    /// The undo data of a connected block.
    pub fn undo(&self, hash: &BlockHash) -> Result<Option<Vec<Coin>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UNDO)?;
        let Some(v) = table.get(hash.as_byte_array())? else {
            return Ok(None);
        };
        decode_undo(v.value()).map(Some)
    }

    /// The active block confirming `txid`.
    pub fn tx_block(&self, txid: &Txid) -> Result<Option<BlockHash>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TXINDEX)?;
        Ok(table
            .get(txid.as_byte_array())?
            .map(|v| BlockHash::from_byte_array(*v.value())))
    }

    /// An unspent output of the active chain.
    pub fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UTXOS)?;
        let Some(v) = table.get(&outpoint_key(outpoint))? else {
            return Ok(None);
        };
        let (coin, rest) = Coin::decode_from(v.value())?;
        if !rest.is_empty() {
            return Err(StoreError::Corrupt("coin"));
        }
        Ok(Some(coin))
    }

    /// The whole UTXO set (for tests and consistency checks; it reads every entry).
    pub fn all_coins(&self) -> Result<Vec<(OutPoint, Coin)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UTXOS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            let (coin, _) = Coin::decode_from(v.value())?;
            out.push((outpoint_from_key(k.value()), coin));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{Amount, ScriptBuf};

    fn coin(v: u64) -> Coin {
        Coin {
            output: TxOut {
                value: Amount::from_sat(v),
                script_pubkey: ScriptBuf::from(vec![0x51]),
            },
            height: 7,
            is_coinbase: true,
        }
    }

    #[test]
    fn second_open_of_a_locked_datadir_fails_with_cores_message() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot obtain a lock on data directory {}; bitcoin-node is probably already running",
                dir.path().display()
            )
        );
    }

    /// A first start killed while the engine wrote the new file left one that every later
    /// start refused ("not a database"). The file is now built aside and renamed into place:
    /// what a crash leaves is the aside file, which the next start replaces.
    #[test]
    fn a_first_start_cut_short_does_not_leave_the_datadir_unusable() {
        let dir = tempfile::tempdir().unwrap();
        // What a crash leaves: a partly written file under the temporary name.
        fs::write(dir.path().join(format!("{DB_FILE}.new")), [0u8; 4096]).unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.tip().unwrap(), None);
        drop(store);
        assert!(!dir.path().join(format!("{DB_FILE}.new")).exists());
        assert!(dir.path().join(DB_FILE).exists());
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn batch_round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let hash = genesis.block_hash();
        let op = OutPoint {
            txid: Txid::from_byte_array([3; 32]),
            vout: 9,
        };
        let gone = OutPoint {
            txid: Txid::from_byte_array([4; 32]),
            vout: 0,
        };
        let entry = IndexEntry {
            header: genesis.header,
            height: 0,
            chain_work: genesis.header.work(),
            status: BlockStatus::Valid,
        };
        {
            let store = Store::open(dir.path()).unwrap();
            let mut b = Batch::default();
            b.put_block(&genesis);
            b.put_index(hash, entry);
            b.add_coin(op, coin(50));
            b.add_coin(gone, coin(1));
            b.put_undo(hash, &[coin(5), coin(6)]);
            b.set_tip(hash);
            store.commit(b).unwrap();
            let mut b = Batch::default();
            b.spend_coin(gone);
            store.commit(b).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.tip().unwrap(), Some(hash));
        assert_eq!(store.block(&hash).unwrap(), Some(genesis));
        assert_eq!(store.load_index().unwrap(), vec![(hash, entry)]);
        assert_eq!(store.coin(&op).unwrap(), Some(coin(50)));
        assert_eq!(store.coin(&gone).unwrap(), None);
        assert_eq!(store.all_coins().unwrap(), vec![(op, coin(50))]);
        assert_eq!(store.undo(&hash).unwrap(), Some(vec![coin(5), coin(6)]));
    }

    #[test]
    fn corrupt_undo_and_index_records_are_errors_not_panics() {
        assert!(decode_undo(&[]).is_err());
        assert!(decode_undo(&[255, 255, 255, 255]).is_err());
        assert!(decode_undo(&[1, 0, 0, 0, 1, 0, 0, 0, 7]).is_err());
        assert!(IndexEntry::decode(&[0; 10]).is_err());
        assert!(IndexEntry::decode(&[0xff; INDEX_LEN]).is_err());
    }
}
