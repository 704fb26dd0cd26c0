//! `switchyard firewall scan|eval`: the firewall's detectors from the command line.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};
use switchyard_firewall::{Classifier, Custom, Detector, Finding, Scanner, Training};
use switchyard_gateway::Config;

#[derive(Debug, Args)]
pub struct FirewallArgs {
    #[command(subcommand)]
    command: FirewallCommand,
}

#[derive(Debug, Subcommand)]
enum FirewallCommand {
    /// Show what the detectors find in a text (the argument, or standard input), as a user
    /// turn: injection signs, secrets, personal data and the configuration's custom terms.
    Scan {
        text: Option<String>,
        /// A configuration file whose [firewall.custom] terms and patterns are added.
        #[arg(long, env = "SWITCHYARD_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Also print the injection classifier's score (needs the local model
        /// all-minilm-l6-v2 in the data directory).
        #[arg(long)]
        classifier: bool,
        /// Where the local models are installed [default: server.data_dir of --config, or the
        /// user's data dir].
        #[arg(long, env = "SWITCHYARD_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Run the detectors over labelled corpora and print precision and recall per detector.
    ///
    /// Every `*.jsonl` file in DIR holds one object per line: {"text": "...", "labels":
    /// ["email", ...]}, the labels naming the detectors that should fire on the text. A first
    /// line {"scope": ["injection"]} says which detectors the file labels; the others are not
    /// scored on it.
    Eval {
        #[arg(default_value = "bench/firewall-eval/corpus", value_name = "DIR")]
        dir: PathBuf,
        /// Also print every text a detector got wrong.
        #[arg(long)]
        errors: bool,
        /// Score only the odd (`odd`) or even (`even`) lines of each file, e.g. to keep half of
        /// a corpus unseen while rules are tuned on the other half.
        #[arg(long, value_name = "HALF")]
        half: Option<String>,
    },
    /// Train the injection classifier (a linear model over all-MiniLM-L6-v2 embeddings) on the
    /// even lines of DIR's injection.jsonl and benign.jsonl, write its weights, and print its
    /// precision and recall on the odd lines, which it never saw, beside the rules'.
    ///
    /// Needs the local model: `switchyard models pull all-minilm-l6-v2`. The weights built into
    /// the binary come from this command (crates/firewall/data/injection-classifier.json).
    Train {
        #[arg(default_value = "bench/firewall-eval/corpus", value_name = "DIR")]
        dir: PathBuf,
        /// Where the local models are installed.
        #[arg(long, env = "SWITCHYARD_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Where the weights go.
        #[arg(
            long,
            default_value = "crates/firewall/data/injection-classifier.json",
            value_name = "FILE"
        )]
        out: PathBuf,
    },
}

/// The local model the classifier reads.
const CLASSIFIER_EMBEDDER: &str = "all-minilm-l6-v2";

pub fn run(args: FirewallArgs) -> Result<(), String> {
    match args.command {
        FirewallCommand::Scan {
            text,
            config,
            classifier,
            data_dir,
        } => {
            let config = config
                .as_deref()
                .map(|p| crate::read_config(Some(p)))
                .transpose()?;
            let models = classifier
                .then(|| crate::data_dir(data_dir, config.as_ref()))
                .transpose()?;
            scan(text, config.as_ref(), models)
        }
        FirewallCommand::Eval { dir, errors, half } => {
            let half = match half.as_deref() {
                None => None,
                Some("odd") => Some(1),
                Some("even") => Some(0),
                Some(other) => return Err(format!("--half `{other}`: use odd or even")),
            };
            eval(&dir, errors, half)
        }
        FirewallCommand::Train { dir, data_dir, out } => {
            train(&dir, crate::data_dir(data_dir, None)?, &out)
        }
    }
}

/// The configuration's scanner (with its custom terms), else the built-in one.
fn scanner(config: Option<&Config>) -> Result<Arc<Scanner>, String> {
    match config.and_then(|c| c.firewall.as_ref()) {
        Some(f) => Ok(f.scanner.clone()),
        None => Scanner::new(&Custom::default())
            .map(Arc::new)
            .map_err(|e| e.to_string()),
    }
}

/// Everything the detectors find in a text read as a user turn.
fn findings(scanner: &Scanner, text: &str) -> Vec<Finding> {
    let mut all = scanner.injection(text);
    all.extend(scanner.find(text));
    all.sort_by_key(|f| f.range.start);
    all
}

/// What a finding covers, without printing a secret whole.
fn masked(text: &str) -> String {
    let shown: String = text.chars().take(4).collect();
    let n = text.chars().count();
    if n <= 8 {
        format!("{shown}… ({n} chars)")
    } else {
        format!(
            "{shown}…{} ({n} chars)",
            text.chars().skip(n - 2).collect::<String>()
        )
    }
}

/// `classifier`: the data directory whose local model scores the text, if asked for.
fn scan(
    text: Option<String>,
    config: Option<&Config>,
    classifier: Option<PathBuf>,
) -> Result<(), String> {
    let text = match text {
        Some(t) => t,
        None => {
            let mut t = String::new();
            std::io::stdin()
                .read_to_string(&mut t)
                .map_err(|e| format!("reading standard input: {e}"))?;
            t
        }
    };
    let scanner = scanner(config)?;
    let found = findings(&scanner, &text);
    if found.is_empty() {
        println!("nothing found");
    }
    for f in found {
        println!(
            "{:<12} {:<22} bytes {:>5}..{:<5} {}",
            f.detector.as_str(),
            f.kind,
            f.range.start,
            f.range.end,
            masked(&text[f.range.clone()])
        );
    }
    if let Some(data_dir) = classifier {
        let c = Classifier::builtin()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| e.to_string())?;
        let v = runtime.block_on(async {
            let embedder = local_embedder(data_dir)?;
            embedder
                .embed(vec![text.clone()])
                .await
                .map_err(|e| e.to_string())
        })?;
        let score = v.vectors.first().map_or(0.0, |x| c.score(x));
        println!(
            "classifier   score {score:.3} ({} at {:.2} and above)",
            if score >= c.threshold {
                "injection"
            } else {
                "not injection"
            },
            c.threshold
        );
    }
    Ok(())
}

/// The local embedding model the classifier reads, from the data directory.
fn local_embedder(data_dir: PathBuf) -> Result<switchyard_local::Embedder, String> {
    let model = switchyard_local::ModelStore::new(&data_dir)
        .path(CLASSIFIER_EMBEDDER)
        .ok_or_else(|| {
            format!(
                "the local model {CLASSIFIER_EMBEDDER} is not installed in {}; run `switchyard models pull {CLASSIFIER_EMBEDDER}` first",
                data_dir.display()
            )
        })?;
    switchyard_local::Embedder::load(&model).map_err(|e| e.to_string())
}

#[derive(Default)]
struct Tally {
    tp: u64,
    fp: u64,
    fn_: u64,
    tn: u64,
}

fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        "-".to_owned()
    } else {
        format!("{:.4}", a as f64 / b as f64)
    }
}

fn eval(dir: &Path, errors: bool, half: Option<usize>) -> Result<(), String> {
    let scanner = scanner(None)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}; pass the corpus directory", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.jsonl corpus in {}", dir.display()));
    }
    let mut tallies: BTreeMap<Detector, Tally> = BTreeMap::new();
    let mut texts = 0u64;
    let mut bytes = 0usize;
    let mut spent = std::time::Duration::ZERO;
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let body = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
        let mut n = 0;
        let mut scope: Vec<Detector> = Detector::ALL.to_vec();
        for (i, line) in body
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let row: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{name} line {}: {e}", i + 1))?;
            if let Some(s) = row.get("scope").and_then(|s| s.as_array()) {
                scope = s
                    .iter()
                    .filter_map(|d| d.as_str().and_then(Detector::parse))
                    .collect();
                continue;
            }
            // Lines are numbered from 1, as editors show them.
            if half.is_some_and(|h| (i + 1) % 2 != h) {
                continue;
            }
            let text = row["text"]
                .as_str()
                .ok_or_else(|| format!("{name} line {}: no \"text\"", i + 1))?;
            let mut labels = Vec::new();
            for l in row["labels"].as_array().into_iter().flatten() {
                let l = l.as_str().unwrap_or_default();
                labels.push(
                    Detector::parse(l)
                        .ok_or_else(|| format!("{name} line {}: unknown label `{l}`", i + 1))?,
                );
            }
            let started = Instant::now();
            let found = findings(&scanner, text);
            spent += started.elapsed();
            texts += 1;
            bytes += text.len();
            n += 1;
            for d in scope.iter().copied() {
                let fired = found.iter().any(|f| f.detector == d);
                let labelled = labels.contains(&d);
                let t = tallies.entry(d).or_default();
                match (labelled, fired) {
                    (true, true) => t.tp += 1,
                    (false, true) => t.fp += 1,
                    (true, false) => t.fn_ += 1,
                    (false, false) => t.tn += 1,
                }
                if errors && labelled != fired {
                    let what = if fired { "false positive" } else { "missed" };
                    let kinds: Vec<&str> = found
                        .iter()
                        .filter(|f| f.detector == d)
                        .map(|f| f.kind)
                        .collect();
                    println!(
                        "{name}:{} {d} {what} {kinds:?}: {}",
                        i + 1,
                        text.chars()
                            .take(160)
                            .collect::<String>()
                            .replace('\n', "⏎")
                    );
                }
            }
        }
        eprintln!("{name}: {n} texts");
    }
    println!();
    println!(
        "{:<12} {:>8} {:>6} {:>6} {:>6} {:>10} {:>8} {:>8}",
        "detector", "labelled", "tp", "fp", "fn", "precision", "recall", "fp rate"
    );
    for (d, t) in &tallies {
        if t.tp + t.fp + t.fn_ == 0 {
            continue;
        }
        println!(
            "{:<12} {:>8} {:>6} {:>6} {:>6} {:>10} {:>8} {:>8}",
            d.as_str(),
            t.tp + t.fn_,
            t.tp,
            t.fp,
            t.fn_,
            ratio(t.tp, t.tp + t.fp),
            ratio(t.tp, t.tp + t.fn_),
            ratio(t.fp, t.fp + t.tn),
        );
    }
    println!();
    println!(
        "{texts} texts, {bytes} bytes; {:.1} µs per text on average (all detectors)",
        spent.as_secs_f64() * 1e6 / texts.max(1) as f64
    );
    Ok(())
}

/// Texts, each with whether it is an injection attempt.
type Labelled = Vec<(String, bool)>;

/// The injection and benign texts of a corpus directory, by half: (even lines, odd lines).
fn injection_corpus(dir: &Path) -> Result<(Labelled, Labelled), String> {
    let (mut dev, mut held) = (Vec::new(), Vec::new());
    for (file, label) in [("injection.jsonl", true), ("benign.jsonl", false)] {
        let path = dir.join(file);
        let body = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}; pass the corpus directory", path.display()))?;
        for (i, line) in body.lines().enumerate() {
            let row: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{file} line {}: {e}", i + 1))?;
            let Some(text) = row["text"].as_str() else {
                continue;
            };
            // Lines numbered from 1: even lines are the development half (as `eval --half even`).
            let half = if (i + 1) % 2 == 0 {
                &mut dev
            } else {
                &mut held
            };
            half.push((text.to_owned(), label));
        }
    }
    Ok((dev, held))
}

/// Embeds texts with the local model, 32 at a time, with progress on stderr.
async fn embed_all(
    embedder: &switchyard_local::Embedder,
    texts: &[(String, bool)],
    what: &str,
) -> Result<Vec<Vec<f32>>, String> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(32) {
        let batch: Vec<String> = chunk.iter().map(|(t, _)| t.clone()).collect();
        let e = embedder.embed(batch).await.map_err(|e| e.to_string())?;
        out.extend(e.vectors);
        eprint!("\rembedding the {what}: {}/{}", out.len(), texts.len());
    }
    eprintln!();
    Ok(out)
}

/// Precision, recall and false-positive rate of `predicted` against `labels`.
fn report(name: &str, predicted: &[bool], labels: &[bool]) {
    let mut t = Tally::default();
    for (&p, &l) in predicted.iter().zip(labels) {
        match (l, p) {
            (true, true) => t.tp += 1,
            (false, true) => t.fp += 1,
            (true, false) => t.fn_ += 1,
            (false, false) => t.tn += 1,
        }
    }
    println!(
        "{name:<22} {:>6} {:>6} {:>6} {:>10} {:>8} {:>8}",
        t.tp,
        t.fp,
        t.fn_,
        ratio(t.tp, t.tp + t.fp),
        ratio(t.tp, t.tp + t.fn_),
        ratio(t.fp, t.fp + t.tn),
    );
}

fn train(dir: &Path, data_dir: PathBuf, out: &Path) -> Result<(), String> {
    let (dev, held) = injection_corpus(dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let embedder = local_embedder(data_dir)?;
        let xs = embed_all(&embedder, &dev, "development half").await?;
        let ys: Vec<bool> = dev.iter().map(|(_, l)| *l).collect();
        let mut c = Classifier::train(
            &format!("local/{CLASSIFIER_EMBEDDER}"),
            &xs,
            &ys,
            Training::default(),
        )?;
        let positives = ys.iter().filter(|y| **y).count();
        c.trained_on = format!(
            "bench/firewall-eval/corpus, even lines: {positives} injection and {} benign texts; threshold chosen for F1 on them",
            ys.len() - positives
        );
        let json = serde_json::to_string_pretty(&c).map_err(|e| e.to_string())?;
        std::fs::write(out, json + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("wrote {} (threshold {:.2})", out.display(), c.threshold);

        // The held-out half, never seen by the training or by the rules' tuning.
        let hx = embed_all(&embedder, &held, "held-out half").await?;
        let labels: Vec<bool> = held.iter().map(|(_, l)| *l).collect();
        let scanner = scanner(None)?;
        let rules: Vec<bool> = held
            .iter()
            .map(|(t, _)| !scanner.injection(t).is_empty())
            .collect();
        let model: Vec<bool> = hx.iter().map(|x| c.is_injection(x)).collect();
        let either: Vec<bool> = rules.iter().zip(&model).map(|(a, b)| *a || *b).collect();
        println!(
            "\nheld-out half (odd lines): {} injection, {} benign",
            labels.iter().filter(|l| **l).count(),
            labels.iter().filter(|l| !**l).count()
        );
        println!(
            "{:<22} {:>6} {:>6} {:>6} {:>10} {:>8} {:>8}",
            "injection by", "tp", "fp", "fn", "precision", "recall", "fp rate"
        );
        report("rules", &rules, &labels);
        report("classifier", &model, &labels);
        report("rules or classifier", &either, &labels);
        Ok(())
    })
}
