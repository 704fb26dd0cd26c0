//! OpenTelemetry traces: one span per call, exported over OTLP/HTTP (JSON) when an endpoint is
//! configured (`[telemetry] otlp_endpoint`, else the standard `OTEL_EXPORTER_OTLP_ENDPOINT`).
//!
//! A span follows the GenAI semantic conventions: named `{operation} {model}` (`chat gpt-4o`),
//! kind client, with `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
//! `gen_ai.response.model`, `gen_ai.usage.input_tokens` and `…output_tokens`, `error.type` on
//! failure, and Switchyard's own facts under `switchyard.*` (request id, route, key name,
//! attempts, cache outcome, cost, time to first token). A caller's W3C `traceparent` header
//! makes the span its child, so the gateway shows up inside the caller's trace. Spans are built
//! from the finished call record and handed to a batch exporter on its own thread: the request
//! path does not wait for the collector. Metadata and bodies are not exported.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};

use crate::logs::Record;

/// Where and how spans are sent.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`); `/v1/traces` is added.
    pub endpoint: String,
    pub service_name: String,
    /// Sent with every export (a collector's API key): secrets, never printed.
    pub headers: Vec<(String, switchyard_providers::Secret)>,
}

#[derive(Debug)]
pub struct Telemetry {
    exporter: Option<(SdkTracerProvider, SdkTracer)>,
}

/// Reads `traceparent` and `tracestate` from request headers.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

impl Telemetry {
    /// No export.
    pub fn off() -> Self {
        Self { exporter: None }
    }

    /// Starts the exporter. Nothing is sent until the first call finishes.
    pub fn start(config: &TelemetryConfig) -> Result<Self, String> {
        let base = config.endpoint.trim_end_matches('/');
        let url = if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(url)
            .with_timeout(Duration::from_secs(10))
            .with_headers(
                config
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.expose().to_owned()))
                    .collect::<HashMap<_, _>>(),
            )
            .build()
            .map_err(|e| e.to_string())?;
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(Duration::from_secs(1))
                    .with_max_queue_size(8_192)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("switchyard");
        Ok(Self {
            exporter: Some((provider, tracer)),
        })
    }

    /// The caller's span, from its `traceparent` header, if it sent a valid one.
    pub fn parent(&self, headers: &HeaderMap) -> Option<SpanContext> {
        if self.exporter.is_none() || !headers.contains_key("traceparent") {
            return None;
        }
        let cx = TraceContextPropagator::new().extract(&Headers(headers));
        let span = cx.span().span_context().clone();
        span.is_valid().then_some(span)
    }

    /// Exports the span of a finished call.
    pub fn call(&self, r: &Record, parent: Option<&SpanContext>) {
        let Some((_, tracer)) = &self.exporter else {
            return;
        };
        let operation = if r.surface == "embeddings" {
            "embeddings"
        } else {
            "chat"
        };
        let start = UNIX_EPOCH + Duration::from_millis(r.ts.max(0) as u64);
        let end = start + Duration::from_millis(r.latency_ms);
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("gen_ai.request.model", r.requested_model.clone()),
            KeyValue::new("http.response.status_code", i64::from(r.status)),
            KeyValue::new("switchyard.request_id", r.id.clone()),
            KeyValue::new("switchyard.surface", r.surface),
            KeyValue::new("switchyard.stream", r.stream),
            KeyValue::new("switchyard.attempts", r.attempts.len() as i64),
        ];
        let mut optional = |key: &'static str, value: Option<opentelemetry::Value>| {
            if let Some(v) = value {
                attributes.push(KeyValue::new(key, v));
            }
        };
        optional("gen_ai.provider.name", r.provider.clone().map(Into::into));
        optional("gen_ai.response.model", r.model.clone().map(Into::into));
        let answered = r.status < 400;
        optional(
            "gen_ai.usage.input_tokens",
            answered.then_some((r.input_tokens as i64).into()),
        );
        optional(
            "gen_ai.usage.output_tokens",
            answered.then_some((r.output_tokens as i64).into()),
        );
        optional("error.type", r.error_class.clone().map(Into::into));
        optional("switchyard.route", r.route.clone().map(Into::into));
        optional("switchyard.key", r.key_name.clone().map(Into::into));
        optional("switchyard.cache", r.cache.map(Into::into));
        optional("switchyard.cost_usd", r.cost_usd.map(Into::into));
        optional("switchyard.saved_usd", r.saved_usd.map(Into::into));
        optional("switchyard.ttft_ms", r.ttft_ms.map(|t| (t as i64).into()));
        let parent_cx = match parent {
            Some(p) => Context::new().with_remote_span_context(p.clone()),
            None => Context::new(),
        };
        let mut span = tracer
            .span_builder(format!("{operation} {}", r.requested_model))
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent_cx);
        use opentelemetry::trace::Span as _;
        if r.status >= 400 || r.error_class.is_some() {
            span.set_status(Status::error(
                r.error_class
                    .clone()
                    .unwrap_or_else(|| r.status.to_string()),
            ));
        }
        span.end_with_timestamp(end);
    }

    /// Sends what is queued and stops the exporter (on shutdown).
    pub fn shutdown(&self) {
        if let Some((provider, _)) = &self.exporter
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "flushing traces on shutdown failed");
        }
    }
}
