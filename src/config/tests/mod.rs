//! Tests of the whole configuration pipeline, from text to [`Config`](super::Config).

mod desktop;
mod errors;
mod layers;
mod model;

use std::path::PathBuf;

use super::{Config, ConfigErrors, from_yaml_str};

/// An environment where nothing is set.
fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(yaml: &str) -> Result<Config, ConfigErrors> {
    from_yaml_str(yaml, &no_env)
}

/// The errors of a configuration that must fail, one rendered line each.
fn error_lines(result: Result<Config, ConfigErrors>) -> Vec<String> {
    match result {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.into_iter().map(|error| error.to_string()).collect(),
    }
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}
