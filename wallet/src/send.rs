//! Paying to an address: check the request, select trusted coins, sign with the wallet's
//! key, check the signatures with Bitcoin Core's script interpreter, and commit the
//! transaction to the wallet (as Core's `CommitTransaction`) before handing it out for
//! broadcasting. If the broadcast fails, [`Wallet::abandon_transaction`] releases its coins.

use std::str::FromStr;

use bdk_wallet::SignOptions;
use bdk_wallet::error::CreateTxError;
use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, FeeRate, OutPoint, Transaction, TxOut, Txid};

use crate::coins::{CoinClass, classify};
use crate::error::WalletError;
use crate::wallet::{State, Wallet};

/// The lowest fee rate refused as too high: 1 BTC/kvB (Bitcoin Core's wallet refuses from
/// there on too).
const MAX_FEE_RATE: FeeRate = FeeRate::from_sat_per_kwu(100_000_000 / 4);

impl Wallet {
    /// Builds and signs a transaction paying `amount` to `address` at `fee_rate`, commits it
    /// to the wallet as unconfirmed (its coins are spent, its change is trusted) and persists
    /// that, then returns it for broadcasting. `min_fee_rate` is the node's minimum relay fee
    /// rate (`Chain::relay_min_fee`).
    pub fn send_to_address(
        &self,
        address: &Address<NetworkUnchecked>,
        amount: Amount,
        fee_rate: FeeRate,
        min_fee_rate: FeeRate,
    ) -> Result<Transaction, WalletError> {
        if !address.is_valid_for_network(self.network()) {
            return Err(WalletError::WrongNetwork {
                address: address.assume_checked_ref().to_string(),
                expected: self.network(),
            });
        }
        let script = address.assume_checked_ref().script_pubkey();
        // Checked before the wallet's lock is taken: the transaction builder's sums of
        // amounts and fees panic on overflow, and a panic under the lock would poison it.
        if amount > Amount::MAX_MONEY {
            return Err(WalletError::AmountOutOfRange { amount });
        }
        if fee_rate >= MAX_FEE_RATE {
            return Err(WalletError::FeeRateTooHigh { fee_rate });
        }
        if fee_rate < min_fee_rate {
            return Err(WalletError::FeeRateTooLow {
                fee_rate,
                minimum: min_fee_rate,
            });
        }
        let threshold = script.minimal_non_dust();
        if amount < threshold {
            return Err(WalletError::Dust { amount, threshold });
        }
        self.mutate(|state| {
            let tx = build_and_sign(state, script, amount, fee_rate)?;
            let seen = state.next_seen_time();
            state.bdk.apply_unconfirmed_txs([(tx.clone(), seen)]);
            Ok(tx)
        })
    }

    /// Forgets an unconfirmed wallet transaction (Core's `abandontransaction`): its inputs
    /// are spendable again and it leaves the balances. For a send whose broadcast failed.
    pub fn abandon_transaction(&self, txid: Txid) -> Result<(), WalletError> {
        self.mutate(|state| {
            let unconfirmed = state
                .bdk
                .get_tx(txid)
                .is_some_and(|tx| !tx.chain_position.is_confirmed());
            if !unconfirmed {
                return Err(WalletError::UnknownTransaction { txid });
            }
            let seen = state.next_seen_time();
            state.bdk.apply_evicted_txs([(txid, seen)]);
            Ok(())
        })
    }
}

/// Parses an address of any network; [`Wallet::send_to_address`] checks the network.
pub fn parse_address(address: &str) -> Result<Address<NetworkUnchecked>, WalletError> {
    Address::from_str(address).map_err(|err| WalletError::InvalidAddress {
        address: address.to_owned(),
        reason: err.to_string(),
    })
}

/// Selects coins, builds, signs, finalises and verifies the payment.
/// The heaviest transaction nodes relay (Core's `MAX_STANDARD_TX_WEIGHT`).
const MAX_STANDARD_TX_WEIGHT: bitcoin::Weight = bitcoin::Weight::from_wu(400_000);

fn build_and_sign(
    state: &mut State,
    script: bitcoin::ScriptBuf,
    amount: Amount,
    fee_rate: FeeRate,
) -> Result<Transaction, WalletError> {
    let tip = state.tip_height();
    // Only trusted coins are candidates: the same rule as the trusted balance.
    let unspendable: Vec<OutPoint> = state
        .bdk
        .list_unspent()
        .filter(|output| classify(&state.bdk, output, tip) != CoinClass::Trusted)
        .map(|output| output.outpoint)
        .collect();
    let mut builder = state.bdk.build_tx();
    builder
        .add_recipient(script, amount)
        .fee_rate(fee_rate)
        .unspendable(unspendable);
    let mut psbt = builder.finish().map_err(|err| match err {
        CreateTxError::CoinSelection(short) => WalletError::InsufficientFunds {
            needed: short.needed,
            available: short.available,
        },
        other => WalletError::CreateTransaction {
            reason: other.to_string(),
        },
    })?;

    let sign_err = |reason: String| WalletError::Sign { reason };
    psbt.sign(state.keys.master(), state.bdk.secp_ctx())
        .map_err(|(_, errors)| sign_err(format!("{errors:?}")))?;
    let finalized = state
        .bdk
        .finalize_psbt(&mut psbt, SignOptions::default())
        .map_err(|err| sign_err(err.to_string()))?;
    if !finalized {
        return Err(sign_err("not every input could be finalized".to_owned()));
    }
    let tx = psbt.extract_tx().map_err(|err| sign_err(err.to_string()))?;
    // Core's wallet refuses it too ("Transaction too large"): the node would not relay it,
    // and checking each of its thousands of inputs' scripts would hold the wallet's lock
    // for as long as the square of its size.
    if tx.weight() > MAX_STANDARD_TX_WEIGHT {
        return Err(WalletError::CreateTransaction {
            reason: format!(
                "transaction too large: {} weight units, at most {} are relayed; send less, \
                 or in several payments",
                tx.weight().to_wu(),
                MAX_STANDARD_TX_WEIGHT.to_wu()
            ),
        });
    }
    // Never hand out a transaction the node would reject for its scripts.
    let graph = state.bdk.tx_graph();
    let spent = tx
        .input
        .iter()
        .map(|input| graph.get_txout(input.previous_output).cloned())
        .collect::<Option<Vec<TxOut>>>()
        .ok_or_else(|| sign_err("a spent output is unknown to the wallet".to_owned()))?;
    interfaces::script::verify_scripts(&tx, &spent)
        .map_err(|err| sign_err(format!("signature check failed: {err}")))?;
    Ok(tx)
}
