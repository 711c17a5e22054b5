//! Sections owned by a pipeline stage (`auth`, `policy`, ...): each stage declares its own
//! serde shape and validation; this turns a section's raw value into that shape and reports
//! problems with their full dotted path (`auth.jwt.issuer: invalid type ...`).

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ConfigError;

/// Deserialises the section `key`; `null` (a key with nothing under it) means the defaults.
/// On error the problem is recorded and the defaults stand in, so checking continues.
pub fn section<T: DeserializeOwned + Default>(
    key: &str,
    raw: &Value,
    errors: &mut Vec<ConfigError>,
) -> T {
    if raw.is_null() {
        return T::default();
    }
    match serde_path_to_error::deserialize::<_, T>(raw) {
        Ok(parsed) => parsed,
        Err(error) => {
            let inner = error.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                key.to_owned()
            } else {
                format!("{key}.{inner}")
            };
            errors.push(ConfigError::new(path, error.into_inner().to_string()));
            T::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Shape {
        inner: Inner,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        count: u32,
    }

    #[test]
    fn errors_carry_the_full_path() {
        let mut errors = Vec::new();
        let parsed: Shape = section("demo", &json!({"inner": {"count": "x"}}), &mut errors);
        assert_eq!(parsed, Shape::default());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "demo.inner.count");
        assert!(errors[0].message.contains("invalid type"), "{}", errors[0]);
    }

    #[test]
    fn null_and_empty_mean_defaults() {
        let mut errors = Vec::new();
        let a: Shape = section("demo", &Value::Null, &mut errors);
        let b: Shape = section("demo", &json!({}), &mut errors);
        assert_eq!((a, b), (Shape::default(), Shape::default()));
        assert!(errors.is_empty());
    }

    #[test]
    fn unknown_keys_are_reported() {
        let mut errors = Vec::new();
        let _: Shape = section("demo", &json!({"inner": {"cuont": 1}}), &mut errors);
        assert_eq!(errors[0].path, "demo.inner.cuont");
        assert!(errors[0].message.contains("unknown field"), "{}", errors[0]);
    }
}

/// Serde helpers for stage sections: durations written as `30s`, `5m`, `1h30m` or an integer
/// number of seconds, as everywhere else in gateway.yaml.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    use crate::config::raw::RawDuration;
    use crate::config::scalar::parse_duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let raw = RawDuration::deserialize(d)?;
        parse_duration(&raw).map_err(|e| serde::de::Error::custom(e.0))
    }

    /// For `Option<Duration>` fields (`#[serde(default, with = "...::duration::option")]`).
    pub mod option {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<RawDuration>::deserialize(d)? {
                None => Ok(None),
                Some(raw) => parse_duration(&raw)
                    .map(Some)
                    .map_err(|e| serde::de::Error::custom(e.0)),
            }
        }
    }
}
