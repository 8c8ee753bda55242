//! Round trips of every codec on generated values, and decoders fed with hostile bytes.

use std::fmt::Debug;
use std::time::Duration;

use bitcoin::address::NetworkUnchecked;
use bitcoin::hashes::Hash;
use bitcoin::key::TweakedPublicKey;
use bitcoin::{
    Address, Amount, Block, BlockHash, CompactTarget, FeeRate, Network, OutPoint, PubkeyHash,
    ScriptBuf, ScriptHash, Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Txid, Witness, Work,
    absolute, block, transaction,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::*;
use crate::{
    Balances, BlockRef, BlockWhat, ChangeType, Coin, EncodedBlock, ErrorCode, FoundBlock,
    FoundTransaction, InterfaceError, MempoolInfo, RemovalReason, TipInfo, WalletTx,
};

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn arb_block_hash() -> impl Strategy<Value = BlockHash> {
    any::<[u8; 32]>().prop_map(BlockHash::from_byte_array)
}

fn arb_txid() -> impl Strategy<Value = Txid> {
    any::<[u8; 32]>().prop_map(Txid::from_byte_array)
}

fn arb_outpoint() -> impl Strategy<Value = OutPoint> {
    (arb_txid(), any::<u32>()).prop_map(|(txid, vout)| OutPoint { txid, vout })
}

fn arb_script() -> impl Strategy<Value = ScriptBuf> {
    arb_bytes(64).prop_map(ScriptBuf::from_bytes)
}

fn arb_txout() -> impl Strategy<Value = TxOut> {
    (any::<u64>(), arb_script()).prop_map(|(sat, script_pubkey)| TxOut {
        value: Amount::from_sat(sat),
        script_pubkey,
    })
}

fn arb_txin() -> impl Strategy<Value = TxIn> {
    (
        arb_outpoint(),
        arb_script(),
        any::<u32>(),
        vec(arb_bytes(40), 0..3),
    )
        .prop_map(|(previous_output, script_sig, sequence, witness)| TxIn {
            previous_output,
            script_sig,
            sequence: Sequence(sequence),
            witness: Witness::from_slice(&witness),
        })
}

/// Transactions with at least one input: a transaction without inputs has no unambiguous
/// consensus encoding (its empty input list reads as the segwit marker).
fn arb_tx() -> impl Strategy<Value = Transaction> {
    (
        any::<i32>(),
        any::<u32>(),
        vec(arb_txin(), 1..4),
        vec(arb_txout(), 0..4),
    )
        .prop_map(|(version, lock_time, input, output)| Transaction {
            version: transaction::Version(version),
            lock_time: absolute::LockTime::from_consensus(lock_time),
            input,
            output,
        })
}

fn arb_header() -> impl Strategy<Value = block::Header> {
    (
        any::<i32>(),
        arb_block_hash(),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(version, prev, merkle, time, bits, nonce)| block::Header {
            version: block::Version::from_consensus(version),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::from_byte_array(merkle),
            time,
            bits: CompactTarget::from_consensus(bits),
            nonce,
        })
}

fn arb_block() -> impl Strategy<Value = Block> {
    (arb_header(), vec(arb_tx(), 0..4)).prop_map(|(header, txdata)| Block { header, txdata })
}

fn arb_block_ref() -> impl Strategy<Value = BlockRef> {
    (arb_block_hash(), any::<u32>()).prop_map(|(hash, height)| BlockRef { hash, height })
}

fn arb_found_block() -> impl Strategy<Value = FoundBlock> {
    (
        arb_block(),
        any::<bool>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |(block, full, height, median_time_past, in_active_chain)| FoundBlock {
                header: block.header,
                height,
                median_time_past,
                in_active_chain,
                block: full.then(|| EncodedBlock::from(&block)),
            },
        )
}

fn arb_coin() -> impl Strategy<Value = Coin> {
    (arb_txout(), any::<Option<u32>>(), any::<bool>()).prop_map(|(txout, height, is_coinbase)| {
        Coin {
            txout,
            height,
            is_coinbase,
        }
    })
}

fn arb_network() -> impl Strategy<Value = Network> {
    prop_oneof![
        Just(Network::Bitcoin),
        Just(Network::Testnet),
        Just(Network::Regtest)
    ]
}

fn arb_address() -> impl Strategy<Value = Address<NetworkUnchecked>> {
    (arb_network(), 0..4u8, any::<[u8; 32]>()).prop_map(|(network, kind, bytes)| {
        let h20 = <[u8; 20]>::try_from(&bytes[..20]).expect("20 of 32 bytes");
        let address = match kind {
            0 => Address::p2pkh(PubkeyHash::from_byte_array(h20), network),
            1 => Address::p2sh_from_hash(ScriptHash::from_byte_array(h20), network),
            2 => Address::p2wsh(&ScriptBuf::from_bytes(bytes.to_vec()), network),
            _ => Address::p2tr_tweaked(
                TweakedPublicKey::dangerous_assume_tweaked(
                    bitcoin::XOnlyPublicKey::from_slice(&GENERATOR_X).expect("valid x-only key"),
                ),
                network,
            ),
        };
        address.into_unchecked()
    })
}

/// The x coordinate of secp256k1's generator, a valid x-only public key.
const GENERATOR_X: [u8; 32] = [
    0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87, 0x0b, 0x07,
    0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16, 0xf8, 0x17, 0x98,
];

fn arb_tip_info() -> impl Strategy<Value = TipInfo> {
    (
        any::<u32>(),
        arb_block_hash(),
        any::<u32>(),
        any::<u32>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(height, hash, time, median_time_past, work)| TipInfo {
            height,
            hash,
            time,
            median_time_past,
            chain_work: Work::from_be_bytes(work),
        })
}

fn arb_mempool_info() -> impl Strategy<Value = MempoolInfo> {
    any::<[u64; 6]>().prop_map(|[size, bytes, usage, fee, min, relay]| MempoolInfo {
        size,
        bytes,
        usage,
        total_fee: Amount::from_sat(fee),
        mempool_min_fee: FeeRate::from_sat_per_kwu(min),
        min_relay_tx_fee: FeeRate::from_sat_per_kwu(relay),
    })
}

fn arb_balances() -> impl Strategy<Value = Balances> {
    any::<[u64; 3]>().prop_map(|[t, u, i]| Balances {
        trusted: Amount::from_sat(t),
        untrusted_pending: Amount::from_sat(u),
        immature: Amount::from_sat(i),
    })
}

fn arb_wallet_tx() -> impl Strategy<Value = WalletTx> {
    (
        arb_tx(),
        any::<[u64; 2]>(),
        any::<Option<u64>>(),
        any::<u64>(),
        proptest::option::of(arb_block_ref()),
        any::<u64>(),
    )
        .prop_flat_map(|(tx, [credit, debit], fee, _, block, time)| {
            let outputs = tx.output.len();
            // Each output is someone else's (0), mine (1) or my change (2).
            vec(0..3u8, outputs..=outputs).prop_map(move |owners| WalletTx {
                tx: tx.clone(),
                credit: Amount::from_sat(credit),
                debit: Amount::from_sat(debit),
                fee: fee.map(Amount::from_sat),
                txout_is_mine: owners.iter().map(|&o| o != 0).collect(),
                txout_is_change: owners.iter().map(|&o| o == 2).collect(),
                block,
                time,
            })
        })
}

fn arb_removal_reason() -> impl Strategy<Value = RemovalReason> {
    prop_oneof![
        Just(RemovalReason::Expiry),
        Just(RemovalReason::SizeLimit),
        Just(RemovalReason::Reorg),
        Just(RemovalReason::Block),
        Just(RemovalReason::Conflict),
        Just(RemovalReason::Replaced),
    ]
}

fn arb_change_type() -> impl Strategy<Value = ChangeType> {
    prop_oneof![
        Just(ChangeType::New),
        Just(ChangeType::Updated),
        Just(ChangeType::Deleted)
    ]
}

fn arb_remote_error() -> impl Strategy<Value = InterfaceError> {
    (any::<i32>(), ".{0,40}")
        .prop_map(|(code, message)| InterfaceError::remote(ErrorCode(code), message))
}

/// `decode ∘ encode = id`, `encoded_len` is exact, and no strict prefix of the encoding
/// decodes.
fn round_trip<T: Encode + Decode + PartialEq + Debug>(value: &T) -> Result<(), TestCaseError> {
    let bytes = encode_to_vec(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(Some(bytes.len()), value.encoded_len().ok());
    let back: T = decode_from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);
    for cut in [bytes.len().saturating_sub(1), bytes.len() / 2] {
        if cut < bytes.len() {
            prop_assert!(
                decode_from_slice::<T>(&bytes[..cut]).is_err(),
                "prefix of {cut} decoded"
            );
        }
    }
    Ok(())
}

/// Decoding hostile bytes returns, and whatever decodes re-encodes to a value that
/// decodes to itself.
fn hostile<T: Encode + Decode + PartialEq + Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(value) = decode_from_slice::<T>(bytes) {
        round_trip(&value)?;
    }
    Ok(())
}

/// `valid` with the bytes at `flips` xored with their masks.
fn mutate(mut valid: Vec<u8>, flips: &[(usize, u8)]) -> Vec<u8> {
    if !valid.is_empty() {
        let len = valid.len();
        for &(at, mask) in flips {
            valid[at % len] ^= mask;
        }
    }
    valid
}

/// `EncodedBlock`'s framing walk and rust-bitcoin's `Block` decoder agree on `bytes`: both
/// refuse them, or both accept them and see the same header and transactions.
fn framing_agrees(bytes: &[u8]) -> Result<(), TestCaseError> {
    let framed = EncodedBlock::from_bytes(bytes.to_vec()).and_then(|b| b.check().map(|()| b));
    let decoded = bitcoin::consensus::deserialize::<Block>(bytes);
    match (framed, decoded) {
        (Err(_), Err(_)) => {}
        (Ok(framed), Ok(block)) => {
            prop_assert_eq!(framed.as_bytes(), bytes);
            prop_assert_eq!(framed.header(), &block.header);
            prop_assert_eq!(framed.tx_count(), Ok(block.txdata.len()));
            let txs = framed.tx_bytes().expect("the framing was checked");
            for (i, (raw, tx)) in txs.zip(&block.txdata).enumerate() {
                prop_assert_eq!(
                    raw,
                    &bitcoin::consensus::serialize(tx)[..],
                    "transaction {}",
                    i
                );
            }
            prop_assert_eq!(framed.to_block(), Ok(block));
        }
        (framed, decoded) => {
            return Err(TestCaseError::fail(format!(
                "the walk says {framed:?}, the decoder {:?}",
                decoded.map(|b| b.block_hash())
            )));
        }
    }
    Ok(())
}

/// Runs `hostile` on every decoder with the same bytes.
fn hostile_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    hostile::<u32>(bytes)?;
    hostile::<bool>(bytes)?;
    hostile::<String>(bytes)?;
    hostile::<Vec<u8>>(bytes)?;
    hostile::<Vec<String>>(bytes)?;
    hostile::<Duration>(bytes)?;
    hostile::<Option<u32>>(bytes)?;
    hostile::<Vec<BlockHash>>(bytes)?;
    hostile::<Vec<OutPoint>>(bytes)?;
    hostile::<Vec<TxMerkleNode>>(bytes)?;
    hostile::<Work>(bytes)?;
    hostile::<block::Version>(bytes)?;
    hostile::<block::Header>(bytes)?;
    hostile::<Transaction>(bytes)?;
    hostile::<Block>(bytes)?;
    hostile::<EncodedBlock>(bytes)?;
    hostile::<ScriptBuf>(bytes)?;
    hostile::<Address<NetworkUnchecked>>(bytes)?;
    hostile::<Option<BlockRef>>(bytes)?;
    hostile::<BlockWhat>(bytes)?;
    hostile::<Option<FoundBlock>>(bytes)?;
    hostile::<Vec<Option<Coin>>>(bytes)?;
    hostile::<RemovalReason>(bytes)?;
    hostile::<TipInfo>(bytes)?;
    hostile::<MempoolInfo>(bytes)?;
    hostile::<Option<FoundTransaction>>(bytes)?;
    hostile::<Balances>(bytes)?;
    hostile::<Vec<WalletTx>>(bytes)?;
    hostile::<ChangeType>(bytes)?;
    hostile::<InterfaceError>(bytes)?;
    hostile::<(Transaction, FeeRate)>(bytes)?;
    hostile::<(Address<NetworkUnchecked>, Amount, Option<FeeRate>)>(bytes)?;
    hostile::<(block::Version, u32, u32, Transaction)>(bytes)?;
    hostile::<(BlockHash, Duration)>(bytes)?;
    hostile::<Result<Option<FoundBlock>, InterfaceError>>(bytes)?;
    hostile::<Result<Vec<String>, InterfaceError>>(bytes)
}

proptest! {
    #[test]
    fn primitives_round_trip(
        a in any::<u32>(), b in any::<u64>(), c in any::<i32>(), d in any::<bool>(),
        s in ".{0,64}", bytes in arb_bytes(300), names in vec(".{0,8}", 0..5),
        secs in any::<u64>(), nanos in 0..1_000_000_000u32, o in any::<Option<u32>>(),
    ) {
        round_trip(&a)?;
        round_trip(&b)?;
        round_trip(&c)?;
        round_trip(&d)?;
        round_trip(&())?;
        round_trip(&s)?;
        round_trip(&bytes)?;
        round_trip(&names)?;
        round_trip(&Duration::new(secs, nanos))?;
        round_trip(&o)?;
        round_trip(&(a, b, c, d))?;
    }

    #[test]
    fn bitcoin_types_round_trip(
        hashes in vec(arb_block_hash(), 0..5), outpoints in vec(arb_outpoint(), 0..5),
        nodes in vec(any::<[u8; 32]>().prop_map(TxMerkleNode::from_byte_array), 0..5),
        txid in arb_txid(), sat in any::<u64>(), rate in any::<u64>(), work in any::<[u8; 32]>(),
        version in any::<i32>(), header in arb_header(), tx in arb_tx(), block in arb_block(),
        script in arb_script(), txout in arb_txout(), address in arb_address(),
    ) {
        round_trip(&hashes)?;
        round_trip(&outpoints)?;
        round_trip(&nodes)?;
        round_trip(&txid)?;
        round_trip(&Amount::from_sat(sat))?;
        round_trip(&FeeRate::from_sat_per_kwu(rate))?;
        round_trip(&Work::from_be_bytes(work))?;
        round_trip(&block::Version::from_consensus(version))?;
        round_trip(&header)?;
        round_trip(&tx)?;
        round_trip(&block)?;
        round_trip(&script)?;
        round_trip(&txout)?;
        round_trip(&address)?;
    }

    #[test]
    fn interface_values_round_trip(
        block_ref in proptest::option::of(arb_block_ref()), found in proptest::option::of(arb_found_block()),
        coins in vec(proptest::option::of(arb_coin()), 0..4), reason in arb_removal_reason(),
        tip in arb_tip_info(), mempool in arb_mempool_info(), balances in arb_balances(),
        found_tx in (arb_tx(), proptest::option::of(arb_block_ref())),
        wallet_txs in vec(arb_wallet_tx(), 0..3), change in arb_change_type(),
        error in arb_remote_error(), full in any::<bool>(),
    ) {
        round_trip(&block_ref)?;
        round_trip(&found)?;
        round_trip(&coins)?;
        round_trip(&reason)?;
        round_trip(&tip)?;
        round_trip(&mempool)?;
        round_trip(&balances)?;
        round_trip(&Some(FoundTransaction { tx: found_tx.0, block: found_tx.1 }))?;
        round_trip(&wallet_txs)?;
        round_trip(&change)?;
        round_trip(&error)?;
        round_trip(&if full { BlockWhat::Full } else { BlockWhat::Header })?;
        round_trip(&Ok::<_, InterfaceError>(tip))?;
        round_trip(&Err::<TipInfo, _>(error))?;
    }

    /// An `EncodedBlock` is byte for byte the `Block` it encodes, on the wire as in memory,
    /// and each decodes from the other's encoding.
    #[test]
    fn encoded_blocks_are_blocks_on_the_wire(block in arb_block()) {
        let encoded = EncodedBlock::from(&block);
        prop_assert_eq!(encoded.as_bytes(), &bitcoin::consensus::serialize(&block)[..]);
        let bytes = encode_to_vec(&encoded).expect("small block");
        prop_assert_eq!(bytes.len(), encoded.encoded_len().expect("small block"));
        prop_assert_eq!(&bytes, &encode_to_vec(&block).expect("small block"));
        let back: EncodedBlock = decode_from_slice(&bytes).expect("decodes");
        prop_assert_eq!(&back, &encoded);
        // The places `From<&Block>` computes are those the walk finds.
        prop_assert!(back.tx_bytes().expect("walks").eq(encoded.tx_bytes().expect("known")));
        prop_assert_eq!(back.to_block().expect("decodes"), block);
    }

    /// Flipped, cut or extended, a block's encoding is framed exactly as rust-bitcoin
    /// decodes it.
    #[test]
    fn the_framing_walk_agrees_with_the_consensus_decoder(
        block in arb_block(), flips in vec((any::<usize>(), 1..=255u8), 0..3),
        cut in any::<Option<usize>>(), extra in arb_bytes(3),
    ) {
        let valid = bitcoin::consensus::serialize(&block);
        framing_agrees(&valid)?;
        let mut bytes = mutate(valid, &flips);
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        framing_agrees(&bytes)?;
        bytes.extend_from_slice(&extra);
        framing_agrees(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in arb_bytes(600)) {
        hostile_all(&bytes)?;
    }

    #[test]
    fn mutated_encodings_never_panic(
        block in arb_block(), wallet_tx in arb_wallet_tx(), found in arb_found_block(),
        coin in arb_coin(), address in arb_address(),
        flips in vec((any::<usize>(), 1..=255u8), 1..4),
    ) {
        let valid = [
            encode_to_vec(&block).expect("small block"),
            encode_to_vec(&vec![wallet_tx]).expect("small list"),
            encode_to_vec(&Some(found)).expect("small block"),
            encode_to_vec(&vec![Some(coin)]).expect("small list"),
            encode_to_vec(&address).expect("short address"),
        ];
        for bytes in valid {
            hostile_all(&mutate(bytes, &flips))?;
        }
    }
}

/// A list, string, block or transaction announcing more than its limit is refused before
/// anything is allocated or read.
#[test]
fn lengths_over_the_limit_are_refused_up_front() {
    let over = |max: u32| (max + 1).to_le_bytes().to_vec();
    let too_long = |r: Result<(), DecodeError>, what: &str| match r {
        Err(DecodeError::TooLong { what: w, .. }) => assert_eq!(w, what),
        other => panic!("{what}: expected TooLong, got {other:?}"),
    };
    too_long(
        decode_from_slice::<Vec<u8>>(&over(MAX_BYTES)).map(drop),
        "byte string",
    );
    too_long(
        decode_from_slice::<String>(&over(MAX_STRING_BYTES)).map(drop),
        "string",
    );
    too_long(
        decode_from_slice::<Vec<BlockHash>>(&over(MAX_ITEMS)).map(drop),
        "list",
    );
    too_long(
        decode_from_slice::<Transaction>(&over(MAX_TX_BYTES)).map(drop),
        "transaction",
    );
    too_long(
        decode_from_slice::<Block>(&over(MAX_BLOCK_BYTES)).map(drop),
        "block",
    );
    too_long(
        decode_from_slice::<Address<NetworkUnchecked>>(&over(MAX_ADDRESS_BYTES)).map(drop),
        "address",
    );
    // At the limit but without the bytes: the input ends, nothing of that size exists.
    let mut at_limit = MAX_BYTES.to_le_bytes().to_vec();
    at_limit.extend_from_slice(&[7; 10]);
    assert_eq!(
        decode_from_slice::<Vec<u8>>(&at_limit),
        Err(DecodeError::UnexpectedEnd {
            what: "byte string"
        })
    );
}

#[test]
fn values_over_the_limit_are_not_encoded() {
    let name = "x".repeat(MAX_STRING_BYTES as usize + 1);
    assert_eq!(
        name.encoded_len(),
        Err(LimitError {
            what: "string",
            len: name.len() as u64,
            max: MAX_STRING_BYTES.into()
        })
    );
    // Error messages are cut instead, at a character boundary.
    let message = "é".repeat(MAX_STRING_BYTES as usize);
    let error = InterfaceError::remote(ErrorCode::MISC_ERROR, message);
    let back: InterfaceError =
        decode_from_slice(&encode_to_vec(&error).expect("cut")).expect("decodes");
    match back {
        InterfaceError::Remote { message, .. } => {
            assert_eq!(message.len(), MAX_STRING_BYTES as usize);
            assert!(message.chars().all(|c| c == 'é'));
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[test]
fn malformed_fields_are_rejected() {
    assert_eq!(
        decode_from_slice::<bool>(&[2]),
        Err(DecodeError::InvalidValue {
            what: "bool",
            value: 2
        })
    );
    assert_eq!(
        decode_from_slice::<RemovalReason>(&[6]),
        Err(DecodeError::InvalidValue {
            what: "removal reason",
            value: 6
        })
    );
    assert_eq!(
        decode_from_slice::<Option<u32>>(&[9, 0, 0, 0, 0]),
        Err(DecodeError::InvalidValue {
            what: "option tag",
            value: 9
        })
    );
    assert_eq!(
        decode_from_slice::<u32>(&[1, 2, 3, 4, 5]),
        Err(DecodeError::TrailingBytes { len: 1 })
    );
    let mut nanos = 0u64.to_le_bytes().to_vec();
    nanos.extend_from_slice(&1_000_000_000u32.to_le_bytes());
    assert!(matches!(
        decode_from_slice::<Duration>(&nanos),
        Err(DecodeError::InvalidValue { .. })
    ));
    assert!(matches!(
        decode_from_slice::<String>(&[2, 0, 0, 0, 0xff, 0xfe]),
        Err(DecodeError::InvalidUtf8 { .. })
    ));
    assert!(matches!(
        decode_from_slice::<Address<NetworkUnchecked>>(&[3, 0, 0, 0, b'b', b'c', b'1']),
        Err(DecodeError::InvalidAddress { .. })
    ));
}

/// A transaction whose announced length is longer than its consensus encoding leaves
/// bytes the decoder must not skip silently; a shorter one cuts it off.
#[test]
fn transaction_length_must_match_its_encoding() {
    let tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn::default()],
        output: vec![TxOut {
            value: Amount::from_sat(5000),
            script_pubkey: ScriptBuf::new(),
        }],
    };
    let mut bytes = encode_to_vec(&tx).expect("small");
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));

    let mut longer = bytes.clone();
    longer[..4].copy_from_slice(&(len + 1).to_le_bytes());
    longer.push(0);
    assert_eq!(
        decode_from_slice::<Transaction>(&longer),
        Err(DecodeError::TrailingBytes { len: 1 })
    );

    bytes[..4].copy_from_slice(&(len - 1).to_le_bytes());
    bytes.pop();
    assert_eq!(
        decode_from_slice::<Transaction>(&bytes),
        Err(DecodeError::UnexpectedEnd {
            what: "transaction"
        })
    );
}

#[test]
fn found_block_with_a_foreign_block_is_rejected() {
    let block = Block {
        header: block::Header {
            version: block::Version::TWO,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1,
            bits: CompactTarget::from_consensus(0x207fffff),
            nonce: 0,
        },
        txdata: vec![],
    };
    let mut found = FoundBlock {
        header: block.header,
        height: 0,
        median_time_past: 0,
        in_active_chain: true,
        block: Some(EncodedBlock::from(&block)),
    };
    found.header.nonce = 1;
    let bytes = encode_to_vec(&found).expect("small");
    assert!(matches!(
        decode_from_slice::<FoundBlock>(&bytes),
        Err(DecodeError::InvalidValue {
            what: "found block's block header",
            ..
        })
    ));
}

/// The real 1.38 MB mainnet block of `DESIGN.md` round-trips when it is present
/// (`BITCOIN_SHM_BLOCK` names it, or it sits in `/work/shared/data`).
#[test]
fn mainnet_block_round_trips() {
    const NAME: &str =
        "mainnet_block_000000000000000000000c835b2adcaedc20fdf6ee440009c249452c726dafae.raw";
    let path = std::env::var_os("BITCOIN_SHM_BLOCK")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new("/work/shared/data").join(NAME));
    let Ok(raw) = std::fs::read(&path) else {
        eprintln!(
            "{} not found; the mainnet block round trip did not run",
            path.display()
        );
        return;
    };
    let block: Block = bitcoin::consensus::deserialize(&raw).expect("the sample block decodes");
    assert_eq!(block.txdata.len(), 2500);
    let bytes = encode_to_vec(&block).expect("within the block limit");
    assert_eq!(&bytes[4..], &raw[..]);
    let back: Block = decode_from_slice(&bytes).expect("decodes");
    assert_eq!(back, block);
    let encoded: EncodedBlock = decode_from_slice(&bytes).expect("decodes");
    assert_eq!(encoded.as_bytes(), &raw[..]);
    assert_eq!(encoded.tx_count(), Ok(2500));
    assert_eq!(encoded.to_block().expect("decodes"), block);
    // The walk and the decoder agree on the real block with a byte changed or cut short,
    // at 48 places spread over it (a fixed xorshift sequence).
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..48 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let at = (state % raw.len() as u64) as usize;
        let mut flipped = raw.clone();
        flipped[at] ^= (state >> 56) as u8 | 1;
        framing_agrees(&flipped).unwrap_or_else(|e| panic!("byte {at} flipped: {e}"));
        framing_agrees(&raw[..at]).unwrap_or_else(|e| panic!("cut at {at}: {e}"));
    }
}

/// `Input::read_vec` appends exactly the bytes asked for, or nothing when the input ends
/// first; a reader that cannot tell how much it holds reserves at most `PREALLOC_BYTES`
/// ahead of what it read, whatever length was announced.
#[test]
fn read_vec_appends_what_the_input_holds_and_no_more() {
    /// An `io::Read` that is not a slice, so it takes the default `read_vec`.
    struct Trickle<'a>(&'a [u8]);
    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(3);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    impl Input for Trickle<'_> {}

    let data: Vec<u8> = (0..10).collect();
    let mut slice = &data[..];
    let mut out = vec![0xff];
    slice.read_vec(4, &mut out).expect("four bytes are there");
    assert_eq!(
        (out.as_slice(), slice),
        (&[0xff, 0, 1, 2, 3][..], &data[4..])
    );
    let err = slice.read_vec(7, &mut out).expect_err("six bytes are left");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(
        (out.len(), slice.len()),
        (5, 6),
        "a short slice appends and consumes nothing"
    );

    let mut trickle = Trickle(&data);
    let mut out = vec![0xff];
    trickle.read_vec(10, &mut out).expect("ten bytes are there");
    assert_eq!(out[1..], data[..]);
    let mut trickle = Trickle(&data);
    let mut out = vec![0xff];
    let err = trickle
        .read_vec(MAX_BYTES as usize, &mut out)
        .expect_err("ten bytes, not 64 MiB");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(out, [0xff], "what was read of a short input is taken back");
    assert!(
        out.capacity() <= 1 + PREALLOC_BYTES,
        "reserved {} for ten bytes",
        out.capacity()
    );
}

/// The framing walk and the consensus decoder on the encodings that only a crafted block
/// holds: segwit markers without witnesses or with an unknown flag, compact sizes in a
/// longer form than needed, an empty transaction list, bytes after the last transaction.
#[test]
fn the_framing_walk_agrees_on_crafted_blocks() {
    let header = [0u8; 80];
    let block = |count: &[u8], txs: &[&[u8]]| {
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(count);
        for tx in txs {
            bytes.extend_from_slice(tx);
        }
        bytes
    };
    let version = [2, 0, 0, 0];
    let lock_time = [0, 0, 0, 0];
    let input = [[0u8; 36].as_slice(), &[0], &[0xff; 4]].concat();
    let output = [[0u8; 8].as_slice(), &[1, 0x51]].concat();
    let legacy = [&version[..], &[1], &input, &[1], &output, &lock_time].concat();
    let segwit = |flag: u8, witness: &[u8]| {
        [
            &version[..],
            &[0, flag, 1],
            &input,
            &[1],
            &output,
            witness,
            &lock_time,
        ]
        .concat()
    };
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("no transactions", block(&[0], &[]), true),
        ("a legacy transaction", block(&[1], &[&legacy]), true),
        (
            "a witness",
            block(&[1], &[&segwit(1, &[1, 2, 0xaa, 0xbb])]),
            true,
        ),
        (
            "an empty witness item",
            block(&[1], &[&segwit(1, &[1, 0])]),
            true,
        ),
        (
            "segwit, no witness",
            block(&[1], &[&segwit(1, &[0])]),
            false,
        ),
        ("segwit flag 2", block(&[1], &[&segwit(2, &[1, 0])]), false),
        (
            "segwit, no inputs",
            block(
                &[1],
                &[&[&version[..], &[0, 1, 0, 1], &output, &lock_time].concat()],
            ),
            true,
        ),
        (
            "a count in three bytes",
            block(&[0xfd, 1, 0], &[&legacy]),
            false,
        ),
        (
            "a count in five bytes",
            block(&[0xfe, 1, 0, 0, 0], &[&legacy]),
            false,
        ),
        (
            "a count in nine bytes",
            block(&[0xff, 1, 0, 0, 0, 0, 0, 0, 0], &[&legacy]),
            false,
        ),
        (
            "a trailing byte",
            [block(&[1], &[&legacy]), vec![0]].concat(),
            false,
        ),
        (
            "a huge count",
            block(&[0xff, 0, 0, 0, 0, 1, 0, 0, 0], &[&legacy]),
            false,
        ),
        ("a short header", header[..79].to_vec(), false),
    ];
    for (what, bytes, valid) in cases {
        let checked = EncodedBlock::from_bytes(bytes.clone()).and_then(|b| b.check());
        assert_eq!(checked.is_ok(), valid, "{what}");
        framing_agrees(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let long = vec![0; MAX_BLOCK_BYTES as usize + 1];
    assert!(matches!(
        EncodedBlock::from_bytes(long),
        Err(DecodeError::TooLong { what: "block", .. })
    ));
}

/// A block whose framing is broken past its header is kept, and every accessor that needs
/// the framing fails with the walk's error, from the first use on (the outcome is kept);
/// the header and the bytes are there all along.
#[test]
fn a_broken_framing_fails_each_use_after_the_header() {
    let mut bytes = vec![7u8; 80];
    // Two transactions announced, one byte of them present.
    bytes.extend_from_slice(&[2, 1]);
    let block = EncodedBlock::from_bytes(bytes.clone()).expect("a header and a length in range");
    assert_eq!(block.as_bytes(), &bytes[..]);
    assert_eq!(block.header().nonce, u32::from_le_bytes([7; 4]));
    let ends_early = DecodeError::UnexpectedEnd { what: "block" };
    for _ in 0..2 {
        assert_eq!(block.check(), Err(ends_early.clone()));
        assert_eq!(block.tx_count(), Err(ends_early.clone()));
        assert!(block.tx_bytes().is_err());
        assert_eq!(
            block.transaction(0).map(|t| t.map(drop)),
            Some(Err(ends_early.clone()))
        );
        assert!(
            block.transaction(5).is_some_and(|t| t.is_err()),
            "no count is known"
        );
        assert!(block.to_block().is_err());
    }
    assert_eq!(
        EncodedBlock::from_bytes(vec![0; 79]),
        Err(DecodeError::UnexpectedEnd { what: "block" })
    );
}

/// A block kept in the buffer of the message it came in (from an offset) is its bytes from
/// there on, and gives back exactly those.
#[test]
fn a_block_kept_in_its_message_buffer_is_its_bytes() {
    let block = EncodedBlock::from(&bitcoin::constants::genesis_block(
        bitcoin::Network::Regtest,
    ));
    let mut message = vec![9u8; 13];
    message.extend_from_slice(block.as_bytes());
    let kept = EncodedBlock::from_parts(message, 13).expect("a block after 13 bytes");
    assert_eq!(kept, block);
    assert_eq!(kept.tx_count(), block.tx_count());
    assert_eq!(
        kept.clone().into_bytes(),
        block.as_bytes(),
        "shared: copied"
    );
    assert_eq!(
        kept.into_bytes(),
        block.as_bytes(),
        "owned: moved to the front"
    );
}
