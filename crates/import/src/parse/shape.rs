//! Visitors for objects and arrays that report a wrong type instead of failing, and
//! the field loop every object shares: known fields once each, unknown and repeated
//! ones reported and skipped, missing ones reported at the end.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::ParseState;
use super::value::{Leaf, Slot};
use crate::error::{PathStep, quote};

/// What to do with a JSON value at a position that expects an object or an array.
pub(crate) trait Shape<'de>: Sized {
    type Out;

    fn on_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.on_other(Leaf::Object))
    }
    fn on_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.on_other(Leaf::Array))
    }
    /// Any other value (the wrong type): report it.
    fn on_other(self, value: Leaf) -> Self::Out;
}

pub(crate) struct ShapeSeed<S>(pub(crate) S);

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for ShapeSeed<S> {
    type Value = S::Out;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Out, D::Error> {
        d.deserialize_any(ShapeVisitor(self.0))
    }
}

struct ShapeVisitor<S>(S);

impl<'de, S: Shape<'de>> Visitor<'de> for ShapeVisitor<S> {
    type Value = S::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<S::Out, A::Error> {
        self.0.on_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<S::Out, A::Error> {
        self.0.on_seq(seq)
    }
    fn visit_bool<E>(self, v: bool) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::I64(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::U64(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::F64(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::Str(v.to_owned())))
    }
    fn visit_unit<E>(self) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::Null))
    }
    fn visit_none<E>(self) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::Null))
    }
}

/// An object key: one of the expected fields (by position) or an unknown name.
enum Key {
    Known(usize),
    Unknown(String),
}

struct KeySeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(match self.0.iter().position(|f| *f == v) {
            Some(i) => Key::Known(i),
            None => Key::Unknown(v.to_owned()),
        })
    }
}

/// The next field not seen before in this object; unknown and repeated fields are
/// reported and skipped.
pub(crate) fn next_field<'de, A: MapAccess<'de>>(
    state: &mut ParseState,
    map: &mut A,
    fields: &'static [&'static str],
    seen: &mut u32,
) -> Result<Option<&'static str>, A::Error> {
    loop {
        state.check()?;
        let Some(key) = map.next_key_seed(KeySeed(fields))? else {
            return Ok(None);
        };
        match key {
            Key::Known(i) if *seen & (1 << i) == 0 => {
                *seen |= 1 << i;
                return Ok(fields.get(i).copied());
            }
            Key::Known(i) => {
                let name = fields.get(i).copied().unwrap_or_default();
                state.issue(format!("duplicate field \"{name}\""), None);
            }
            Key::Unknown(name) => state.issue(
                format!(
                    "unknown field {} (expected one of: {})",
                    quote(&name),
                    fields.join(", ")
                ),
                None,
            ),
        }
        map.next_value::<IgnoredAny>()?;
    }
}

pub(crate) fn report_missing(state: &mut ParseState, fields: &'static [&'static str], seen: u32) {
    for (i, name) in fields.iter().enumerate() {
        if seen & (1 << i) == 0 {
            state.issue(format!("missing field \"{name}\""), None);
        }
    }
}

/// Reads a scalar field's value and converts it, reporting a failure at the field.
pub(crate) fn leaf<'de, A: MapAccess<'de>, T>(
    state: &mut ParseState,
    map: &mut A,
    name: &'static str,
    convert: fn(&Leaf) -> Result<T, String>,
) -> Result<Slot<T>, A::Error> {
    state.path.push(PathStep::Key(name));
    let value: Leaf = map.next_value()?;
    let slot = match convert(&value) {
        Ok(v) => Slot::Valid(v),
        Err(message) => {
            state.issue(message, Some(value.describe()));
            Slot::Invalid
        }
    };
    state.path.pop();
    Ok(slot)
}
