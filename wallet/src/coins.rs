//! Which of the wallet's coins count as spendable. One rule serves both the balances and
//! coin selection, so "insufficient funds" always agrees with the trusted balance.

use bdk_wallet::LocalOutput;
use bdk_wallet::chain::ChainPosition;
use bitcoin::Transaction;
use bitcoin::constants::COINBASE_MATURITY;

/// The class of one unspent output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoinClass {
    /// Spendable now.
    Trusted,
    /// Unconfirmed and paid by someone else: may never confirm.
    UntrustedPending,
    /// A coinbase output with fewer than `COINBASE_MATURITY + 1` confirmations.
    Immature,
}

/// Classifies `output` with the wallet's chain tip at `tip_height`.
///
/// Maturity follows Bitcoin Core's wallet, which waits for 101 confirmations (one more than
/// consensus requires, so that a one-block reorg cannot invalidate a spend); bdk alone would
/// count a coinbase as mature at 100. An unconfirmed output is trusted when every input of
/// its transaction spends one of the wallet's own outputs, as Core's `CachedTxIsTrusted`.
pub(crate) fn classify(
    wallet: &bdk_wallet::Wallet,
    output: &LocalOutput,
    tip_height: u32,
) -> CoinClass {
    match output.chain_position {
        ChainPosition::Confirmed { anchor, .. } => {
            let depth = tip_height.saturating_sub(anchor.block_id.height) + 1;
            let is_coinbase = wallet
                .tx_graph()
                .get_tx(output.outpoint.txid)
                .is_some_and(|tx| tx.is_coinbase());
            if is_coinbase && depth <= COINBASE_MATURITY {
                CoinClass::Immature
            } else {
                CoinClass::Trusted
            }
        }
        ChainPosition::Unconfirmed { .. } => {
            let from_me = wallet
                .tx_graph()
                .get_tx(output.outpoint.txid)
                .is_some_and(|tx| spends_only_own_coins(wallet, &tx));
            if from_me {
                CoinClass::Trusted
            } else {
                CoinClass::UntrustedPending
            }
        }
    }
}

/// Whether every input of `tx` spends one of the wallet's outputs (false for a coinbase).
pub(crate) fn spends_only_own_coins(wallet: &bdk_wallet::Wallet, tx: &Transaction) -> bool {
    !tx.is_coinbase()
        && tx
            .input
            .iter()
            .all(|input| wallet.spk_index().txout(input.previous_output).is_some())
}
