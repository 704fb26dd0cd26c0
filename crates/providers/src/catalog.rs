//! The model catalog: list prices and the request features each model accepts, by
//! `provider/model`. Built in (`data/catalog.toml`), extended by the gateway configuration's
//! `[catalog]`.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use switchyard_protocol::chat::{ChatRequest, Content, Part, ResponseFormat};

const BUILTIN: &str = include_str!("../data/catalog.toml");

/// One entry as written in TOML (the built-in file and the configuration's `[catalog]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// US dollars per million input tokens.
    pub input_per_mtok: Option<f64>,
    /// US dollars per million output tokens.
    pub output_per_mtok: Option<f64>,
    /// US dollars per million prompt tokens read from the provider's cache.
    pub cached_input_per_mtok: Option<f64>,
    pub tools: Option<bool>,
    pub vision: Option<bool>,
    pub json_schema: Option<bool>,
    /// When the price was read (`2025-06`).
    pub as_of: Option<String>,
    /// Where it was read (a pricing page).
    pub source: Option<String>,
}

/// What the catalog knows of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelInfo {
    /// US dollars per million input tokens.
    pub input_per_mtok: Option<f64>,
    /// US dollars per million output tokens.
    pub output_per_mtok: Option<f64>,
    /// US dollars per million cached prompt tokens; `None` prices them as input.
    pub cached_input_per_mtok: Option<f64>,
    pub features: Features,
}

/// Request features a model may or may not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    pub tools: bool,
    pub vision: bool,
    pub json_schema: bool,
}

impl Features {
    /// What a chat request needs of its model.
    pub fn of(req: &ChatRequest) -> Self {
        let vision = req.messages.iter().any(|m| match &m.content {
            Some(Content::Parts(parts)) => parts.iter().any(|p| matches!(p, Part::ImageUrl { .. })),
            _ => false,
        });
        Self {
            tools: req.tools.as_ref().is_some_and(|t| !t.is_empty()),
            vision,
            json_schema: matches!(req.response_format, Some(ResponseFormat::JsonSchema { .. })),
        }
    }

    /// Whether a model with these features serves a request that needs `needed`.
    pub fn covers(self, needed: Features) -> bool {
        (self.tools || !needed.tools)
            && (self.vision || !needed.vision)
            && (self.json_schema || !needed.json_schema)
    }

    /// The first missing feature, for messages.
    pub fn missing(self, needed: Features) -> Option<&'static str> {
        if needed.tools && !self.tools {
            Some("tools")
        } else if needed.vision && !self.vision {
            Some("image inputs")
        } else if needed.json_schema && !self.json_schema {
            Some("JSON schema output")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    models: HashMap<String, ModelInfo>,
    provenance: HashMap<String, String>,
}

impl ModelInfo {
    fn from_raw(raw: &CatalogEntry) -> Result<Self, String> {
        for (name, v) in [
            ("input_per_mtok", raw.input_per_mtok),
            ("output_per_mtok", raw.output_per_mtok),
            ("cached_input_per_mtok", raw.cached_input_per_mtok),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!(
                    "{name} = {v} is not a price; give US dollars per million tokens, e.g. 0.15"
                ));
            }
        }
        Ok(Self {
            input_per_mtok: raw.input_per_mtok,
            output_per_mtok: raw.output_per_mtok,
            cached_input_per_mtok: raw.cached_input_per_mtok,
            features: Features {
                tools: raw.tools.unwrap_or(true),
                vision: raw.vision.unwrap_or(true),
                json_schema: raw.json_schema.unwrap_or(true),
            },
        })
    }

    /// The list price of a call with these token counts, when both prices are known.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> Option<f64> {
        self.cost_cached(input_tokens, 0, output_tokens)
    }

    /// The same, with `cached` of the input tokens read from the provider's cache.
    pub fn cost_cached(&self, input_tokens: u64, cached: u64, output_tokens: u64) -> Option<f64> {
        let (i, o) = (self.input_per_mtok?, self.output_per_mtok?);
        let cached = cached.min(input_tokens);
        let c = self.cached_input_per_mtok.unwrap_or(i);
        Some(
            (i * (input_tokens - cached) as f64 + c * cached as f64 + o * output_tokens as f64)
                / 1_000_000.0,
        )
    }
}

impl Catalog {
    /// The catalog shipped in the binary.
    pub fn builtin() -> Result<Self, String> {
        let raw: BTreeMap<String, CatalogEntry> =
            toml::from_str(BUILTIN).map_err(|e| e.to_string())?;
        Self::default()
            .with_from(raw, "built-in catalog")
            .map_err(|(slug, e)| format!("{slug}: {e}"))
    }

    /// This catalog with `entries` from the configuration; an entry replaces the one of the
    /// same name.
    pub fn with(self, entries: BTreeMap<String, CatalogEntry>) -> Result<Self, (String, String)> {
        self.with_from(entries, "configuration")
    }

    /// Where a model's price comes from, for the request log.
    pub fn provenance(&self, slug: &str) -> Option<&str> {
        self.provenance.get(slug).map(String::as_str)
    }

    fn with_from(
        mut self,
        entries: BTreeMap<String, CatalogEntry>,
        source: &str,
    ) -> Result<Self, (String, String)> {
        for (slug, raw) in entries {
            if !slug.contains('/') {
                return Err((slug, "key is not a `provider/model` slug".to_owned()));
            }
            let info = ModelInfo::from_raw(&raw).map_err(|e| (slug.clone(), e))?;
            let provenance = match (&raw.source, &raw.as_of) {
                (Some(s), Some(d)) => format!("{s} (as of {d})"),
                (Some(s), None) => s.clone(),
                (None, Some(d)) => format!("as of {d}"),
                (None, None) => source.to_owned(),
            };
            self.provenance.insert(slug.clone(), provenance);
            self.models.insert(slug, info);
        }
        Ok(self)
    }

    pub fn get(&self, slug: &str) -> Option<&ModelInfo> {
        self.models.get(slug)
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_parses_and_prices_calls() {
        let c = Catalog::builtin().unwrap();
        assert!(c.len() >= 10);
        let mini = c.get("openai/gpt-4o-mini").unwrap();
        // 1M input tokens at $0.15 plus 1M output tokens at $0.60.
        let cost = mini.cost(1_000_000, 1_000_000).unwrap();
        assert!((cost - 0.75).abs() < 1e-9, "{cost}");
        assert!(!c.get("groq/llama-3.1-8b-instant").unwrap().features.vision);
    }

    #[test]
    fn cached_tokens_and_provenance() {
        let c = Catalog::builtin().unwrap();
        let mini = c.get("openai/gpt-4o-mini").unwrap();
        // 1M input of which 400k cached: 600k × $0.15 + 400k × $0.075, no output.
        let cost = mini.cost_cached(1_000_000, 400_000, 0).unwrap();
        assert!((cost - 0.12).abs() < 1e-9, "{cost}");
        assert!(
            c.provenance("openai/gpt-4o-mini")
                .unwrap()
                .contains("openai.com/api/pricing (as of 2025-06)")
        );
        let groq = c.get("groq/llama-3.1-8b-instant").unwrap();
        assert_eq!(
            groq.cost_cached(100, 50, 0),
            groq.cost(100, 0),
            "no cached price: as input"
        );
        let mut extra = BTreeMap::new();
        extra.insert(
            "my/model".to_owned(),
            CatalogEntry {
                input_per_mtok: Some(1.0),
                output_per_mtok: Some(1.0),
                ..CatalogEntry::default()
            },
        );
        assert_eq!(
            c.with(extra).unwrap().provenance("my/model"),
            Some("configuration")
        );
    }

    #[test]
    fn entries_override_and_are_checked() {
        let mut extra = BTreeMap::new();
        extra.insert(
            "openai/gpt-4o-mini".to_owned(),
            CatalogEntry {
                input_per_mtok: Some(1.0),
                output_per_mtok: Some(2.0),
                tools: Some(false),
                ..CatalogEntry::default()
            },
        );
        let c = Catalog::builtin().unwrap().with(extra).unwrap();
        let m = c.get("openai/gpt-4o-mini").unwrap();
        assert_eq!(m.input_per_mtok, Some(1.0));
        assert!(!m.features.tools && m.features.vision);

        let mut bad = BTreeMap::new();
        bad.insert(
            "x/y".to_owned(),
            CatalogEntry {
                input_per_mtok: Some(-1.0),
                ..CatalogEntry::default()
            },
        );
        assert!(
            Catalog::default()
                .with(bad)
                .unwrap_err()
                .1
                .contains("not a price")
        );
    }

    #[test]
    fn features_of_a_request() {
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}],
            "tools": [{"type": "function", "function": {"name": "f"}}]
        }))
        .unwrap();
        let needed = Features::of(&req);
        assert!(needed.tools && needed.vision && !needed.json_schema);
        let text_only = Features {
            tools: true,
            vision: false,
            json_schema: true,
        };
        assert!(!text_only.covers(needed));
        assert_eq!(text_only.missing(needed), Some("image inputs"));
    }
}
