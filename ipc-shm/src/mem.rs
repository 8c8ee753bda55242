//! Raw access to shared memory (filled in next).
