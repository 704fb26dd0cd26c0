//! The process environment, read once and passed down, so tests never mutate the real one.

use std::collections::HashMap;

/// `Debug` names the variables and vault credentials it holds, never their values.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    /// Provider credentials from the vault, by provider name.
    vault: HashMap<String, String>,
    /// The vault is not open yet: `vault:NAME` references are accepted unresolved (see
    /// [`Env::before_vault`]).
    vault_pending: bool,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut vars: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        vars.sort_unstable();
        let mut vault: Vec<&str> = self.vault.keys().map(String::as_str).collect();
        vault.sort_unstable();
        f.debug_struct("Env")
            .field("vars", &vars)
            .field("vault", &vault)
            .field("vault_pending", &self.vault_pending)
            .finish()
    }
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

    /// The same environment for a load before the vault is open: the load that finds the
    /// database the vault lives in. A `vault:NAME` reference then resolves to an empty
    /// placeholder instead of failing; such a configuration is for start-up decisions only and
    /// is loaded again with the vault's credentials before it serves.
    pub fn before_vault(mut self) -> Self {
        self.vault_pending = true;
        self
    }

    pub fn vault_pending(&self) -> bool {
        self.vault_pending
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
            vault_pending: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_variables_but_never_shows_values() {
        let env: Env = [("OPENAI_API_KEY", "sk-planted-1"), ("HOME", "/root")]
            .into_iter()
            .collect();
        let env = env.with_vault([("myco".to_owned(), "sk-planted-2".to_owned())].into());
        let text = format!("{env:?}");
        assert!(
            text.contains("OPENAI_API_KEY") && text.contains("myco"),
            "{text}"
        );
        assert!(!text.contains("sk-planted"), "{text}");
    }
}
