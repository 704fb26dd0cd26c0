//! Messages and their content parts.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::extra::with_extra;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    /// Deprecated by OpenAI, still accepted by it and passed through.
    Function,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: Role,
    /// `None` is sent as `null` (an assistant message that only calls tools).
    pub content: Option<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A tool result that reports a failure (Anthropic's `is_error`). OpenAI's wire has no such
    /// flag; its adapter says so in the text instead.
    #[serde(skip_serializing_if = "is_false")]
    pub is_error: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(Message {
    role: "role" => required,
    content: "content" => default,
    name: "name" => default,
    tool_calls: "tool_calls" => default,
    tool_call_id: "tool_call_id" => default,
    is_error: "is_error" => default,
});

fn is_false(b: &bool) -> bool {
    !*b
}

impl Message {
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(Content::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            is_error: false,
            extra: Map::new(),
        }
    }

    /// The message's text: a string content, or its text parts joined.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => parts.iter().filter_map(Part::text).collect(),
        }
    }
}

/// A message's content: a plain string or a list of typed parts.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(t) => s.serialize_str(t),
            Self::Parts(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// One content part. Types the gateway does not reason about (audio, files, refusals…) are
/// kept as they came in `Other` and passed through.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    Other(Value),
}

impl Part {
    /// The text of a text part, including one kept whole for its provider hints (a text block
    /// with `cache_control`).
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text { text } => Some(text),
            Self::Other(v) if v["type"] == "text" => v["text"].as_str(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// An `https:` URL or a `data:image/...;base64,` URL.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Serialize for Part {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Text { text } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "text")?;
                m.serialize_entry("text", text)?;
                m.end()
            }
            Self::ImageUrl { image_url } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "image_url")?;
                m.serialize_entry("image_url", image_url)?;
                m.end()
            }
            Self::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PartVisitor;
        impl<'de> Visitor<'de> for PartVisitor {
            type Value = Part;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a content part object with a `type`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Part, A::Error> {
                let mut obj = Map::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    obj.insert(k, v);
                }
                let kind = match obj.get("type") {
                    Some(Value::String(t)) => t.clone(),
                    Some(_) => return Err(de::Error::custom("`type` must be a string")),
                    None => return Err(de::Error::missing_field("type")),
                };
                match kind.as_str() {
                    "text" => match obj.remove("text") {
                        Some(Value::String(text)) if obj.len() == 1 => Ok(Part::Text { text }),
                        Some(Value::String(text)) => {
                            // Extra keys (e.g. cache_control): keep the part as it came.
                            obj.insert("text".to_owned(), Value::String(text));
                            Ok(Part::Other(Value::Object(obj)))
                        }
                        Some(_) => Err(de::Error::custom("`text` must be a string")),
                        None => Err(de::Error::missing_field("text")),
                    },
                    "image_url" => {
                        let raw = obj
                            .remove("image_url")
                            .ok_or_else(|| de::Error::missing_field("image_url"))?;
                        let image_url = match raw {
                            Value::String(url) => ImageUrl { url, detail: None },
                            other => serde_json::from_value(other)
                                .map_err(|e| de::Error::custom(format!("`image_url`: {e}")))?,
                        };
                        Ok(Part::ImageUrl { image_url })
                    }
                    _ => Ok(Part::Other(Value::Object(obj))),
                }
            }
        }
        d.deserialize_map(PartVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: ToolCallFunction,
    /// Provider data that must come back with the call on the next turn, e.g. Gemini's
    /// `extra_content.google.thought_signature` (the field Google's own OpenAI layer uses).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

with_extra!(ToolCall {
    id: "id" => required,
    kind: "type" => or(function_type),
    function: "function" => required,
});

pub(crate) fn function_type() -> String {
    "function".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    pub name: String,
    /// JSON text, as the model wrote it (it may be invalid JSON).
    pub arguments: String,
}
