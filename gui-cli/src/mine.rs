//! `generatetoaddress` over the `Mining` interface: the node builds the template, this
//! process solves its proof of work, and `submit_solution` hands the solution back.

use bitcoin::{BlockHash, Script, block};
use interfaces::{BlockTemplate, ErrorCode, InterfaceError, Mining};

/// Mines `n` blocks whose coinbases pay to `coinbase_script`, one template at a time, and
/// returns their hashes. Stops at the first block the node does not accept.
pub(crate) fn generate(
    mining: &dyn Mining,
    coinbase_script: &Script,
    n: u32,
) -> Result<Vec<BlockHash>, InterfaceError> {
    let mut hashes = Vec::with_capacity(n.min(1024) as usize);
    for _ in 0..n {
        let template = mining.create_new_block(coinbase_script)?;
        hashes.push(mine_template(template.as_ref())?);
    }
    Ok(hashes)
}

/// Solves `template`'s proof of work and submits it unchanged otherwise.
fn mine_template(template: &dyn BlockTemplate) -> Result<BlockHash, InterfaceError> {
    let header = template.get_block_header()?;
    let solved = solve(header).ok_or_else(|| {
        InterfaceError::remote(
            ErrorCode::MISC_ERROR,
            "no nonce or time solves the template",
        )
    })?;
    let coinbase = template.get_coinbase_tx()?;
    if template.submit_solution(solved.version, solved.time, solved.nonce, &coinbase)? {
        Ok(solved.block_hash())
    } else {
        Err(InterfaceError::remote(
            ErrorCode::INTERNAL_ERROR,
            format!(
                "the node did not accept solved block {}",
                solved.block_hash()
            ),
        ))
    }
}

/// Searches nonces, then later times, for a header that meets its own target. On regtest
/// about two nonces are needed on average; the bound keeps a mainnet-difficulty template
/// from spinning forever (`None` then).
pub(crate) fn solve(mut header: block::Header) -> Option<block::Header> {
    const MAX_TIME_BUMPS: u32 = 16;
    let target = header.target();
    for _ in 0..MAX_TIME_BUMPS {
        for nonce in 0..=u32::MAX {
            header.nonce = nonce;
            if target.is_met_by(header.block_hash()) {
                return Some(header);
            }
            // Regtest needs a handful of tries; stop a hard target early rather than grind
            // through four billion hashes.
            if nonce == MAX_NONCE_TRIES {
                break;
            }
        }
        header.time = header.time.checked_add(1)?;
    }
    None
}

/// Nonces tried per header time before the time is bumped.
const MAX_NONCE_TRIES: u32 = 1 << 20;

#[cfg(test)]
mod tests {
    use bitcoin::{Network, constants::genesis_block};

    use super::*;

    #[test]
    fn solves_regtest_headers_without_touching_the_rest() {
        let mut header = genesis_block(Network::Regtest).header;
        for time_offset in 1..20 {
            header.nonce = 0;
            header.time += time_offset;
            let solved = solve(header).expect("regtest is easy");
            assert!(solved.validate_pow(solved.target()).is_ok());
            assert_eq!(
                (
                    solved.version,
                    solved.prev_blockhash,
                    solved.merkle_root,
                    solved.bits
                ),
                (
                    header.version,
                    header.prev_blockhash,
                    header.merkle_root,
                    header.bits
                )
            );
        }
    }
}
