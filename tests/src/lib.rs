//! A place for end-to-end tests that belong to no one binary. It holds none yet: the
//! cross-process tests live beside the code they test (`ipc-shm/tests`, `node/tests`,
//! `wallet/tests`, and `gui-cli/tests`, which runs the real node, wallet and gui together).
