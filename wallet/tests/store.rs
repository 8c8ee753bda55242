//! The wallet store: creating, loading and listing wallets on disk, names, locking,
//! permissions, and addresses that are never handed out twice, also across restarts.

mod util;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::thread;

use bitcoin::Network;
use util::store;
use wallet::{DATABASE_FILE, MAX_LOADED_WALLETS, WalletError, WalletStore};

#[test]
fn create_load_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    assert_eq!(store.wallets_dir(), dir.path().join("regtest/wallets"));
    assert!(store.list_wallets().is_empty());

    let alice = store.create_wallet("alice").unwrap();
    store.create_wallet("bob").unwrap();
    assert_eq!(alice.name(), "alice");
    assert_eq!(alice.network(), Network::Regtest);
    assert_eq!(store.list_wallets(), ["alice", "bob"]);
    assert_eq!(store.list_wallet_dir().unwrap(), ["alice", "bob"]);
    assert!(Arc::ptr_eq(&store.get_wallet("alice").unwrap(), &alice));
    assert!(store.get_wallet("carol").is_none());

    match store.create_wallet("alice") {
        Err(WalletError::AlreadyExists { name }) => assert_eq!(name, "alice"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    match store.load_wallet("alice") {
        Err(WalletError::AlreadyLoaded { name }) => assert_eq!(name, "alice"),
        other => panic!("expected AlreadyLoaded, got {other:?}"),
    }
    match store.load_wallet("carol") {
        Err(WalletError::NotFound { name }) => assert_eq!(name, "carol"),
        other => panic!("expected NotFound, got {other:?}"),
    }

    // A restart: a new store finds both wallets on disk, loads only what it is asked to.
    drop((alice, store));
    let store = util::store(dir.path());
    assert!(store.list_wallets().is_empty());
    assert_eq!(store.list_wallet_dir().unwrap(), ["alice", "bob"]);
    store.load_wallet("bob").unwrap();
    assert_eq!(store.list_wallets(), ["bob"]);
    match store.create_wallet("alice") {
        Err(WalletError::AlreadyExists { name }) => assert_eq!(name, "alice"),
        other => panic!("expected AlreadyExists on disk, got {other:?}"),
    }
}

#[test]
fn default_wallet_is_created_once_then_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(dir.path())
        .load_or_create_wallet(wallet::DEFAULT_WALLET)
        .unwrap();
    let address = first.get_new_address().unwrap();
    drop(first);
    let again = store(dir.path())
        .load_or_create_wallet(wallet::DEFAULT_WALLET)
        .unwrap();
    // Same key: the address given out before is the wallet's own, and not given out again.
    assert_ne!(again.get_new_address().unwrap(), address);
    assert_eq!(
        store(dir.path()).list_wallet_dir().unwrap(),
        [wallet::DEFAULT_WALLET]
    );
}

#[test]
fn invalid_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let long = "x".repeat(65);
    for name in [
        "",
        ".",
        "..",
        "a/b",
        "../evil",
        "sp ace",
        "ü",
        "a\0b",
        long.as_str(),
    ] {
        match store.create_wallet(name) {
            Err(WalletError::InvalidName { name: got }) => assert_eq!(got, name),
            other => panic!("{name:?}: expected InvalidName, got {other:?}"),
        }
        assert!(matches!(
            store.load_wallet(name),
            Err(WalletError::InvalidName { .. })
        ));
    }
    assert!(store.create_wallet("a.b_c-D9").is_ok());
    assert!(store.create_wallet(&"y".repeat(64)).is_ok());
}

#[test]
fn a_wallet_is_held_by_one_loader_only() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(dir.path());
    first.create_wallet("alice").unwrap();
    // A second loader (another process in production) is refused while the first holds it.
    let second = store(dir.path());
    match second.load_wallet("alice") {
        Err(WalletError::Locked { path }) => {
            assert_eq!(path, first.wallets_dir().join("alice").join(DATABASE_FILE));
            let message = WalletError::Locked { path }.to_string();
            assert!(message.contains("in use by another process"), "{message}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    second.load_wallet("alice").unwrap();
}

#[test]
fn wallet_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store.create_wallet("alice").unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store.wallets_dir().join("alice")), 0o700);
    assert_eq!(
        mode(&store.wallets_dir().join("alice").join(DATABASE_FILE)),
        0o600
    );
}

#[test]
fn addresses_are_never_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = HashSet::new();
    for _restart in 0..3 {
        let store = store(dir.path());
        let wallet = store.load_or_create_wallet("alice").unwrap();
        for _ in 0..5 {
            let address = wallet.get_new_address().unwrap();
            assert_eq!(address.to_string().get(..6), Some("bcrt1q"), "{address}");
            assert!(
                seen.insert(address.clone()),
                "address {address} handed out twice"
            );
        }
    }
    assert_eq!(seen.len(), 15);
}

#[test]
fn concurrent_callers_get_distinct_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = store(dir.path()).create_wallet("alice").unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let wallet = Arc::clone(&wallet);
            thread::spawn(move || {
                (0..20)
                    .map(|_| wallet.get_new_address().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 160);
}

#[test]
fn other_networks_keep_their_own_wallets() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path()).create_wallet("alice").unwrap();
    let signet = WalletStore::open(dir.path(), Network::Signet).unwrap();
    assert_eq!(signet.wallets_dir(), dir.path().join("signet/wallets"));
    assert!(matches!(
        signet.load_wallet("alice"),
        Err(WalletError::NotFound { .. })
    ));
    let wallet = signet.create_wallet("alice").unwrap();
    assert!(
        wallet
            .get_new_address()
            .unwrap()
            .to_string()
            .starts_with("tb1q")
    );
}

#[test]
fn a_half_created_wallet_is_not_found_and_can_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // What a crash before the creating transaction committed leaves: an empty database.
    let wallet_dir = store.wallets_dir().join("alice");
    std::fs::create_dir_all(&wallet_dir).unwrap();
    std::fs::write(wallet_dir.join(DATABASE_FILE), b"").unwrap();
    assert!(matches!(
        store.load_wallet("alice"),
        Err(WalletError::NotFound { .. })
    ));
    let alice = store.load_or_create_wallet("alice").unwrap();
    assert!(alice.get_new_address().is_ok());
}

#[test]
fn a_damaged_database_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let wallet_dir = store.wallets_dir().join("alice");
    std::fs::create_dir_all(&wallet_dir).unwrap();
    let path = wallet_dir.join(DATABASE_FILE);
    std::fs::write(&path, [0x42u8; 4096]).unwrap();
    match store.load_wallet("alice") {
        Err(e @ WalletError::Database { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("expected Database, got {other:?}"),
    }
    assert!(store.list_wallets().is_empty());
}

#[test]
fn wallets_past_the_limit_are_refused_and_leave_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    for n in 0..MAX_LOADED_WALLETS {
        store.create_wallet(&format!("w{n}")).unwrap();
    }
    match store.create_wallet("one-more") {
        Err(
            e @ WalletError::TooManyWallets {
                limit: MAX_LOADED_WALLETS,
            },
        ) => {
            assert_eq!(e.to_string(), "too many wallets loaded (limit 128)");
        }
        other => panic!("expected TooManyWallets, got {other:?}"),
    }
    assert!(
        !store
            .list_wallet_dir()
            .unwrap()
            .contains(&"one-more".to_owned())
    );
    // Loading is refused the same way.
    drop(store);
    let store = util::store(dir.path());
    for n in 1..MAX_LOADED_WALLETS {
        store.load_wallet(&format!("w{n}")).unwrap();
    }
    store.create_wallet("last").unwrap();
    assert!(matches!(
        store.load_wallet("w0"),
        Err(WalletError::TooManyWallets { .. })
    ));
    // An unloaded wallet keeps its place while a handle on it lives (its database is
    // still open), and gives it up with the last handle.
    let last = store.get_wallet("last").unwrap();
    store.unload_wallet("last").unwrap();
    assert!(matches!(
        store.load_wallet("w0"),
        Err(WalletError::TooManyWallets { .. })
    ));
    drop(last);
    store.load_wallet("w0").unwrap();
}

#[test]
fn an_unloaded_wallet_refuses_its_old_handles_and_loads_again_once_they_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let alice = store.create_wallet("alice").unwrap();
    let first = alice.get_new_address().unwrap();
    let heard = alice
        .handle_transaction_changed(Arc::new(|_: &bitcoin::Txid, _| {}))
        .unwrap();
    store.unload_wallet("alice").unwrap();
    assert!(store.list_wallets().is_empty());
    assert!(store.get_wallet("alice").is_none());
    // The handle still held refuses everything: it must never write the database a
    // reloaded wallet owns.
    let unloaded = |r: Result<(), WalletError>| match r {
        Err(e @ WalletError::Unloaded { .. }) => {
            assert_eq!(
                e.to_string(),
                "wallet \"alice\" was unloaded; load it again for a new handle"
            );
        }
        other => panic!("expected Unloaded, got {other:?}"),
    };
    unloaded(alice.get_new_address().map(drop));
    unloaded(alice.get_balances().map(drop));
    unloaded(
        alice
            .handle_transaction_changed(Arc::new(|_: &bitcoin::Txid, _| {}))
            .map(drop),
    );
    // Its database stays locked while a handle lives.
    assert!(matches!(
        store.load_wallet("alice"),
        Err(WalletError::Locked { .. })
    ));
    drop((alice, heard));
    let alice = store.load_wallet("alice").unwrap();
    assert_ne!(alice.get_new_address().unwrap(), first);
    assert!(matches!(
        store.unload_wallet("bob"),
        Err(WalletError::NotFound { .. })
    ));
}
