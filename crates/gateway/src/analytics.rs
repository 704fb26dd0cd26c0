//! Analytics over request logs: calls grouped by a dimension and a time bucket, with requests,
//! errors, tokens, cost and latency percentiles per group. Computed from the stored rows, so the
//! sums are the raw records' sums.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use switchyard_store::logs::LogRow;

/// What rows are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// Every call in one group, `all`.
    All,
    Model,
    Provider,
    Key,
    Route,
    Status,
    /// What the cache did: `hit`, `miss`, `bypass`, or `(none)` when it was off.
    Cache,
    /// The firewall's strongest action: `block`, `redact`, `flag`, or `(none)`.
    Firewall,
    Metadata(String),
}

impl GroupBy {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "all" => Self::All,
            "model" => Self::Model,
            "provider" => Self::Provider,
            "key" => Self::Key,
            "route" => Self::Route,
            "status" => Self::Status,
            "cache" => Self::Cache,
            "firewall" => Self::Firewall,
            other => match other.strip_prefix("metadata.") {
                Some(k) if !k.is_empty() => Self::Metadata(k.to_owned()),
                _ => {
                    return Err(format!(
                        "group_by `{other}`: use all, model, provider, key, route, status, cache, firewall or metadata.<tag>"
                    ));
                }
            },
        })
    }

    fn value(&self, r: &LogRow) -> String {
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
        match self {
            Self::All => "all".to_owned(),
            Self::Model => match (&r.provider, &r.model) {
                (Some(p), Some(m)) => format!("{p}/{m}"),
                _ => r.requested_model.clone(),
            },
            Self::Provider => or_none(&r.provider),
            Self::Key => or_none(&r.key_name),
            Self::Route => or_none(&r.route),
            Self::Status => r.status.to_string(),
            Self::Cache => or_none(&r.cache),
            Self::Firewall => or_none(&r.firewall),
            Self::Metadata(k) => serde_json::from_str::<Value>(&r.metadata)
                .ok()
                .and_then(|m| {
                    m.get(k).map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                })
                .unwrap_or_else(|| "(none)".to_owned()),
        }
    }
}

/// `30s`, `5m`, `1h`, `1d` → milliseconds.
pub fn bucket_ms(s: &str) -> Result<i64, String> {
    crate::config::parse_span_ms(s)
        .ok_or_else(|| format!("bucket `{s}`: use a number and a unit, like 5m, 1h or 1d"))
}

/// One group in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// Unix milliseconds at which the bucket starts.
    pub bucket: i64,
    pub group: String,
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Sum of known costs; calls without a price add nothing (see `unpriced`).
    pub cost_usd: f64,
    /// Calls whose model had no price.
    pub unpriced: u64,
    /// Calls answered from the cache.
    pub cache_hits: u64,
    /// What the answers served from the cache would have cost.
    pub saved_usd: f64,
    /// Calls the firewall blocked, redacted or flagged (by its strongest action).
    pub firewall_blocked: u64,
    pub firewall_redacted: u64,
    pub firewall_flagged: u64,
    pub p50_ms: u64,
    pub p95_ms: u64,
}

/// Groups `rows` by bucket and dimension, buckets oldest first.
pub fn aggregate(rows: &[LogRow], by: &GroupBy, bucket: i64) -> Vec<Cell> {
    let mut cells: BTreeMap<(i64, String), (Cell, Vec<i64>)> = BTreeMap::new();
    for r in rows {
        let start = r.ts - r.ts.rem_euclid(bucket);
        let group = by.value(r);
        let (cell, latencies) = cells.entry((start, group.clone())).or_insert_with(|| {
            (
                Cell {
                    bucket: start,
                    group,
                    requests: 0,
                    errors: 0,
                    input_tokens: 0,
                    output_tokens: 0,
                    cost_usd: 0.0,
                    unpriced: 0,
                    cache_hits: 0,
                    saved_usd: 0.0,
                    firewall_blocked: 0,
                    firewall_redacted: 0,
                    firewall_flagged: 0,
                    p50_ms: 0,
                    p95_ms: 0,
                },
                Vec::new(),
            )
        });
        cell.requests += 1;
        cell.errors += u64::from(r.status >= 400);
        cell.input_tokens += r.input_tokens.max(0) as u64;
        cell.output_tokens += r.output_tokens.max(0) as u64;
        match r.cost_usd {
            Some(c) => cell.cost_usd += c,
            None => cell.unpriced += 1,
        }
        if matches!(r.cache.as_deref(), Some("hit" | "semantic_hit")) {
            cell.cache_hits += 1;
        }
        cell.saved_usd += r.saved_usd.unwrap_or(0.0);
        match r.firewall.as_deref() {
            Some("block") => cell.firewall_blocked += 1,
            Some("redact") => cell.firewall_redacted += 1,
            Some("flag") => cell.firewall_flagged += 1,
            _ => {}
        }
        latencies.push(r.latency_ms);
    }
    cells
        .into_values()
        .map(|(mut cell, mut latencies)| {
            latencies.sort_unstable();
            let at = |q: f64| {
                let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
                latencies.get(i).copied().unwrap_or(0).max(0) as u64
            };
            cell.p50_ms = at(0.5);
            cell.p95_ms = at(0.95);
            cell
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts: i64, model: &str, status: i64, latency: i64, cost: Option<f64>) -> LogRow {
        LogRow {
            id: format!("{ts}"),
            ts,
            requested_model: model.into(),
            provider: Some("mock".into()),
            model: Some(model.into()),
            status,
            latency_ms: latency,
            input_tokens: 10,
            output_tokens: 2,
            cost_usd: cost,
            metadata: format!(
                "{{\"team\":\"{}\"}}",
                if (ts / 1000) % 2 == 0 { "a" } else { "b" }
            ),
            ..LogRow::default()
        }
    }

    #[test]
    fn sums_and_percentiles_per_group_and_bucket() {
        let rows: Vec<LogRow> = (0..20)
            .map(|i| {
                row(
                    i * 1000,
                    if i < 15 { "echo" } else { "big" },
                    if i == 3 { 502 } else { 200 },
                    i + 1,
                    (i != 4).then_some(0.5),
                )
            })
            .collect();
        let cells = aggregate(&rows, &GroupBy::Model, 3_600_000);
        assert_eq!(cells.len(), 2);
        let echo = cells.iter().find(|c| c.group == "mock/echo").unwrap();
        assert_eq!((echo.requests, echo.errors, echo.unpriced), (15, 1, 1));
        assert_eq!(echo.input_tokens, 150);
        assert!((echo.cost_usd - 7.0).abs() < 1e-9);
        assert_eq!((echo.p50_ms, echo.p95_ms), (8, 14));
        // Buckets of 10 s split the same rows in two.
        let by_time = aggregate(&rows, &GroupBy::Provider, 10_000);
        assert_eq!(by_time.len(), 2);
        assert_eq!(by_time[0].requests + by_time[1].requests, 20);
        let teams = aggregate(&rows, &GroupBy::Metadata("team".into()), 3_600_000);
        assert_eq!(
            teams.iter().map(|c| c.group.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn parsing() {
        assert_eq!(bucket_ms("5m"), Ok(300_000));
        assert_eq!(bucket_ms("1d"), Ok(86_400_000));
        assert!(bucket_ms("week").is_err());
        assert_eq!(
            GroupBy::parse("metadata.team"),
            Ok(GroupBy::Metadata("team".into()))
        );
        assert!(GroupBy::parse("colour").is_err());
    }
}
