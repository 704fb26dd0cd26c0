//! The generation path on a tiny random-weight model the test writes: shapes, streaming, stop
//! conditions, token counting, the busy limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use switchyard_local::{Generation, Generator, Piece, TemplateMessage};

fn model() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-tiny-{}", std::process::id()));
    if !dir.join("model.safetensors").exists() {
        switchyard_local::testing::tiny_model(&dir).unwrap();
    }
    dir
}

fn ask(max_tokens: usize, stop: Vec<String>) -> Generation {
    Generation {
        messages: vec![
            TemplateMessage {
                role: "system".into(),
                content: "w5 w6".into(),
            },
            TemplateMessage {
                role: "user".into(),
                content: "w7 w8 w9".into(),
            },
        ],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        top_p: None,
        seed: Some(1),
        stop,
    }
}

async fn run(g: &Generator, generation: Generation) -> (String, Vec<String>, Piece) {
    let mut rx = g.start(generation).unwrap();
    let mut pieces = Vec::new();
    while let Some(p) = rx.recv().await {
        match p {
            Piece::Text(t) => pieces.push(t),
            end => return (pieces.concat(), pieces, end),
        }
    }
    panic!("no end")
}

#[tokio::test]
async fn generates_counts_and_stops() {
    let g = Generator::load(&model()).unwrap();
    // The prompt: `<s> system w5 w6 </s> <s> user w7 w8 w9 </s> <s> assistant` = 13 tokens.
    let (text, pieces, end) = run(&g, ask(12, vec![])).await;
    let Piece::Done {
        finish,
        prompt_tokens,
        completion_tokens,
    } = end
    else {
        panic!("{end:?}");
    };
    assert_eq!(prompt_tokens, 13);
    if finish == "length" {
        assert_eq!(completion_tokens, 12);
    } else {
        assert!(completion_tokens < 12, "stopped at </s>");
    }
    // Every generated token is a word of the vocabulary; special ones (`<s>`) are not shown.
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(
        !words.is_empty() && words.len() as u64 <= completion_tokens,
        "{text}"
    );
    assert!(words.iter().all(|w| !w.starts_with('<')), "{text}");
    assert!(pieces.len() > 1, "streamed piece by piece: {pieces:?}");
    // Greedy decoding is deterministic.
    let (again, _, _) = run(&g, ask(12, vec![])).await;
    assert_eq!(again, text);
    // A stop sequence ends the answer before it.
    let word = words[words.len() / 2];
    let (cut, _, end) = run(&g, ask(12, vec![word.to_owned()])).await;
    assert!(matches!(end, Piece::Done { finish: "stop", .. }), "{end:?}");
    assert!(!cut.contains(word), "{cut}");
    assert!(text.starts_with(cut.trim_end()), "{cut} / {text}");
}

#[tokio::test]
async fn a_burst_beyond_the_waiting_room_is_refused() {
    let g = Generator::load(&model()).unwrap();
    let mut started = Vec::new();
    let mut refused = 0;
    for _ in 0..(switchyard_local::generate::WAITING + 3) {
        match g.start(ask(100, vec![])) {
            Ok(rx) => started.push(rx),
            Err(switchyard_local::GenerateError::Busy) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused >= 2, "{refused} refused");
    for mut rx in started {
        while rx.recv().await.is_some() {}
    }
    assert!(
        g.start(ask(2, vec![])).is_ok(),
        "free again once they finished"
    );
}

#[test]
fn the_tiny_model_is_the_same_every_time() {
    let base = std::env::temp_dir().join(format!("switchyard-tiny-twice-{}", std::process::id()));
    let (a, b) = (base.join("a"), base.join("b"));
    switchyard_local::testing::tiny_model(&a).unwrap();
    switchyard_local::testing::tiny_model(&b).unwrap();
    for f in ["model.safetensors", "config.json", "tokenizer.json"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}
