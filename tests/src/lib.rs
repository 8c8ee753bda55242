//! Helpers shared by the end-to-end tests: spawn the real binaries with a temporary
//! datadir, wait for readiness, kill them, and assert that nothing is left behind.
