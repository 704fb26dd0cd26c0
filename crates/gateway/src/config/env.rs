//! The process environment, read once and passed down, so tests never mutate the real one.

use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    /// Provider credentials from the vault, by provider name.
    vault: HashMap<String, String>,
}

impl Env {
    /// A snapshot of the process environment.
    pub fn from_process() -> Self {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The same environment with the vault's credentials (by provider name).
    pub fn with_vault(mut self, vault: HashMap<String, String>) -> Self {
        self.vault = vault;
        self
    }

    /// A provider's credential from the vault.
    pub fn vault(&self, provider: &str) -> Option<&str> {
        self.vault.get(provider).map(String::as_str)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            vault: HashMap::new(),
        }
    }
}
