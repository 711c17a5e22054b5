//! Gateway configuration: gateway.yaml (or a desktop-client `mcpServers` file) → [`Config`].
//!
//! The pipeline is `raw` (serde shapes, unknown keys refused) → `validate` (every problem
//! collected, each with its path) → `model` (the types the gateway runs on). `load` merges
//! the layers, lowest first: built-in defaults, the file, `MANIFOLD_*` environment variables,
//! command-line overrides. Upstreams come out sorted by name, so every listing built from them
//! has a deterministic order.
//!
//! - `${VAR}`, `${VAR:-default}` and `$${` are expanded in the file layer only; `MANIFOLD_*`
//!   values and overrides are literal. Error messages never contain environment values.
//! - Shape errors (unknown keys, wrong types) are reported first, every one of them; the
//!   semantic checks run once the shapes are right, and also report everything at once.
//! - [`Environment::from_process`] is the module's only read of the process environment, so
//!   tests pass an [`Environment`] or a lookup closure and never call `std::env::set_var`.

pub mod audit;
pub mod auth;
pub mod buffers;
mod error;
mod expand;
mod filter;
pub mod jwks;
pub mod limits;
mod load;
mod mcp_servers;
pub mod metrics;
mod model;
pub mod policy;
pub mod rate_limits;
mod raw;
pub mod redis;
mod scalar;
pub mod section;
pub mod tasks;
pub mod telemetry;
mod upstream;
mod validate;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, ConfigErrors};
pub use filter::{Pattern, PatternError};
pub use load::{Environment, Overrides, from_yaml_str, load, load_with_env};
pub use model::{
    Circuit, CollisionPolicy, Config, NameFilter, ProtocolMode, ResponseMode, Security,
    SessionMode, TaskMode, TransportConfig, UpstreamConfig,
};
