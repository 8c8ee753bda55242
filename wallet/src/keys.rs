//! The wallet's secret: one BIP32 master key drawn from the operating system's randomness,
//! from which both BIP84 descriptors are derived.
//!
//! bdk's database keeps only the *public* descriptors, so the master key is stored next to
//! them, in a table of our own in the same SQLite file and written in the same transaction
//! that creates the wallet: a wallet on disk always has its key. Signing uses the key
//! directly ([`bitcoin::Psbt::sign`]); bdk's own key store is not used.

use bdk_wallet::rusqlite::{self, OptionalExtension};
use bitcoin::bip32::Xpriv;
use bitcoin::secp256k1::rand::RngCore;
use bitcoin::secp256k1::rand::rngs::OsRng;
use bitcoin::{Network, NetworkKind};
use std::path::Path;

use crate::error::{WalletError, db_error};

/// The table holding the master key. One row, id 0.
const KEY_TABLE: &str = "bitcoin_shm_master_key";

/// A wallet's master key and the descriptors derived from it.
#[derive(Clone)]
pub(crate) struct WalletKeys {
    master: Xpriv,
    network: Network,
}

// The master key must never reach a log line.
impl std::fmt::Debug for WalletKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletKeys")
            .field(
                "fingerprint",
                &self
                    .master
                    .fingerprint(&bitcoin::secp256k1::Secp256k1::signing_only()),
            )
            .field("network", &self.network)
            .finish()
    }
}

impl WalletKeys {
    /// A fresh master key from 32 bytes of OS randomness (`getrandom`).
    pub(crate) fn generate(network: Network) -> Self {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let master = Xpriv::new_master(NetworkKind::from(network), &seed)
            .expect("a 32-byte seed is within BIP32's 16..=64 bytes");
        Self { master, network }
    }

    /// The master key, for signing.
    pub(crate) fn master(&self) -> &Xpriv {
        &self.master
    }

    /// `wpkh(xprv/84'/coin'/0'/0/*)`: the receiving keychain.
    pub(crate) fn external_descriptor(&self) -> String {
        self.descriptor(0)
    }

    /// `wpkh(xprv/84'/coin'/0'/1/*)`: the change keychain.
    pub(crate) fn internal_descriptor(&self) -> String {
        self.descriptor(1)
    }

    fn descriptor(&self, chain: u32) -> String {
        // BIP44 coin type: 0 for mainnet, 1 for every test network.
        let coin = u32::from(self.network != Network::Bitcoin);
        format!("wpkh({}/84'/{coin}'/0'/{chain}/*)", self.master)
    }

    /// Creates the key table and stores the key, inside the caller's transaction.
    pub(crate) fn store(&self, db_tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        db_tx.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {KEY_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 0), xprv TEXT NOT NULL)"
            ),
            [],
        )?;
        db_tx.execute(
            &format!("INSERT INTO {KEY_TABLE} (id, xprv) VALUES (0, ?1)"),
            [self.master.to_string()],
        )?;
        Ok(())
    }

    /// Whether the database already holds a key (so a wallet, or the start of one).
    pub(crate) fn exists(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
        let table: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [KEY_TABLE],
                |row| row.get(0),
            )
            .optional()?;
        Ok(table.is_some())
    }

    /// Reads the stored key; `Ok(None)` when the database has none.
    pub(crate) fn load(
        conn: &rusqlite::Connection,
        network: Network,
        path: &Path,
    ) -> Result<Option<Self>, WalletError> {
        let db = |err| db_error(path, err);
        if !Self::exists(conn).map_err(db)? {
            return Ok(None);
        }
        let text: Option<String> = conn
            .query_row(
                &format!("SELECT xprv FROM {KEY_TABLE} WHERE id = 0"),
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(db)?;
        let Some(text) = text else {
            return Ok(None);
        };
        let corrupt = |reason| WalletError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let master = text
            .parse::<Xpriv>()
            .map_err(|err| corrupt(format!("the stored key does not parse: {err}")))?;
        if master.network != NetworkKind::from(network) {
            return Err(corrupt(format!(
                "the stored key is for {:?} networks, the wallet runs on {network}",
                master.network
            )));
        }
        Ok(Some(Self { master, network }))
    }
}
