//! A row's identity (its text columns), shared instead of copied.
//!
//! One row's labels are held by the row, by every rule's instance of it, by
//! the stored instance, and by each action planned for it: at 100,000
//! instances a copy each was the largest part of a cycle's memory. A clone is
//! a reference count; a change copies first (copy on write), so a holder
//! never sees another's change. Must never hold anything but text labels.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Labels by name, e.g. `{region: "Northeast"}`: a name-ordered map that
/// reads like a `BTreeMap<String, String>` and clones in constant time.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Arc<BTreeMap<String, String>>);

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Deref for Labels {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Labels {
    /// Copies the map first if another holder shares it.
    fn deref_mut(&mut self) -> &mut Self::Target {
        Arc::make_mut(&mut self.0)
    }
}

impl std::fmt::Debug for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(Arc::new(map))
    }
}

impl<const N: usize> From<[(String, String); N]> for Labels {
    fn from(pairs: [(String, String); N]) -> Self {
        Self(Arc::new(BTreeMap::from(pairs)))
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(Arc::new(iter.into_iter().collect()))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Labels {
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
