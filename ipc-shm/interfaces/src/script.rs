//! Script verification as the node performs it, shared by every process that must agree with
//! it: the node checks blocks and mempool transactions, the wallet checks what it signed
//! before handing it out. Both use Bitcoin Core's own interpreter (libbitcoinconsensus) under
//! the same flags, so a wallet never broadcasts what its node would refuse for its scripts.

use std::fmt;

use bitcoin::{Transaction, TxOut};

/// The soft forks regtest has active from genesis, as libbitcoinconsensus takes them: P2SH,
/// DERSIG, NULLDUMMY, CHECKLOCKTIMEVERIFY, CHECKSEQUENCEVERIFY, WITNESS and TAPROOT.
pub const SCRIPT_FLAGS: u32 =
    bitcoinconsensus::VERIFY_ALL_PRE_TAPROOT | bitcoinconsensus::VERIFY_TAPROOT;

/// An input whose script does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptError {
    /// Index of the failing input.
    pub input: usize,
    /// What libbitcoinconsensus said. It names a failing script only `ERR_SCRIPT`: the
    /// library gives no finer reason.
    pub code: bitcoinconsensus::Error,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input {}: libbitcoinconsensus {:?}",
            self.input, self.code
        )
    }
}

impl std::error::Error for ScriptError {}

/// Verifies every input script of `tx` against the output it spends (`spent`, one per input,
/// in input order; any other count is `ERR_SPENT_OUTPUTS_MISMATCH`) with [`SCRIPT_FLAGS`]. The library is handed every spent output, which
/// Taproot's signature hash commits to (BIP341), so key-path and script-path spends are both
/// checked as Core checks them.
pub fn verify_scripts(tx: &Transaction, spent: &[TxOut]) -> Result<(), ScriptError> {
    let mismatch = |input| ScriptError {
        input,
        code: bitcoinconsensus::Error::ERR_SPENT_OUTPUTS_MISMATCH,
    };
    if spent.len() != tx.input.len() {
        return Err(mismatch(spent.len().min(tx.input.len())));
    }
    let bytes = bitcoin::consensus::serialize(tx);
    // Views of `spent` in the library's layout; `spent` outlives every call below. A length
    // or an amount that does not fit is refused rather than clamped, which would misdescribe
    // the output to the library (neither can come from a decoded transaction).
    let utxos = spent
        .iter()
        .enumerate()
        .map(|(input, out)| {
            Ok(bitcoinconsensus::Utxo {
                script_pubkey: out.script_pubkey.as_bytes().as_ptr(),
                script_pubkey_len: u32::try_from(out.script_pubkey.len())
                    .map_err(|_| mismatch(input))?,
                value: i64::try_from(out.value.to_sat()).map_err(|_| mismatch(input))?,
            })
        })
        .collect::<Result<Vec<_>, ScriptError>>()?;
    for (input, prev) in spent.iter().enumerate() {
        bitcoinconsensus::verify_with_flags(
            prev.script_pubkey.as_bytes(),
            prev.value.to_sat(),
            &bytes,
            Some(&utxos),
            input,
            SCRIPT_FLAGS,
        )
        .map_err(|code| ScriptError { input, code })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, TxIn, Witness, absolute, transaction};

    fn spending(inputs: usize) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![
                TxIn {
                    previous_output: OutPoint::null(),
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                };
                inputs
            ],
            output: Vec::new(),
        }
    }

    /// A spent-output list that does not match the inputs one for one is refused, rather
    /// than an empty list verifying nothing.
    #[test]
    fn spent_outputs_must_match_the_inputs() {
        let out = TxOut {
            value: Amount::from_sat(1),
            script_pubkey: ScriptBuf::new(),
        };
        let mismatch = |input| {
            Err(ScriptError {
                input,
                code: bitcoinconsensus::Error::ERR_SPENT_OUTPUTS_MISMATCH,
            })
        };
        assert_eq!(verify_scripts(&spending(2), &[]), mismatch(0));
        assert_eq!(
            verify_scripts(&spending(1), &[out.clone(), out]),
            mismatch(1)
        );
    }
}
