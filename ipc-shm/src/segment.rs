//! memfd segments (filled in next).
