//! The atomics the ring uses, reached through one module so that `loom` can stand in for
//! them under `--cfg loom` and model-check the index protocol.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering, fence};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering, fence};
