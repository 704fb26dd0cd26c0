//! The error body of OpenAI's API: `{"error":{"message","type","param","code"}}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default, deserialize_with = "code_as_string")]
    pub code: Option<String>,
}

/// Some OpenAI-compatible hosts send a numeric `code`; accept both.
fn code_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

impl ErrorBody {
    pub fn new(
        message: impl Into<String>,
        kind: &str,
        param: Option<String>,
        code: Option<&str>,
    ) -> Self {
        Self {
            error: ErrorDetail {
                message: message.into(),
                kind: Some(kind.to_owned()),
                param,
                code: code.map(str::to_owned),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_error_and_numeric_codes() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        )
        .unwrap();
        assert_eq!(body.error.code.as_deref(), Some("rate_limit_exceeded"));
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":{"message":"x","code":429}}"#).unwrap();
        assert_eq!(body.error.code.as_deref(), Some("429"));
        assert_eq!(body.error.kind, None);
    }

    #[test]
    fn serializes_all_four_fields() {
        let v =
            serde_json::to_value(ErrorBody::new("m", "invalid_request_error", None, None)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"message":"m","type":"invalid_request_error","param":null,"code":null}})
        );
    }
}
