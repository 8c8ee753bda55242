//! The SPSC ring (filled in next).
