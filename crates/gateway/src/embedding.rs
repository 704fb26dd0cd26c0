//! Embeddings the gateway makes for itself (the semantic cache's look-ups, the firewall's
//! injection classifier), through the same routes and retries as callers' embedding calls.

use serde_json::Map;
use switchyard_protocol::embeddings::{EmbeddingInput, EmbeddingRequest, Vector};

use crate::app::AppState;
use crate::routing::{self, CallOptions, Needs};

/// The embeddings of `texts`, in order, by `model` (a slug, alias or route).
pub async fn embed(
    state: &AppState,
    model: &str,
    dimensions: Option<u32>,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, String> {
    let n = texts.len();
    let plan = state
        .routes
        .load()
        .plan(model, &CallOptions::default(), &Needs::default())
        .map_err(|e| e.to_string())?;
    let req = EmbeddingRequest {
        model: model.to_owned(),
        input: EmbeddingInput::Texts(texts),
        encoding_format: None,
        dimensions,
        user: None,
        extra: Map::new(),
    };
    let (_, resp) = routing::run(&plan, &state.metrics, |target| {
        let mut req = req.clone();
        req.model.clone_from(&target.target.model);
        target.target.provider.embed(req)
    })
    .await
    .map_err(|(_, e)| e.to_string())?;
    let mut data = resp.data;
    data.sort_by_key(|e| e.index);
    let vectors = data
        .into_iter()
        .map(|e| vector(e.embedding))
        .collect::<Result<Vec<_>, _>>()?;
    if vectors.len() != n {
        return Err(format!(
            "the embedding model answered {} vectors for {n} texts",
            vectors.len()
        ));
    }
    Ok(vectors)
}

fn vector(v: Vector) -> Result<Vec<f32>, String> {
    match v {
        Vector::Float(v) if !v.is_empty() => Ok(v.into_iter().map(|x| x as f32).collect()),
        Vector::Base64(b) => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| e.to_string())?;
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        }
        Vector::Float(_) => Err("the embedding model answered an empty vector".to_owned()),
    }
}
