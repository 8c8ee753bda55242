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
/// in input order) with [`SCRIPT_FLAGS`]. The library is handed every spent output, which
/// Taproot's signature hash commits to (BIP341), so key-path and script-path spends are both
/// checked as Core checks them.
pub fn verify_scripts(tx: &Transaction, spent: &[TxOut]) -> Result<(), ScriptError> {
    let bytes = bitcoin::consensus::serialize(tx);
    // Views of `spent` in the library's layout; `spent` outlives every call below. A script
    // is bounded by the transaction it was decoded from, far below `u32::MAX` bytes, and an
    // amount by the 21 million coins.
    let utxos: Vec<bitcoinconsensus::Utxo> = spent
        .iter()
        .map(|out| bitcoinconsensus::Utxo {
            script_pubkey: out.script_pubkey.as_bytes().as_ptr(),
            script_pubkey_len: u32::try_from(out.script_pubkey.len()).unwrap_or(u32::MAX),
            value: i64::try_from(out.value.to_sat()).unwrap_or(i64::MAX),
        })
        .collect();
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
