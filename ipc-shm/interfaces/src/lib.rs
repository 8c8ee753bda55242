//! Bitcoin Core's process interfaces (`src/interfaces/`) as Rust traits, with proxies and
//! servers that carry them over an [`ipc_shm`] connection. Filled in by the interfaces issue.
