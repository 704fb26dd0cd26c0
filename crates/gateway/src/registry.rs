//! The configured providers and aliases, and how a `model` string resolves to a target.

use std::collections::HashMap;
use switchyard_providers::local::{LOCAL, LocalProvider};

use switchyard_protocol::models::{Model, ModelList};
use switchyard_providers::{Provider, ProviderError};

use crate::config::{Config, MOCK};
use crate::error::GatewayError;

/// Where a call goes: a provider and the model name the upstream knows.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Provider,
    pub model: String,
    /// The vault credential the provider waits for (see
    /// [`ProviderConfig::waiting_for`](crate::config::ProviderConfig)): calls are refused,
    /// saying what to store, until it is.
    pub waiting_for: Option<std::sync::Arc<str>>,
}

impl Target {
    pub fn provider_name(&self) -> &str {
        self.provider.name()
    }

    /// A target on an OpenAI-shaped provider that nothing listens for.
    #[cfg(test)]
    pub fn for_test(slug: &str) -> Self {
        let (provider, model) = slug.split_once('/').unwrap_or(("test", slug));
        let settings = switchyard_providers::ProviderSettings {
            name: provider.to_owned(),
            base_url: "http://127.0.0.1:9/v1".to_owned(),
            api_key: None,
            auth: switchyard_providers::AuthStyle::Bearer,
            headers: Vec::new(),
            request_timeout: std::time::Duration::from_secs(1),
            stream_usage: true,
        };
        let client = switchyard_providers::http_client(std::time::Duration::from_secs(1))
            .unwrap_or_else(|_| unreachable!("the client builds with a plain configuration"));
        let provider = Provider::new(switchyard_providers::WireKind::OpenAi, settings, client)
            .unwrap_or_else(|_| unreachable!("a test provider builds"));
        Self {
            provider,
            model: model.to_owned(),
            waiting_for: None,
        }
    }

    /// The refusal of a call to a provider still waiting for its credential.
    pub fn refuse_if_waiting(&self) -> Result<(), ProviderError> {
        match &self.waiting_for {
            None => Ok(()),
            Some(cred) => Err(ProviderError::Request {
                provider: self.provider_name().to_owned(),
                param: "model".to_owned(),
                message: format!(
                    "provider `{}` has no credential yet: its api_key is `vault:{cred}`, and nothing is stored under that name; store it with PUT /admin/credentials/{cred}",
                    self.provider_name()
                ),
            }),
        }
    }
}

#[derive(Debug)]
pub struct Registry {
    providers: HashMap<String, Provider>,
    aliases: HashMap<String, String>,
    default_provider: Option<String>,
    disabled: HashMap<String, String>,
    /// Providers waiting for their vault credential, and its name.
    waiting: HashMap<String, std::sync::Arc<str>>,
    models: ModelList,
}

impl Registry {
    /// Builds every enabled provider on one shared HTTP client. `mock_url` is the address of the
    /// embedded mock, when it runs; `local` serves the models installed in the data directory
    /// (shared across rebuilds, so loaded models stay loaded).
    pub fn build(
        config: &Config,
        mock_url: Option<&str>,
        local: Option<&LocalProvider>,
    ) -> Result<Self, ProviderError> {
        let client = switchyard_providers::http_client(config.connect_timeout)?;
        if client.is_proxied() {
            tracing::info!(
                "upstream calls go through the proxy named by HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (hosts in NO_PROXY directly)"
            );
        }
        let mut providers = HashMap::new();
        let mut waiting = HashMap::new();
        let mut models = Vec::new();
        for alias in config.aliases.keys() {
            models.push(Model::new(alias.clone(), "switchyard"));
        }
        for route in &config.routes {
            models.push(Model::new(route.name.clone(), "switchyard"));
        }
        for p in &config.providers {
            let mut settings = p.settings.clone();
            if p.embedded_mock {
                settings.base_url = mock_url.unwrap_or_default().to_owned();
            }
            for m in &p.models {
                models.push(Model::new(
                    format!("{}/{m}", settings.name),
                    settings.name.clone(),
                ));
            }
            let name = settings.name.clone();
            if let Some(cred) = &p.waiting_for {
                waiting.insert(name.clone(), cred.as_str().into());
            }
            providers.insert(name, Provider::new(p.kind, settings, client.clone())?);
        }
        if let Some(l) = local
            && !providers.contains_key(LOCAL)
        {
            for m in l.installed() {
                models.push(Model::new(format!("{LOCAL}/{m}"), LOCAL));
            }
            providers.insert(LOCAL.to_owned(), Provider::Local(l.clone()));
        }
        Ok(Self {
            providers,
            aliases: config
                .aliases
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            default_provider: config.default_provider.clone(),
            disabled: config.disabled_presets.iter().cloned().collect(),
            waiting,
            models: ModelList::new(models),
        })
    }

    pub fn models(&self) -> &ModelList {
        &self.models
    }

    pub fn provider_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Resolves an alias, a `provider/model` slug, or a bare name (with a default provider).
    pub fn resolve(&self, requested: &str) -> Result<Target, GatewayError> {
        let mut name = requested.trim();
        // Aliases may point at aliases; the configuration rejects cycles.
        for _ in 0..8 {
            match self.aliases.get(name) {
                Some(next) => name = next,
                None => break,
            }
        }
        if name.is_empty() {
            return Err(GatewayError::bad_request(
                "`model` is empty; use a slug such as mock/echo",
                Some("model"),
            ));
        }
        let (provider, model) = match name.split_once('/') {
            Some((p, m)) => (p, m),
            None => match &self.default_provider {
                Some(p) => (p.as_str(), name),
                None => {
                    return Err(GatewayError::ModelNotFound {
                        message: format!(
                            "model `{requested}` is not known: use a `provider/model` slug (for example openai/{requested} or mock/echo), define an alias, or set default_provider in the configuration"
                        ),
                    });
                }
            },
        };
        if model.is_empty() {
            return Err(GatewayError::ModelNotFound {
                message: format!("model `{requested}` names no model after `{provider}/`"),
            });
        }
        match self.providers.get(provider) {
            Some(p) => Ok(Target {
                provider: p.clone(),
                model: model.to_owned(),
                waiting_for: self.waiting.get(provider).cloned(),
            }),
            None => Err(GatewayError::ModelNotFound {
                message: self.unknown_provider(provider, requested),
            }),
        }
    }

    fn unknown_provider(&self, provider: &str, requested: &str) -> String {
        if let Some(var) = self.disabled.get(provider) {
            return format!(
                "provider `{provider}` (in model `{requested}`) is not enabled: set {var} where the gateway runs, or configure [providers.{provider}]"
            );
        }
        if provider == MOCK {
            return "the mock provider is disabled in the configuration".to_owned();
        }
        format!(
            "provider `{provider}` (in model `{requested}`) is not configured; enabled providers: {}",
            self.provider_names().join(", ")
        )
    }
}
