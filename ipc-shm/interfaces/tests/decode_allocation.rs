//! A few bytes from a peer must not buy a large allocation while they are decoded.
//!
//! rust-bitcoin sizes a witness's buffer by the item count it reads. Decoded as they came,
//! the 58-byte transaction below (one input, whose witness claims four million items)
//! allocated 16 MB, and with 13 more bytes 32 MB, before the decoder found the items
//! missing. Our decoders walk a transaction's framing first and refuse it.
//!
//! The decoding runs in a child process (this binary again) whose address space is capped
//! a few MiB above what it already uses: an allocation of that size fails there, and the
//! child aborts instead of exiting 0.

use std::process::Command;

use bitcoin::{Block, Transaction};
use interfaces::EncodedBlock;
use interfaces::codec::{Decode, DecodeError};
use nix::sys::resource::{Resource, setrlimit};

/// The environment variable that makes the child test do the capped decoding.
const CHILD: &str = "DECODE_ALLOCATION_CHILD";

/// Version 2, segwit marker and flag, one input (a made-up outpoint, an empty script,
/// final sequence), no outputs, and a witness for the input that claims 4,000,000 items
/// (`fe 00093d00`), none of which follow.
const CLAIMS_FOUR_MILLION_ITEMS: &str = concat!(
    "02000000",
    "0001",
    "01",
    "1111111111111111111111111111111111111111111111111111111111111111",
    "00000000",
    "00",
    "ffffffff",
    "00",
    "fe00093d00",
);

/// Then a first item that claims 3,999,000 bytes (`fe 18053d00`), and eight bytes of it.
const AND_A_LONG_FIRST_ITEM: &str = "fe18053d000000000000000000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `body` as our codec frames a transaction or a block: a `u32` length, then the bytes.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn hostile_transactions() -> [Vec<u8>; 2] {
    let short = hex(CLAIMS_FOUR_MILLION_ITEMS);
    let mut long = short.clone();
    long.extend(hex(AND_A_LONG_FIRST_ITEM));
    [short, long]
}

/// A block of one such transaction after a header of zeros.
fn hostile_block(tx: &[u8]) -> Vec<u8> {
    let mut block = vec![0u8; 80];
    block.push(1);
    block.extend_from_slice(tx);
    block
}

fn decode_all() {
    for tx in hostile_transactions() {
        let decoded = Transaction::decode(&mut &framed(&tx)[..]);
        assert_eq!(
            decoded.err(),
            Some(DecodeError::UnexpectedEnd {
                what: "transaction"
            })
        );
        let block = hostile_block(&tx);
        let decoded = Block::decode(&mut &framed(&block)[..]);
        assert_eq!(
            decoded.err(),
            Some(DecodeError::UnexpectedEnd { what: "block" })
        );
        let encoded = EncodedBlock::from_bytes(block).expect("a header and a length in range");
        assert_eq!(
            encoded.to_block().err(),
            Some(DecodeError::UnexpectedEnd { what: "block" })
        );
    }
}

/// Bytes of address space this process has mapped.
fn mapped_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a VmSize line");
    kib * 1024
}

/// The check runs on the main thread, outside libtest, because a thread libtest starts
/// allocates from an arena that reserved 64 MiB of address space up front, and growth
/// within it passes any cap. (It is the crate's `[[test]]` without a harness.)
fn main() {
    if std::env::var_os(CHILD).is_some() {
        // Set the heap up with a real transaction, not the hostile ones: memory the
        // allocator kept from a large allocation would let it pass the cap unseen. From
        // then on, 8 MiB more address space than now is all there is.
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let coinbase = bitcoin::consensus::serialize(&genesis.txdata[0]);
        let decoded = Transaction::decode(&mut &framed(&coinbase)[..]);
        assert_eq!(decoded.ok().as_ref(), Some(&genesis.txdata[0]));
        let cap = mapped_bytes() + (8 << 20);
        setrlimit(Resource::RLIMIT_AS, cap, cap).expect("cap the address space");
        decode_all();
        return;
    }
    print!("test hostile_witness_counts_are_refused_without_a_large_allocation ... ");
    let status = Command::new(std::env::current_exe().expect("this test binary"))
        .env(CHILD, "1")
        .status()
        .expect("run the capped child");
    assert!(
        status.success(),
        "decoding in a capped address space failed: {status}"
    );
    // The same errors uncapped, here.
    decode_all();
    println!("ok");
}
