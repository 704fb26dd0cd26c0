//! The upstream's own JSON for an answer or a chunk, kept beside the decoded value.

use std::fmt;

use bytes::Bytes;

/// The JSON an answer or a chunk was decoded from, kept by the decoders of OpenAI's wire format
/// so that an OpenAI-shaped caller is sent the upstream's bytes as they came instead of a
/// re-encoding (which cost as much as the decoding). It is a copy of the value's fields, not
/// one of them: whoever changes the value calls its `changed`, it is never serialized, and it
/// compares equal to any other.
#[derive(Clone, Default)]
pub struct WireJson(Option<Bytes>);

impl WireJson {
    /// Keeps a whole answer's body.
    pub fn new(json: Bytes) -> Self {
        Self(Some(json))
    }

    /// Keeps an event's JSON unless it holds a line break, which would split its `data:` line.
    pub fn line(json: Bytes) -> Self {
        Self((memchr::memchr2(b'\n', b'\r', &json).is_none()).then_some(json))
    }

    /// The upstream's JSON, if the value still matches it.
    pub fn get(&self) -> Option<&Bytes> {
        self.0.as_ref()
    }
}

impl PartialEq for WireJson {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for WireJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(b) => write!(f, "WireJson({} bytes)", b.len()),
            None => f.write_str("WireJson(none)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_with_a_line_break_keeps_no_bytes() {
        let line = |json: &'static [u8]| WireJson::line(Bytes::from_static(json)).get().is_some();
        assert!(line(b"{\"a\":1}"));
        assert!(!line(b"{\"a\":\n1}"));
        assert!(!line(b"{\"a\":\r1}"));
        // A whole answer's body may be pretty-printed.
        assert!(
            WireJson::new(Bytes::from_static(b"{\n\"a\":1}"))
                .get()
                .is_some()
        );
    }
}
