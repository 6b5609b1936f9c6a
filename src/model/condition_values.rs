//! The values a condition read for one instance (`Evidence::values`): its
//! columns, history results by call and `source.column` values, by name.
//!
//! A large cycle holds one per firing instance: as a `BTreeMap` a map of one
//! or two numbers took a 368-byte node and a key string apiece (37 MB at
//! 100,000 instances). Here it is one small sorted vector, and its keys are
//! texts shared with the rule (a clone of a key is a reference count). Must
//! never hold anything but numbers the condition read.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Numbers by name, in name order, each name once.
#[derive(Clone, Default, PartialEq)]
pub struct ConditionValues(Vec<(Arc<str>, f64)>);

impl ConditionValues {
    /// No values.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Sets `key` to `value` (replacing what it held).
    pub fn insert(&mut self, key: impl Into<Arc<str>>, value: f64) {
        let key = key.into();
        match self.0.binary_search_by(|(k, _)| (**k).cmp(&*key)) {
            Ok(at) => self.0[at].1 = value,
            Err(at) => self.0.insert(at, (key, value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&f64> {
        (self.0.binary_search_by(|(k, _)| (**k).cmp(key)))
            .ok()
            .map(|at| &self.0[at].1)
    }

    /// The values in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &f64)> {
        self.into_iter()
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// It holds no value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a ConditionValues {
    type Item = (&'a str, &'a f64);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (Arc<str>, f64)>, fn(&'a (Arc<str>, f64)) -> (&'a str, &'a f64)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (&**k, v))
    }
}

impl std::fmt::Debug for ConditionValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<Arc<str>>> FromIterator<(K, f64)> for ConditionValues {
    fn from_iter<I: IntoIterator<Item = (K, f64)>>(iter: I) -> Self {
        let mut values = Self::new();
        for (k, v) in iter {
            values.insert(k, v);
        }
        values
    }
}

impl<K: Into<Arc<str>>, const N: usize> From<[(K, f64); N]> for ConditionValues {
    fn from(pairs: [(K, f64); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl Serialize for ConditionValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for ConditionValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, f64>::deserialize(deserializer).map(|map| map.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_a_map_in_name_order() {
        let mut v: ConditionValues = [("spend", 2.0), ("churn", 0.5)].into();
        v.insert("spend", 3.0);
        v.insert(String::from("arr"), 1.0);
        assert_eq!(v.len(), 3);
        assert_eq!(v.get("spend"), Some(&3.0));
        assert_eq!(v.get("missing"), None);
        assert_eq!(v.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["arr", "churn", "spend"]);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"arr":1.0,"churn":0.5,"spend":3.0}"#);
        let back: ConditionValues = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert_eq!(format!("{v:?}"), r#"{"arr": 1.0, "churn": 0.5, "spend": 3.0}"#);
        assert!(ConditionValues::new().is_empty());
    }

    #[test]
    fn a_shared_key_is_not_copied() {
        let key: Arc<str> = Arc::from("score");
        let mut v = ConditionValues::new();
        v.insert(Arc::clone(&key), 1.0);
        assert_eq!(Arc::strong_count(&key), 2);
    }
}
