//! The wallet's history in the shape of bitcoin-cli's `listtransactions`: one entry per
//! output paid to the wallet (`receive`, or `generate`/`immature` for coinbase) and one per
//! output paid away by a wallet transaction (`send`, negative, with the fee). Change outputs
//! are not listed, as in Bitcoin Core.

use std::fmt;

use bdk_wallet::KeychainKind;
use bdk_wallet::chain::ChainPosition;
use bitcoin::constants::COINBASE_MATURITY;
use bitcoin::{Address, Amount, BlockHash, SignedAmount, Txid};

use interfaces::{BlockRef, WalletTx};

use crate::coins::spends_only_own_coins;
use crate::error::WalletError;
use crate::wallet::Wallet;

/// What an entry records (bitcoin-cli's `category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Paid away by the wallet.
    Send,
    /// Paid to the wallet.
    Receive,
    /// A mature coinbase output paid to the wallet.
    Generate,
    /// A coinbase output paid to the wallet, not yet spendable.
    Immature,
}

impl Category {
    /// bitcoin-cli's name for the category.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Receive => "receive",
            Self::Generate => "generate",
            Self::Immature => "immature",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of `listtransactions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionEntry {
    /// The transaction.
    pub txid: Txid,
    /// The output this entry is about.
    pub vout: u32,
    /// The output's address; `None` for a script without an address form.
    pub address: Option<Address>,
    /// What the entry records.
    pub category: Category,
    /// Positive for receipts, negative for sends.
    pub amount: SignedAmount,
    /// The transaction's fee, negative, on `send` entries.
    pub fee: Option<SignedAmount>,
    /// 0 while unconfirmed.
    pub confirmations: u32,
    /// The block that confirms the transaction.
    pub block_hash: Option<BlockHash>,
    /// That block's height.
    pub block_height: Option<u32>,
}

impl Wallet {
    /// Every wallet transaction with what the wallet knows about it (Core's
    /// `interfaces::WalletTx`), oldest first: confirmed ones by height, then unconfirmed ones
    /// in the order they were first seen.
    pub fn get_wallet_txs(&self) -> Result<Vec<WalletTx>, WalletError> {
        let state = self.lock()?;
        let wallet = &state.bdk;
        Ok(oldest_first(wallet)
            .into_iter()
            .map(|wtx| {
                let tx = wtx.tx_node.tx.as_ref().clone();
                let (debit, credit) = wallet.sent_and_received(&tx);
                let fee = spends_only_own_coins(wallet, &tx)
                    .then(|| wallet.calculate_fee(&tx).ok())
                    .flatten();
                let owners: Vec<_> = tx
                    .output
                    .iter()
                    .map(|out| wallet.derivation_of_spk(out.script_pubkey.clone()))
                    .collect();
                let txout_is_mine = owners.iter().map(Option::is_some).collect();
                // Core's `OutputIsChange`: an output of our own transaction back to our
                // internal keychain.
                let txout_is_change = owners
                    .iter()
                    .map(|o| debit > Amount::ZERO && matches!(o, Some((KeychainKind::Internal, _))))
                    .collect();
                let (block, time) = match wtx.chain_position {
                    ChainPosition::Confirmed { anchor, .. } => (
                        Some(BlockRef {
                            hash: anchor.block_id.hash,
                            height: anchor.block_id.height,
                        }),
                        wtx.tx_node
                            .first_seen
                            .map_or(anchor.confirmation_time, |seen| {
                                seen.min(anchor.confirmation_time)
                            }),
                    ),
                    ChainPosition::Unconfirmed { first_seen, .. } => {
                        (None, first_seen.unwrap_or(0))
                    }
                };
                WalletTx {
                    tx,
                    credit,
                    debit,
                    fee,
                    txout_is_mine,
                    txout_is_change,
                    block,
                    time,
                }
            })
            .collect())
    }

    /// Every entry, oldest first: confirmed transactions by height, then unconfirmed ones.
    pub fn list_transactions(&self) -> Result<Vec<TransactionEntry>, WalletError> {
        let state = self.lock()?;
        let wallet = &state.bdk;
        let tip = state.tip_height();
        let network = self.network();

        let mut entries = Vec::new();
        for wtx in oldest_first(wallet) {
            let tx = &wtx.tx_node.tx;
            let txid = wtx.tx_node.txid;
            let (block_hash, block_height, confirmations) = match wtx.chain_position {
                ChainPosition::Confirmed { anchor, .. } => (
                    Some(anchor.block_id.hash),
                    Some(anchor.block_id.height),
                    tip.saturating_sub(anchor.block_id.height) + 1,
                ),
                ChainPosition::Unconfirmed { .. } => (None, None, 0),
            };
            let (sent, _) = wallet.sent_and_received(tx);
            let from_me = sent > Amount::ZERO;
            let fee = if from_me {
                wallet
                    .calculate_fee(tx)
                    .ok()
                    .and_then(|fee| fee.to_signed().ok())
                    .map(|fee| -fee)
            } else {
                None
            };
            for (vout, output) in (0u32..).zip(&tx.output) {
                let address = Address::from_script(&output.script_pubkey, network).ok();
                let value = output.value.to_signed().unwrap_or(SignedAmount::MAX);
                let entry = |category, amount, fee| TransactionEntry {
                    txid,
                    vout,
                    address: address.clone(),
                    category,
                    amount,
                    fee,
                    confirmations,
                    block_hash,
                    block_height,
                };
                let owner = wallet.derivation_of_spk(output.script_pubkey.clone());
                // Core's `OutputIsChange`: our own transaction paying our internal keychain.
                let change = from_me && matches!(owner, Some((KeychainKind::Internal, _)));
                if change {
                    continue;
                }
                if from_me {
                    entries.push(entry(Category::Send, -value, fee));
                }
                if owner.is_some() {
                    let category = if !tx.is_coinbase() {
                        Category::Receive
                    } else if confirmations > COINBASE_MATURITY {
                        Category::Generate
                    } else {
                        Category::Immature
                    };
                    entries.push(entry(category, value, None));
                }
            }
        }
        Ok(entries)
    }
}

/// The wallet's canonical transactions, oldest first.
fn oldest_first(wallet: &bdk_wallet::Wallet) -> Vec<bdk_wallet::WalletTx<'_>> {
    let mut txs: Vec<_> = wallet.transactions().collect();
    txs.sort_by_key(|tx| match tx.chain_position {
        ChainPosition::Confirmed { anchor, .. } => (0, anchor.block_id.height, 0),
        ChainPosition::Unconfirmed { first_seen, .. } => (1, 0, first_seen.unwrap_or(0)),
    });
    txs
}
