//! What the gateway keeps for its clients: handshake-era sessions and their store, the
//! numbered event logs that make their streams resumable, who each caller is (principals,
//! and the identity headers an upstream may be sent), and task records with their store.
//!
//! Nothing here does I/O towards upstreams or clients; the layers above read and write it.

pub mod budget;
pub mod client;
pub mod events;
pub mod identity;
pub mod principal;
pub mod shared;
pub mod store;
pub mod tasks;

pub use client::Session;
pub use principal::Principal;
pub use store::SessionStore;
