//! A row's labels (its text columns) and values (its numbers), shared
//! instead of copied.
//!
//! One row's labels are held by the row, by every rule's instance of it, by
//! the stored instance, and by each action planned for it; its values by
//! the row and by every instance's evidence: at 100,000 instances a copy
//! each was the largest part of a cycle's memory. A clone is a reference
//! count; a change copies first (copy on write), so a holder never sees
//! another's change. Must never hold anything but a row's own columns.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Labels by name, e.g. `{region: "Northeast"}`.
pub type Labels = SharedMap<String>;

/// A row's numbers by column, e.g. `{revenue: 1200.0}`.
pub type Values = SharedMap<f64>;

/// A name-ordered map that reads like a `BTreeMap<String, V>` and clones in
/// constant time.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedMap<V>(Arc<BTreeMap<String, V>>);

impl<V> SharedMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self(Arc::new(BTreeMap::new()))
    }
}

impl<V> Default for SharedMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Deref for SharedMap<V> {
    type Target = BTreeMap<String, V>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<V: Clone> DerefMut for SharedMap<V> {
    /// Copies the map first if another holder shares it.
    fn deref_mut(&mut self) -> &mut Self::Target {
        Arc::make_mut(&mut self.0)
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for SharedMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<V> From<BTreeMap<String, V>> for SharedMap<V> {
    fn from(map: BTreeMap<String, V>) -> Self {
        Self(Arc::new(map))
    }
}

impl<V, const N: usize> From<[(String, V); N]> for SharedMap<V> {
    fn from(pairs: [(String, V); N]) -> Self {
        Self(Arc::new(BTreeMap::from(pairs)))
    }
}

impl<V> FromIterator<(String, V)> for SharedMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        Self(Arc::new(iter.into_iter().collect()))
    }
}

impl<'a, V> IntoIterator for &'a SharedMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::collections::btree_map::Iter<'a, String, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<V: Serialize> Serialize for SharedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SharedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_shares_until_one_holder_changes_it() {
        let a: Labels = [("region".to_owned(), "North".to_owned())].into();
        let mut b = a.clone();
        assert!(Arc::ptr_eq(&a.0, &b.0), "a clone is a reference, not a copy");
        b.insert("segment".to_owned(), "smb".to_owned());
        assert_eq!(a.len(), 1, "the other holder never sees the change");
        assert_eq!(b.len(), 2);
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"region":"North","segment":"smb"}"#
        );
        let back: Labels = serde_json::from_str(r#"{"region":"North"}"#).unwrap();
        assert_eq!(back, a);
    }
}
