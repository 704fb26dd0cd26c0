//! Decoding objects that keep the fields the gateway does not know in an `extra` map.
//!
//! `#[serde(flatten)]` into a map would do it, but serde then buffers the whole object as its
//! private `Content` tree and decodes it a second time, for every object and again for each
//! flattened object inside it (callgrind, 2,000 streams: parsing the upstream's events 122.9 M
//! instructions with flatten, 110.6 M with this; a plain answer's decoding barely changed).
//! [`with_extra!`] writes the `Deserialize` impl that serde's derive writes for a struct
//! without flatten (same errors: a missing, duplicate or mistyped field names itself) and puts
//! every other key into `extra`, in one pass over the input. Serializing keeps serde's derive.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// An object key, borrowed from the input when it has no escapes.
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The value of a field the object did not carry: `required` (an error naming it), `default`
/// (`Default::default()`, `None` for an option) or `or(f)` (`f()`).
macro_rules! absent {
    ($v:ident, $key:literal, required) => {
        match $v {
            ::std::option::Option::Some(v) => v,
            ::std::option::Option::None => {
                return ::std::result::Result::Err(::serde::de::Error::missing_field($key));
            }
        }
    };
    ($v:ident, $key:literal, default) => {
        $v.unwrap_or_default()
    };
    ($v:ident, $key:literal, or($f:path)) => {
        $v.unwrap_or_else($f)
    };
}
pub(crate) use absent;

/// `Deserialize` for a struct with named fields and an `extra: Map<String, Value>` that takes
/// the keys not listed. Each field is `name: "key" => required | default | or(function)`.
/// Fields after the braces in `default(…)` are not decoded and start as `Default::default()`.
/// (The fields are local variables while decoding: an `or` function must not share a field's
/// name, or it does not compile.)
macro_rules! with_extra {
    (
        $ty:ident { $($field:ident : $key:literal => $how:ident $(($f:path))?),* $(,)? }
        $(default($($skip:ident),*))?
    ) => {
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                struct ObjectVisitor;
                impl<'de> ::serde::de::Visitor<'de> for ObjectVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($ty)))
                    }
                    fn visit_map<A: ::serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> ::std::result::Result<$ty, A::Error> {
                        $(let mut $field = ::std::option::Option::None;)*
                        let mut extra = ::serde_json::Map::new();
                        while let ::std::option::Option::Some($crate::extra::Key(key)) =
                            map.next_key()?
                        {
                            match &*key {
                                $($key => {
                                    if $field.is_some() {
                                        return ::std::result::Result::Err(
                                            ::serde::de::Error::duplicate_field($key),
                                        );
                                    }
                                    $field = ::std::option::Option::Some(map.next_value()?);
                                })*
                                _ => {
                                    let value: ::serde_json::Value = map.next_value()?;
                                    extra.insert(key.into_owned(), value);
                                }
                            }
                        }
                        ::std::result::Result::Ok($ty {
                            $($field: $crate::extra::absent!($field, $key, $how $(($f))?),)*
                            $($($skip: ::std::default::Default::default(),)*)?
                            extra,
                        })
                    }
                }
                d.deserialize_map(ObjectVisitor)
            }
        }
    };
}
pub(crate) use with_extra;

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    #[derive(Debug, PartialEq)]
    struct Sample {
        id: String,
        kind: String,
        n: Option<u32>,
        list: Vec<u32>,
        extra: Map<String, Value>,
        /// Not decoded: a `note` key goes to `extra`.
        note: Option<String>,
    }

    fn function() -> String {
        "function".to_owned()
    }

    with_extra!(Sample {
        id: "id" => required,
        kind: "type" => or(function),
        n: "n" => default,
        list: "list" => default,
    } default(note));

    fn decode(v: &str) -> Result<Sample, String> {
        serde_json::from_str(v).map_err(|e| e.to_string())
    }

    #[test]
    fn known_keys_fill_fields_and_the_rest_go_to_extra() {
        let s =
            decode(r#"{"z":1,"id":"a","type":"x","n":null,"list":[1,2],"a\u0062":{"k":[true]}}"#)
                .unwrap();
        assert_eq!((s.id.as_str(), s.kind.as_str(), s.n), ("a", "x", None));
        assert_eq!(s.list, vec![1, 2]);
        assert_eq!(Value::Object(s.extra), json!({"z": 1, "ab": {"k": [true]}}));
        let s = decode(r#"{"id":"a","note":"n"}"#).unwrap();
        assert_eq!(
            (s.note, Value::Object(s.extra)),
            (None, json!({"note": "n"}))
        );
    }

    #[test]
    fn absent_fields_take_their_default_or_are_named() {
        let s = decode(r#"{"id":"a"}"#).unwrap();
        assert_eq!((s.kind.as_str(), s.n, s.list.len()), ("function", None, 0));
        assert!(s.extra.is_empty());
        let e = decode(r#"{"n":1}"#).unwrap_err();
        assert!(e.starts_with("missing field `id`"), "{e}");
    }

    #[test]
    fn mistyped_and_duplicate_fields_are_errors_that_name_them() {
        let e = decode(r#"{"id":"a","n":"x"}"#).unwrap_err();
        assert!(
            e.starts_with("invalid type: string \"x\", expected u32"),
            "{e}"
        );
        let e = decode(r#"{"id":"a","id":"b"}"#).unwrap_err();
        assert!(e.starts_with("duplicate field `id`"), "{e}");
        let e = decode(r#"[1]"#).unwrap_err();
        assert!(e.contains("expected struct Sample"), "{e}");
        // From a `Value` (keys arrive owned) it decodes the same.
        let v = json!({"id": "a", "q": 1});
        let s: Sample = serde_json::from_value(v).unwrap();
        assert_eq!(Value::Object(s.extra), json!({"q": 1}));
    }
}
