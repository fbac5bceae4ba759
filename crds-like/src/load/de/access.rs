//! serde's access traits over [`Node`]s: mapping entries, sequence items and enum variants,
//! each handing its child a [`NodeDe`] with the child's field path, so errors stay located.

use serde::de::{self, DeserializeSeed, Visitor};

use super::{Ctx, DeError, NodeDe};
use crate::load::path::FieldPath;
use crate::load::tree::{Entry, Node};

pub(super) struct MapAcc<'a> {
    entries: Vec<&'a Entry>,
    next: usize,
    path: FieldPath,
    ctx: &'a Ctx<'a>,
}

impl<'a> MapAcc<'a> {
    pub(super) fn new(entries: Vec<&'a Entry>, parent: &NodeDe<'a>) -> Self {
        MapAcc {
            entries,
            next: 0,
            path: parent.path.clone(),
            ctx: parent.ctx,
        }
    }

    fn entry_path(&self, entry: &Entry) -> FieldPath {
        match entry.key.scalar() {
            Some((key, _)) => self.path.key(key),
            None => self.path.clone(),
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAcc<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.get(self.next) else {
            return Ok(None);
        };
        let de = NodeDe::new(&entry.key, self.entry_path(entry), self.ctx);
        let (node, path, ctx) = (de.node, de.path.clone(), de.ctx);
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| NodeDe { node, path, ctx }.locate(e))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.entries.get(self.next) else {
            return Err(DeError::new(
                "internal: a value was read before its key".to_owned(),
            ));
        };
        self.next += 1;
        let path = self.entry_path(entry);
        let located = NodeDe::new(&entry.value, path.clone(), self.ctx);
        seed.deserialize(NodeDe::new(&entry.value, path, self.ctx))
            .map_err(|e| located.locate(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

pub(super) struct SeqAcc<'a> {
    items: &'a [Node],
    next: usize,
    path: FieldPath,
    ctx: &'a Ctx<'a>,
}

impl<'a> SeqAcc<'a> {
    pub(super) fn new(items: &'a [Node], parent: &NodeDe<'a>) -> Self {
        SeqAcc {
            items,
            next: 0,
            path: parent.path.clone(),
            ctx: parent.ctx,
        }
    }
}

impl<'de> de::SeqAccess<'de> for SeqAcc<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.get(self.next) else {
            return Ok(None);
        };
        let path = self.path.index(self.next);
        self.next += 1;
        let located = NodeDe::new(item, path.clone(), self.ctx);
        seed.deserialize(NodeDe::new(item, path, self.ctx))
            .map(Some)
            .map_err(|e| located.locate(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

/// An enum written as a one-entry mapping: `{variant: content}`.
pub(super) struct MapEnum<'a, 'p> {
    pub(super) entry: &'a Entry,
    pub(super) parent: &'p NodeDe<'a>,
}

impl<'de> de::EnumAccess<'de> for MapEnum<'de, '_> {
    type Error = DeError;
    type Variant = NodeDe<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'de>), DeError> {
        let path = match self.entry.key.scalar() {
            Some((key, _)) => self.parent.path.key(key),
            None => self.parent.path.clone(),
        };
        let key = NodeDe::new(&self.entry.key, path.clone(), self.parent.ctx);
        let variant = seed.deserialize(key)?;
        Ok((
            variant,
            NodeDe::new(&self.entry.value, path, self.parent.ctx),
        ))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}
