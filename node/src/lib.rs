//! The chain-state core of `bitcoin-node`: persistent block index and UTXO set, block and
//! transaction validation with Bitcoin Core's reject reasons, reorganisation to the chain with
//! most work, the mempool, and block templates for mining. Regtest only.
//!
//! [`ChainState`](chainstate::ChainState) is the object the IPC layer serves; everything else
//! is a building block of it.

pub mod chainstate;
pub mod cli;
pub mod mempool;
pub mod mining;
pub mod notify;
pub mod store;
pub mod testdata;
pub mod validation;
