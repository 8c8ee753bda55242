//! Keys, scripts and signed transactions of the test world.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    Address, Amount, CompressedPublicKey, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Witness, absolute, ecdsa, transaction,
};

/// A P2WPKH key of the test world, derived from a one-byte seed.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    secret: SecretKey,
    public: CompressedPublicKey,
}

impl Key {
    pub(crate) fn new(seed: u8) -> Key {
        let secret =
            SecretKey::from_slice(&[seed.max(1); 32]).expect("a small constant is a valid key");
        let public = CompressedPublicKey(secret.public_key(&Secp256k1::signing_only()));
        Key { secret, public }
    }

    pub(crate) fn script(&self) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&self.public.wpubkey_hash())
    }

    pub(crate) fn address(&self, network: Network) -> Address {
        Address::p2wpkh(&self.public, network)
    }
}

/// A version-2 transaction spending `coins` (all paying to `signer`) to `outputs`, with a
/// real P2WPKH signature per input.
pub(crate) fn signed_tx(
    signer: &Key,
    coins: &[(OutPoint, Amount)],
    outputs: Vec<TxOut>,
) -> Transaction {
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: coins
            .iter()
            .map(|(outpoint, _)| TxIn {
                previous_output: *outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    };
    let secp = Secp256k1::signing_only();
    let script = signer.script();
    let mut cache = SighashCache::new(&mut tx);
    for (index, (_, value)) in coins.iter().enumerate() {
        let sighash = cache
            .p2wpkh_signature_hash(index, &script, *value, EcdsaSighashType::All)
            .expect("the input exists and the script is P2WPKH");
        let message = Message::from_digest(sighash.to_byte_array());
        let signature = ecdsa::Signature {
            signature: secp.sign_ecdsa(&message, &signer.secret),
            sighash_type: EcdsaSighashType::All,
        };
        *cache.witness_mut(index).expect("the input exists") =
            Witness::p2wpkh(&signature, &signer.public.0);
    }
    tx
}
