//! Circuit breakers shared by replicas (`[state] redis`): one replica's discovery that a target
//! is failing protects the others.
//!
//! A breaker that opens or closes publishes it on the channel `switchyard:breakers`; every
//! replica subscribes and applies what the others publish to its own breakers (an open one for
//! the rest of its cooldown). An open breaker is also kept as the key
//! `switchyard:breaker:<slug>` for its cooldown, so that a replica that starts (or reconnects)
//! meanwhile learns of it. Nothing of this is on the request path: the routes read their
//! in-process breakers, and the publishing and subscribing happen in two background tasks.
//! While Redis is away each replica's breakers are its own.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::health::{BreakerEvent, HealthTable};
use crate::shared::Shared;

/// What goes over the channel.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    /// The replica that sent it (replicas ignore their own).
    origin: String,
    slug: String,
    /// Set for an opened breaker: its cooldown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_ms: Option<u64>,
}

/// The breaker table of a replica that shares its breakers, and the tasks that do it. The
/// breakers open now are read before it returns (for a second at most), so that a replica
/// starting during an outage does not call the failing target first.
pub async fn table(shared: Arc<Shared>) -> HealthTable {
    let (tx, rx) = mpsc::unbounded_channel();
    let table = HealthTable::shared(tx);
    if shared.available() {
        match tokio::time::timeout(Duration::from_secs(1), load_open(&shared, &table)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => shared.failed("reading open circuit breakers from", &e),
            Err(_) => tracing::warn!("reading open circuit breakers from Redis timed out"),
        }
    }
    let origin = uuid::Uuid::new_v4().to_string();
    tokio::spawn(publish(shared.clone(), origin.clone(), rx));
    tokio::spawn(subscribe(shared, origin, table.clone()));
    table
}

async fn publish(
    shared: Arc<Shared>,
    origin: String,
    mut events: mpsc::UnboundedReceiver<BreakerEvent>,
) {
    let channel = shared.key("breakers");
    while let Some(event) = events.recv().await {
        if !shared.available() {
            continue;
        }
        let (slug, open_ms) = match &event {
            BreakerEvent::Opened { slug, cooldown } => (slug, Some(cooldown.as_millis() as u64)),
            BreakerEvent::Closed { slug } => (slug, None),
        };
        let message = Message {
            origin: origin.clone(),
            slug: slug.to_string(),
            open_ms,
        };
        let Ok(text) = serde_json::to_string(&message) else {
            continue;
        };
        let key = shared.key(&format!("breaker:{slug}"));
        let mut pipe = redis::pipe();
        match open_ms {
            Some(ms) => pipe.cmd("SET").arg(&key).arg(ms).arg("PX").arg(ms.max(1)),
            None => pipe.cmd("DEL").arg(&key),
        }
        .ignore();
        pipe.cmd("PUBLISH").arg(&channel).arg(text).ignore();
        let mut conn = shared.conn();
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => {
                shared.succeeded();
            }
            Err(e) => shared.failed("sharing a circuit breaker through", &e),
        }
    }
}

/// Follows the other replicas' breakers, reconnecting after a failure.
async fn subscribe(shared: Arc<Shared>, origin: String, table: HealthTable) {
    let channel = shared.key("breakers");
    loop {
        if let Err(e) = follow(&shared, &origin, &channel, &table).await {
            tracing::debug!(error = %e, "breaker subscription lost; retrying");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow(
    shared: &Shared,
    origin: &str,
    channel: &str,
    table: &HealthTable,
) -> redis::RedisResult<()> {
    let mut pubsub = shared.client().get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    // Breakers that opened while this replica was not listening.
    load_open(shared, table).await?;
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let Ok(m) = serde_json::from_slice::<Message>(msg.get_payload_bytes()) else {
            continue;
        };
        if m.origin == origin {
            continue;
        }
        let slug: Arc<str> = m.slug.into();
        let event = match m.open_ms {
            Some(ms) => BreakerEvent::Opened {
                slug,
                cooldown: Duration::from_millis(ms),
            },
            None => BreakerEvent::Closed { slug },
        };
        table.apply_remote(&event);
    }
    Ok(())
}

/// Applies the breakers other replicas keep open (`switchyard:breaker:<slug>`).
async fn load_open(shared: &Shared, table: &HealthTable) -> redis::RedisResult<()> {
    let mut conn = shared.conn();
    let head = shared.key("breaker:");
    let pattern = format!("{head}*");
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(200)
            .query_async(&mut conn)
            .await?;
        for key in keys {
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await?;
            if let Some(slug) = key.strip_prefix(&head)
                && ttl > 0
            {
                table.apply_remote(&BreakerEvent::Opened {
                    slug: slug.into(),
                    cooldown: Duration::from_millis(ttl as u64),
                });
            }
        }
        cursor = next;
        if cursor == 0 {
            return Ok(());
        }
    }
}
