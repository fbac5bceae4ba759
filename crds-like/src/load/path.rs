//! Field paths (`spec.deploy.maxUnavailable`, `spec.probes[0].http.url`) and finding the node
//! a path names in a document, so that any rule can report the line and column of the field
//! it is about.

use std::fmt;

use super::tree::{Node, Pos, Value};

/// One field path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A field path such as `spec.deploy.maxUnavailable` or `spec.probes[0].http.url`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// This path with a key appended.
    pub fn key(&self, key: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_owned()));
        p
    }

    /// This path with an index appended.
    pub fn index(&self, i: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// `None` for the root, else the dotted form.
    pub fn to_field(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.to_string())
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Where a field path points in a document: the node at the deepest segment that exists, and
/// the position of the key that names it (for errors about the key itself).
pub(crate) fn locate<'a>(root: &'a Node, path: &FieldPath) -> (&'a Node, Pos) {
    let mut node = root;
    let mut key_pos = root.pos;
    for seg in &path.0 {
        let next = match (seg, &node.value) {
            (Seg::Key(k), Value::Map(_)) => node.get(k).map(|e| (&e.value, e.key.pos)),
            (Seg::Index(i), Value::Seq(items)) => items.get(*i).map(|n| (n, n.pos)),
            _ => None,
        };
        match next {
            Some((n, kp)) => {
                node = n;
                key_pos = kp;
            }
            None => break,
        }
    }
    (node, key_pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_display() {
        let p = FieldPath::default()
            .key("spec")
            .key("probes")
            .index(0)
            .key("http");
        assert_eq!(p.to_string(), "spec.probes[0].http");
    }
}
