//! Waiting: spin, then park on an eventfd doorbell (filled in next).
