//! `switchyard keys`: manage virtual keys in the gateway's database (`--data-dir`, or the
//! configuration's `store.url`) or through a running gateway's admin API (`--url`).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use switchyard_gateway::budgets::Budgets;
use switchyard_gateway::config::BodyMode;
use switchyard_gateway::keys::{KeyPolicy, Keys, NewKey};
use switchyard_gateway::limits::Limits;
use switchyard_store::Db;
use switchyard_store::keys::KeyStore;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    /// Talk to a running gateway's admin API at this URL (e.g. http://127.0.0.1:8787) instead of
    /// opening the database. Needs the admin token.
    #[arg(long, global = true, env = "SWITCHYARD_URL", value_name = "URL")]
    url: Option<String>,
    /// The admin token, for --url.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    admin_token: Option<String>,
    /// The gateway's data directory (its database is switchyard.db there).
    #[arg(long, global = true, env = "SWITCHYARD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file, for `store.url` and `server.data_dir`.
    #[arg(long, global = true, env = "SWITCHYARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

// Parsed once per process; boxing the big variant would only make the code noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key. The key is printed once; only its hash is stored.
    Create {
        /// Who or what uses the key.
        #[arg(long)]
        name: String,
        /// Models, routes or providers the key may use, as glob patterns (`openai/*`, `smart`);
        /// repeat for several. Default: everything.
        #[arg(long = "allow", value_name = "PATTERN")]
        allow: Vec<String>,
        /// Metadata attached to every call made with the key, `name=value`; repeat for several.
        #[arg(long = "metadata", value_name = "NAME=VALUE")]
        metadata: Vec<String>,
        /// Lifetime: `30d`, `12h`, `90m`. Default: no expiry.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// A rate limit, `rpm=60`, `tpm=100000`, `rpd=…`, `tpd=…` for the key, or
        /// `user:rpm=10` for each value of the `user` metadata tag; repeat for several.
        #[arg(long = "limit", value_name = "[TAG:]METRIC=N")]
        limits: Vec<String>,
        /// A spend limit in US dollars: `daily=5`, `monthly=100`, `total=500`; `alert=0.8` sets
        /// the share at which the webhook is told. Repeat for several.
        #[arg(long = "budget", value_name = "PERIOD=USD")]
        budgets: Vec<String>,
        /// URL that receives a JSON POST when a budget's alert share is crossed or it runs out.
        #[arg(long, value_name = "URL")]
        budget_webhook: Option<String>,
        /// What the request log keeps of this key's calls: none, metadata or full (bodies,
        /// secrets redacted). Default: the route's or the configuration's setting.
        #[arg(long, value_name = "MODE")]
        log_bodies: Option<String>,
        /// Whose cached answers the key's calls may be served: key (its own), shared (every
        /// caller's) or a group name shared by the keys that give it. Default: the
        /// configuration's `cache.namespace`.
        #[arg(long, value_name = "NAMESPACE")]
        cache_namespace: Option<String>,
        /// The firewall policy of the key's calls: a name from [firewall.policies] in the
        /// gateway's configuration, or `off`. Default: the route's, else `firewall.policy`.
        #[arg(long, value_name = "POLICY")]
        firewall: Option<String>,
    },
    /// List keys (revoked ones too), without secrets.
    List,
    /// Show one key.
    Show { id: String },
    /// Revoke a key: it stops working (within 5 s for a gateway running on the same database).
    Revoke { id: String },
    /// Give a key a new secret; the old one stops working. The new key is printed once.
    Rotate { id: String },
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `30d`, `12h`, `90m`, `45s` → seconds.
fn duration_secs(text: &str) -> Result<i64, String> {
    switchyard_gateway::config::parse_span_ms(text)
        .map(|ms| ms / 1000)
        .ok_or_else(|| {
            format!("--expires-in `{text}`: use a number and a unit, like 30d, 12h or 90m")
        })
}

pub fn run(args: KeysArgs, runtime: tokio::runtime::Runtime) -> Result<(), String> {
    runtime.block_on(async move {
        let out = match &args.url {
            Some(url) => remote(&args, url).await?,
            None => local(&args).await?,
        };
        print(&args, &out);
        Ok(())
    })
}

/// The request body of a create.
fn new_key(command: &KeysCommand) -> Result<Option<NewKey>, String> {
    let KeysCommand::Create {
        name,
        allow,
        metadata,
        expires_in,
        limits,
        budgets,
        budget_webhook,
        log_bodies,
        cache_namespace,
        firewall,
    } = command
    else {
        return Ok(None);
    };
    let mut tags = std::collections::BTreeMap::new();
    for m in metadata {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| format!("--metadata `{m}`: write name=value, e.g. team=search"))?;
        tags.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(Some(NewKey {
        name: name.clone(),
        expires_at: expires_in
            .as_deref()
            .map(duration_secs)
            .transpose()?
            .map(|s| now() + s),
        policy: KeyPolicy {
            allow: allow.clone(),
            metadata: tags,
            limits: parse_limits(limits)?,
            budgets: parse_budgets(budgets, budget_webhook.clone())?,
            log_bodies: log_bodies
                .as_deref()
                .map(|m| {
                    BodyMode::parse(m)
                        .ok_or_else(|| format!("--log-bodies `{m}`: use none, metadata or full"))
                })
                .transpose()?,
            cache_namespace: cache_namespace.clone(),
            firewall: firewall.clone(),
        },
    }))
}

/// `daily=5`, `alert=0.8` → budgets.
fn parse_budgets(specs: &[String], webhook: Option<String>) -> Result<Budgets, String> {
    let mut b = Budgets {
        webhook,
        ..Budgets::default()
    };
    for spec in specs {
        let bad = || {
            format!(
                "--budget `{spec}`: write daily=USD, monthly=USD, total=USD or alert=SHARE (e.g. daily=5)"
            )
        };
        let (period, v) = spec.split_once('=').ok_or_else(bad)?;
        let v: f64 = v.trim().parse().map_err(|_| bad())?;
        let slot = match period.trim() {
            "daily" => &mut b.daily_usd,
            "monthly" => &mut b.monthly_usd,
            "total" => &mut b.total_usd,
            "alert" => &mut b.alert_at,
            _ => return Err(bad()),
        };
        *slot = Some(v);
    }
    b.validate()?;
    Ok(b)
}

/// `rpm=60`, `user:tpm=1000` → limits.
fn parse_limits(specs: &[String]) -> Result<Limits, String> {
    let mut limits = Limits::default();
    for spec in specs {
        let bad = || {
            format!(
                "--limit `{spec}`: write METRIC=N or TAG:METRIC=N, with METRIC rpm, tpm, rpd or tpd (e.g. rpm=60, user:rpm=10)"
            )
        };
        let (target, n) = spec.split_once('=').ok_or_else(bad)?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        let (set, metric) = match target.split_once(':') {
            Some((tag, metric)) => (
                limits
                    .per_metadata
                    .entry(tag.trim().to_owned())
                    .or_default(),
                metric,
            ),
            None => (&mut limits.key, target),
        };
        let slot = match metric.trim() {
            "rpm" => &mut set.rpm,
            "tpm" => &mut set.tpm,
            "rpd" => &mut set.rpd,
            "tpd" => &mut set.tpd,
            _ => return Err(bad()),
        };
        *slot = Some(n);
    }
    Ok(limits)
}

async fn local(args: &KeysArgs) -> Result<Value, String> {
    // Only where the store is: provider keys in the vault need not resolve.
    let config = crate::read_config(args.config.as_deref())?;
    let db = match &config.store_url {
        Some(url) => Db::connect(url.expose()).await,
        None => {
            let dir = crate::data_dir(args.data_dir.clone(), Some(&config))?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Db::open_sqlite(&dir.join("switchyard.db")).await
        }
    }
    .map_err(|e| e.to_string())?;
    let keys = Keys::load(KeyStore::new(db))
        .await
        .map_err(|e| e.to_string())?;
    let with_key = |key: String, record: &switchyard_gateway::keys::VirtualKey| {
        let mut v = serde_json::to_value(record).unwrap_or_default();
        v["key"] = json!(key);
        v
    };
    let value = match &args.command {
        KeysCommand::Create { .. } => {
            let new = new_key(&args.command)?.ok_or("internal: no key to create")?;
            // As the admin API does: a key whose policy the gateway does not know would fail
            // every call (the firewall fails closed).
            if let Some(p) = &new.policy.firewall
                && !config.firewall.as_ref().is_some_and(|f| f.knows(p))
            {
                return Err(format!(
                    "--firewall `{p}` is not a policy of {}; define [firewall.policies.{p}] there, pass the gateway's file with --config, or use `off`",
                    args.config
                        .as_ref()
                        .map_or("the default configuration".to_owned(), |c| c
                            .display()
                            .to_string())
                ));
            }
            let (key, record) = keys.create(new).await.map_err(|e| e.to_string())?;
            with_key(key, &record)
        }
        KeysCommand::List => json!({ "data": keys.list().await.map_err(|e| e.to_string())? }),
        KeysCommand::Show { id } => {
            serde_json::to_value(keys.get(id).await.map_err(|e| e.to_string())?).unwrap_or_default()
        }
        KeysCommand::Revoke { id } => {
            serde_json::to_value(keys.revoke(id).await.map_err(|e| e.to_string())?)
                .unwrap_or_default()
        }
        KeysCommand::Rotate { id } => {
            let (key, record) = keys.rotate(id).await.map_err(|e| e.to_string())?;
            with_key(key, &record)
        }
    };
    Ok(value)
}

async fn remote(args: &KeysArgs, url: &str) -> Result<Value, String> {
    let token = args
        .admin_token
        .as_deref()
        .ok_or("--url needs the admin token: pass --admin-token or set SWITCHYARD_ADMIN_TOKEN")?;
    let base = format!("{}/admin/keys", url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let request = match &args.command {
        KeysCommand::Create { .. } => {
            let new = new_key(&args.command)?.ok_or("internal: no key to create")?;
            // The policy as the admin API reads it: the same serialization, so a new field
            // cannot be forgotten here.
            let mut body = serde_json::to_value(&new.policy).map_err(|e| e.to_string())?;
            body["name"] = json!(new.name);
            if let Some(t) = new.expires_at {
                body["expires_at"] = json!(t);
            }
            client.post(&base).json(&body)
        }
        KeysCommand::List => client.get(&base),
        KeysCommand::Show { id } => client.get(format!("{base}/{id}")),
        KeysCommand::Revoke { id } => client.delete(format!("{base}/{id}")),
        KeysCommand::Rotate { id } => client.post(format!("{base}/{id}/rotate")),
    };
    let resp = request
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("{url} answered {status} with something other than JSON: {e}"))?;
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        return Err(format!("{url} answered {status}: {message}"));
    }
    Ok(body)
}

fn when(secs: Option<i64>) -> String {
    match secs {
        None => "-".to_owned(),
        Some(t) => {
            let d = t - now();
            let (n, unit) = match d.abs() {
                a if a >= 86_400 => (a / 86_400, "d"),
                a if a >= 3_600 => (a / 3_600, "h"),
                a => (a / 60, "m"),
            };
            if d >= 0 {
                format!("in {n}{unit}")
            } else {
                format!("{n}{unit} ago")
            }
        }
    }
}

fn describe(k: &Value) -> String {
    let status = if !k["revoked_at"].is_null() {
        "revoked".to_owned()
    } else if k["expires_at"].as_i64().is_some_and(|t| t <= now()) {
        "expired".to_owned()
    } else {
        "live".to_owned()
    };
    let allow = k["allow"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "*".to_owned());
    format!(
        "{:<22} {:<20} {:<22} {:<8} {:<10} {}",
        k["id"].as_str().unwrap_or_default(),
        k["name"].as_str().unwrap_or_default(),
        k["hint"].as_str().unwrap_or_default(),
        status,
        when(k["expires_at"].as_i64()),
        allow
    )
}

fn print(args: &KeysArgs, v: &Value) {
    if args.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    let header = format!(
        "{:<22} {:<20} {:<22} {:<8} {:<10} {}",
        "ID", "NAME", "KEY", "STATUS", "EXPIRES", "ALLOW"
    );
    if let Some(list) = v["data"].as_array() {
        println!("{header}");
        for k in list {
            println!("{}", describe(k));
        }
        if list.is_empty() {
            println!("(no keys: calls on a loopback address need none until the first is created)");
        }
        return;
    }
    println!("{header}\n{}", describe(v));
    if let Some(key) = v["key"].as_str() {
        println!("\n{key}\n\nThis is the only time the key is shown; store it now.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_flags() {
        let l = parse_limits(&["rpm=60".into(), "user:tpm=1000".into(), "tpd=5".into()]).unwrap();
        assert_eq!(l.key.rpm, Some(60));
        assert_eq!(l.key.tpd, Some(5));
        assert_eq!(l.per_metadata["user"].tpm, Some(1000));
        assert!(parse_limits(&["rps=1".into()]).is_err());
        assert!(parse_limits(&["rpm=many".into()]).is_err());
    }

    #[test]
    fn budgets_from_flags() {
        let b = parse_budgets(
            &["daily=5".into(), "total=100".into(), "alert=0.5".into()],
            Some("http://127.0.0.1:9/hook".into()),
        )
        .unwrap();
        assert_eq!(
            (b.daily_usd, b.total_usd, b.alert_at),
            (Some(5.0), Some(100.0), Some(0.5))
        );
        assert!(parse_budgets(&["weekly=5".into()], None).is_err());
        assert!(parse_budgets(&["daily=-1".into()], None).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration_secs("30d"), Ok(30 * 86_400));
        assert_eq!(duration_secs("12h"), Ok(12 * 3_600));
        assert_eq!(duration_secs("90m"), Ok(90 * 60));
        assert!(duration_secs("soon").is_err());
        assert!(duration_secs("0d").is_err());
        assert!(duration_secs("").is_err());
    }
}
