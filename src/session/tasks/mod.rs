//! Task records (what a client may fetch about a task, in either era's shape) and the store
//! that keeps them: memory for one replica, Redis when replicas answer for each other.

pub mod record;
pub mod store;
