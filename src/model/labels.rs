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
/// constant time. An empty map allocates nothing (most evidence and many
/// single-instance rules carry empty label sets).
#[derive(Clone)]
pub struct SharedMap<V>(Option<Arc<BTreeMap<String, V>>>);

impl<V> SharedMap<V> {
    /// An empty map.
    pub const fn new() -> Self {
        Self(None)
    }

    fn map(&self) -> &BTreeMap<String, V> {
        match &self.0 {
            Some(map) => map,
            None => const { &BTreeMap::new() },
        }
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
        self.map()
    }
}

impl<V: Clone> DerefMut for SharedMap<V> {
    /// Copies the map first if another holder shares it.
    fn deref_mut(&mut self) -> &mut Self::Target {
        Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }
}

// Compared and hashed as the maps they hold: an empty map is equal to
// another whether or not either ever allocated.
impl<V: PartialEq> PartialEq for SharedMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.map() == other.map()
    }
}

impl<V: Eq> Eq for SharedMap<V> {}

impl<V: PartialOrd> PartialOrd for SharedMap<V> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.map().partial_cmp(other.map())
    }
}

impl<V: Ord> Ord for SharedMap<V> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.map().cmp(other.map())
    }
}

impl<V: std::hash::Hash> std::hash::Hash for SharedMap<V> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.map().hash(state);
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for SharedMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map().fmt(f)
    }
}

impl<V> From<BTreeMap<String, V>> for SharedMap<V> {
    fn from(map: BTreeMap<String, V>) -> Self {
        Self((!map.is_empty()).then(|| Arc::new(map)))
    }
}

impl<V, const N: usize> From<[(String, V); N]> for SharedMap<V> {
    fn from(pairs: [(String, V); N]) -> Self {
        Self::from(BTreeMap::from(pairs))
    }
}

impl<V> FromIterator<(String, V)> for SharedMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<BTreeMap<_, _>>())
    }
}

impl<'a, V> IntoIterator for &'a SharedMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::collections::btree_map::Iter<'a, String, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.map().iter()
    }
}

impl<V: Serialize> Serialize for SharedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.map().serialize(serializer)
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
        assert!(std::ptr::eq(a.map(), b.map()), "a clone is a reference, not a copy");
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

    #[test]
    fn an_empty_map_allocates_nothing_and_equals_any_other_empty_map() {
        let never = Labels::new();
        let mut emptied: Labels = [("region".to_owned(), "North".to_owned())].into();
        emptied.clear();
        assert!(never.0.is_none());
        assert_eq!(never, emptied);
        assert_eq!(never.cmp(&emptied), std::cmp::Ordering::Equal);
        let state = std::hash::RandomState::new();
        assert_eq!(
            std::hash::BuildHasher::hash_one(&state, &never),
            std::hash::BuildHasher::hash_one(&state, &emptied)
        );
        assert_eq!(serde_json::to_string(&never).unwrap(), "{}");
        let mut grown = never.clone();
        grown.insert("a".to_owned(), "b".to_owned());
        assert!(never.is_empty(), "a change to a clone never reaches the original");
        assert_eq!(grown.len(), 1);
    }
}
