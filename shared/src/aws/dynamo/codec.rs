//! Items ⇄ values: key construction, attribute readers, JSON documents.
//!
//! Key parts are escaped (`%` → `%25`, `#` → `%23`) so a `#` inside a
//! workspace or user id can never make two different keys collide.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::model::EntryKey;
use crate::ports::{StoreError, StoreResult};

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) const PK: &str = "pk";
pub(super) const SK: &str = "sk";
/// The TTL attribute (epoch seconds) the table declares.
pub(super) const EXPIRES_AT: &str = "expires_at";

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// One component of a composite key, escaped.
pub(super) fn part(v: &str) -> String {
    v.replace('%', "%25").replace('#', "%23")
}

/// A sequence number as a sort key that orders like the number.
pub(super) fn seq_key(seq: u64) -> String {
    format!("{seq:020}")
}

/// The partition of one entry: its state, its claim, its journal.
pub(super) fn entry_pk(key: &EntryKey) -> String {
    format!("entry#{}", part(&key.to_string()))
}

/// The primary key of an item.
pub(super) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(item, name)),
    }
}

pub(super) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> StoreResult<T> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(item, name)),
        _ => Err(corrupt(item, name)),
    }
}

/// A JSON document held in a string attribute.
pub(super) fn decode<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> StoreResult<T> {
    serde_json::from_str(get_s(item, name)?)
        .map_err(|e| StoreError::Backend(format!("corrupt record {}: {name}: {e}", describe(item))))
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

fn corrupt(item: &Item, name: &str) -> StoreError {
    StoreError::Backend(format!(
        "corrupt record {}: attribute `{name}` missing or of the wrong type",
        describe(item)
    ))
}

fn describe(item: &Item) -> String {
    let get = |k| match item.get(k) {
        Some(AttributeValue::S(v)) => v.as_str(),
        _ => "?",
    };
    format!("{}/{}", get(PK), get(SK))
}

/// `v` as a JSON string attribute value (an index's keys on a state item).
pub(super) fn json_attr<T: serde::Serialize + ?Sized>(v: &T, what: &str) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| crate::aws::backend(what, e))
}

/// The JSON string attribute `name` of `item`, decoded: None when the item
/// has none (written before the attribute existed).
pub(super) fn json_attr_of<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
    what: &str,
) -> StoreResult<Option<T>> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => serde_json::from_str(v)
            .map(Some)
            .map_err(|e| crate::aws::backend(what, e)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_parts_never_collide() {
        let a = format!("{}#{}", part("a#b"), part("c"));
        let b = format!("{}#{}", part("a"), part("b#c"));
        assert_ne!(a, b);
        assert_eq!(part("100%#x"), "100%25%23x");
    }

    #[test]
    fn sequence_keys_sort_like_numbers() {
        assert!(seq_key(9) < seq_key(10));
        assert!(seq_key(99_999) < seq_key(100_000));
    }
}
