//! `docs/protocol.md` lists every interface method with its wire id (section 8.3), for
//! peers written in other languages. This keeps that table true: every row names a method
//! the code numbers so, and every method the code numbers is in a row.

use std::collections::BTreeSet;
use std::fmt::Debug;

use interfaces::remote::{
    BlockTemplateMethod, ChainMethod, ChainNotificationsMethod, EchoMethod, HandlerMethod,
    InitMethod, MiningMethod, NodeMethod, NotifyBlockTipMethod, TransactionChangedMethod,
    WalletLoaderMethod, WalletMethod,
};
use ipc_shm::call::MethodId;

/// Ids above every interface's last one.
const IDS: MethodId = 64;

/// (interface, id, method) for every method of an interface, as the code numbers them.
fn methods<M: Debug>(
    interface: &str,
    from_id: impl Fn(MethodId) -> Option<M>,
    out: &mut BTreeSet<(String, u32, String)>,
) {
    for id in 0..IDS {
        if let Some(m) = from_id(id) {
            out.insert((interface.to_owned(), id, snake_case(&format!("{m:?}"))));
        }
    }
}

fn snake_case(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i != 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The rows of section 8.3: `| **Interface** (…) | id | method | arguments | result |`,
/// the interface cell left empty on the rows after its first.
fn documented(doc: &str) -> BTreeSet<(String, u32, String)> {
    let start = doc
        .find("### 8.3 Methods")
        .expect("docs/protocol.md has section 8.3");
    let section = &doc[start..];
    let section = &section[..section[1..].find("\n### ").map_or(section.len(), |i| i + 1)];
    let mut rows = BTreeSet::new();
    let mut interface = String::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(id) = cells.get(1).and_then(|c| c.parse::<u32>().ok()) else {
            continue; // the heading and its rule
        };
        if let Some(name) = cells[0]
            .strip_prefix("**")
            .and_then(|c| c.split("**").next())
        {
            interface = name.to_owned();
        }
        assert!(
            !interface.is_empty(),
            "a method row before any interface: {line}"
        );
        assert!(
            rows.insert((interface.clone(), id, cells[2].to_owned())),
            "row listed twice: {line}"
        );
    }
    rows
}

#[test]
fn the_method_table_of_the_protocol_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md is readable");
    let mut code = BTreeSet::new();
    methods("Init", InitMethod::from_id, &mut code);
    methods("Echo", EchoMethod::from_id, &mut code);
    methods("Chain", ChainMethod::from_id, &mut code);
    methods(
        "ChainNotifications",
        ChainNotificationsMethod::from_id,
        &mut code,
    );
    methods("Node", NodeMethod::from_id, &mut code);
    methods("NotifyBlockTip", NotifyBlockTipMethod::from_id, &mut code);
    methods("WalletLoader", WalletLoaderMethod::from_id, &mut code);
    methods("Wallet", WalletMethod::from_id, &mut code);
    methods(
        "TransactionChanged",
        TransactionChangedMethod::from_id,
        &mut code,
    );
    methods("Mining", MiningMethod::from_id, &mut code);
    methods("BlockTemplate", BlockTemplateMethod::from_id, &mut code);
    methods("Handler", HandlerMethod::from_id, &mut code);
    let doc = documented(&doc);
    let missing: Vec<_> = code.difference(&doc).collect();
    let stale: Vec<_> = doc.difference(&code).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/protocol.md section 8.3 disagrees with the code:\n  not documented: {missing:?}\n  not in the code: {stale:?}"
    );
}
