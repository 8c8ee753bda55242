//! The chain-state core of `bitcoin-node`: persistent block index and UTXO set, block and
//! transaction validation with Bitcoin Core's reject reasons, reorganisation to the chain with
//! most work, the mempool, and block templates for mining. Regtest only.
//!
//! [`ChainState`](chainstate::ChainState) is the object the IPC layer serves; the other
//! modules are its building blocks. Code map:
//!
//! | module | what |
//! | --- | --- |
//! | [`store`] | redb database: block index, blocks, undo data, UTXO set, tx index, tip; one write transaction per change |
//! | [`validation`] | consensus rules as functions, each failure a typed error with Core's reject reason |
//! | [`chainstate`] | accepting, connecting, disconnecting blocks; reorganisation; queries |
//! | [`mempool`] | unconfirmed transactions, policy rules, template selection |
//! | [`mining`] | block templates and solutions, `generate_to_script` |
//! | [`notify`] | ordered chain events, one bounded queue and delivery thread per subscriber |
//! | [`service`] | `NodeContext`: the `Init`, `Echo`, `Chain`, `Node`, `Mining`, `BlockTemplate` implementations |
//! | [`ipc`] | serving `Init` on the `-ipcfd` connection and on `-ipcbind` sockets |
//! | [`cli`] | Core-style command line (`-datadir=DIR`) |
//! | [`testdata`] | the mainnet block of `shared/data`, or a large regtest block, for tests and benches |

pub mod chainstate;
pub mod cli;
pub mod ipc;
pub mod mempool;
pub mod mining;
pub mod notify;
pub mod service;
pub mod store;
pub mod testdata;
pub mod validation;
