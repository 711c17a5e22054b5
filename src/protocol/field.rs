//! Looking up a member of a JSON object without hashing its name.
//!
//! `serde_json`'s maps keep their members in order (`preserve_order`), in an `IndexMap`
//! hashed with SipHash: each `get` hashes the key (~170 instructions), more than comparing it
//! with every name of the small objects a message is made of (`params`, `_meta`). The hot
//! path reads those a dozen times per request, so it looks them up here.

use serde_json::{Map, Value};

/// Up to this many members a linear scan costs less than hashing the key.
const SCAN_UP_TO: usize = 16;

/// The member `key` of `obj`.
pub fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if obj.len() <= SCAN_UP_TO {
        obj.iter().find_map(|(k, v)| (k == key).then_some(v))
    } else {
        obj.get(key)
    }
}

/// The member `key` of `value`, if it is an object that has one.
pub fn of<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    get(value.as_object()?, key)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    #[test]
    fn finds_what_get_finds_in_small_and_large_objects() {
        let mut big = serde_json::Map::new();
        for i in 0..40 {
            big.insert(format!("k{i}"), json!(i));
        }
        for value in [json!({"a": 1, "b": {"c": 2}, "": 3}), Value::Object(big)] {
            let obj = value.as_object().unwrap();
            for key in ["a", "b", "", "k0", "k39", "missing", "k40"] {
                assert_eq!(super::get(obj, key), obj.get(key), "{key}");
                assert_eq!(super::of(&value, key), value.get(key), "{key}");
            }
        }
        assert_eq!(super::of(&json!([1]), "a"), None);
    }
}
