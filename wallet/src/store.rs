//! The wallets of one data directory, Bitcoin Core's `WalletLoader`: each wallet is a
//! directory `DATADIR/<chain>/wallets/<name>/` holding one SQLite database, `wallet.sqlite`
//! (bdk's tables plus the master key), private to the user (directories 0700, file 0600).

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bitcoin::Network;

use crate::error::WalletError;
use crate::wallet::Wallet;

/// The file name of a wallet's database inside its directory.
pub const DATABASE_FILE: &str = "wallet.sqlite";

/// The name of the wallet created on first start when `-wallet` is not given.
pub const DEFAULT_WALLET: &str = "default";

/// The sub-directory of the data directory for a network, as Bitcoin Core names it.
pub fn chain_dir_name(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "",
        Network::Testnet => "testnet3",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        _ => "regtest",
    }
}

/// The wallets directory of one data directory and network, and the wallets loaded from it.
#[derive(Debug)]
pub struct WalletStore {
    wallets_dir: PathBuf,
    network: Network,
    /// The wallets loaded, and those unloaded but still open.
    loaded: Mutex<Loaded>,
}

/// The wallets of a store that hold resources: loaded ones, and unloaded ones some handle
/// still keeps open.
#[derive(Debug, Default)]
struct Loaded {
    /// In load order.
    wallets: Vec<Arc<Wallet>>,
    /// Unloaded, perhaps still open: each holds its database connection and its history in
    /// memory until the last handle on it is dropped.
    retired: Vec<Weak<Wallet>>,
}

impl WalletStore {
    /// Opens (creating if needed) `datadir/<chain>/wallets/`.
    pub fn open(datadir: &Path, network: Network) -> Result<Self, WalletError> {
        let wallets_dir = datadir.join(chain_dir_name(network)).join("wallets");
        create_private_dir(&wallets_dir)?;
        Ok(Self {
            wallets_dir,
            network,
            loaded: Mutex::default(),
        })
    }

    /// Opens `datadir/<chain>/wallets/` if it exists, creating nothing: `None` if it does
    /// not (and so holds no wallet).
    pub fn open_existing(datadir: &Path, network: Network) -> Result<Option<Self>, WalletError> {
        let wallets_dir = datadir.join(chain_dir_name(network)).join("wallets");
        if !wallets_dir.is_dir() {
            return Ok(None);
        }
        Self::open(datadir, network).map(Some)
    }

    /// The directory holding the wallets.
    pub fn wallets_dir(&self) -> &Path {
        &self.wallets_dir
    }

    /// The network of every wallet of this store.
    pub fn network(&self) -> Network {
        self.network
    }

    /// Creates wallet `name` with a fresh key and loads it.
    pub fn create_wallet(&self, name: &str) -> Result<Arc<Wallet>, WalletError> {
        check_wallet_name(name)?;
        let mut loaded = self.loaded();
        if loaded.wallets.iter().any(|w| w.name() == name) {
            return Err(WalletError::AlreadyExists {
                name: name.to_owned(),
            });
        }
        check_room(&mut loaded)?;
        let dir = self.wallets_dir.join(name);
        create_private_dir(&dir)?;
        let wallet = Arc::new(Wallet::create(
            name,
            &dir.join(DATABASE_FILE),
            self.network,
        )?);
        // SQLite syncs the wallet's own directory; the entries naming it (and `wallets/`,
        // if this made it) must outlive a power cut too before the wallet is reported made.
        for synced in [Some(self.wallets_dir.as_path()), self.wallets_dir.parent()]
            .into_iter()
            .flatten()
        {
            fs::File::open(synced)
                .and_then(|d| d.sync_all())
                .map_err(|source| WalletError::Io {
                    path: synced.to_owned(),
                    source,
                })?;
        }
        tracing::info!(wallet = name, "created wallet");
        loaded.wallets.push(Arc::clone(&wallet));
        Ok(wallet)
    }

    /// Loads the existing wallet `name`.
    pub fn load_wallet(&self, name: &str) -> Result<Arc<Wallet>, WalletError> {
        check_wallet_name(name)?;
        let mut loaded = self.loaded();
        if loaded.wallets.iter().any(|w| w.name() == name) {
            return Err(WalletError::AlreadyLoaded {
                name: name.to_owned(),
            });
        }
        check_room(&mut loaded)?;
        let path = self.wallets_dir.join(name).join(DATABASE_FILE);
        if !path.is_file() {
            return Err(WalletError::NotFound {
                name: name.to_owned(),
            });
        }
        let wallet = Arc::new(Wallet::open(name, &path, self.network)?);
        tracing::info!(wallet = name, "loaded wallet");
        loaded.wallets.push(Arc::clone(&wallet));
        Ok(wallet)
    }

    /// Loads wallet `name` if it exists on disk, creates it otherwise: what the wallet
    /// process does on start with `-wallet` (or [`DEFAULT_WALLET`]).
    pub fn load_or_create_wallet(&self, name: &str) -> Result<Arc<Wallet>, WalletError> {
        match self.load_wallet(name) {
            Err(WalletError::NotFound { .. }) => self.create_wallet(name),
            other => other,
        }
    }

    /// Unloads wallet `name` (Core's `unloadwallet`): it leaves the loaded wallets, so it
    /// stops following the chain, and every handle on it still held fails from then on
    /// ([`WalletError::Unloaded`]). Its database stays open, and locked against a second
    /// loader, until the last handle is dropped: loading it again before that fails with
    /// [`WalletError::Locked`], and until then it keeps its place under
    /// [`MAX_LOADED_WALLETS`] (the place is for its descriptors and memory).
    pub fn unload_wallet(&self, name: &str) -> Result<(), WalletError> {
        let wallet = {
            let mut loaded = self.loaded();
            let at = loaded
                .wallets
                .iter()
                .position(|w| w.name() == name)
                .ok_or_else(|| WalletError::NotFound {
                    name: name.to_owned(),
                })?;
            let wallet = loaded.wallets.remove(at);
            loaded.retired.push(Arc::downgrade(&wallet));
            wallet
        };
        // Outside the list's lock: this waits for a change in progress on the wallet.
        wallet.unload();
        tracing::info!(wallet = name, "unloaded wallet");
        Ok(())
    }

    /// The wallet `name` if it is loaded.
    pub fn get_wallet(&self, name: &str) -> Option<Arc<Wallet>> {
        self.loaded()
            .wallets
            .iter()
            .find(|w| w.name() == name)
            .cloned()
    }

    /// Every loaded wallet, in load order.
    pub fn get_wallets(&self) -> Vec<Arc<Wallet>> {
        self.loaded().wallets.clone()
    }

    /// Names of the loaded wallets, in load order (bitcoin-cli's `listwallets`).
    pub fn list_wallets(&self) -> Vec<String> {
        self.loaded()
            .wallets
            .iter()
            .map(|w| w.name().to_owned())
            .collect()
    }

    /// Names of the wallets on disk, loaded or not, sorted (bitcoin-cli's `listwalletdir`).
    pub fn list_wallet_dir(&self) -> Result<Vec<String>, WalletError> {
        let io_err = |source| WalletError::Io {
            path: self.wallets_dir.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.wallets_dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if check_wallet_name(&name).is_ok() && entry.path().join(DATABASE_FILE).is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn loaded(&self) -> std::sync::MutexGuard<'_, Loaded> {
        // A push cannot be left half-done by a panic.
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Most wallets one process keeps loaded. Each holds a SQLite connection (three file
/// descriptors with its journal) and its transaction graph in memory: a front end that
/// keeps creating wallets would otherwise run the process out of descriptors, and then out
/// of connections.
pub const MAX_LOADED_WALLETS: usize = 128;

/// Refuses another wallet when [`MAX_LOADED_WALLETS`] are open: loaded, or unloaded with a
/// handle still on them.
fn check_room(loaded: &mut Loaded) -> Result<(), WalletError> {
    loaded.retired.retain(|w| w.strong_count() > 0);
    if loaded.wallets.len() + loaded.retired.len() >= MAX_LOADED_WALLETS {
        return Err(WalletError::TooManyWallets {
            limit: MAX_LOADED_WALLETS,
        });
    }
    Ok(())
}

/// Accepts names that are safe as one directory name on every file system we run on.
/// Checks that `name` can name a wallet: 1 to 64 of `A-Z a-z 0-9 . _ -`, not `.` or `..`
/// (it becomes a directory under `wallets/`).
pub fn check_wallet_name(name: &str) -> Result<(), WalletError> {
    let valid = (1..=64).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(WalletError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// `mkdir -p` with mode 0700 for the directories it creates.
fn create_private_dir(path: &Path) -> Result<(), WalletError> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(source) => Err(WalletError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}
