//! `switchyard firewall scan|eval`: the firewall's detectors from the command line.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};
use switchyard_firewall::{Custom, Detector, Finding, Scanner};
use switchyard_gateway::Env;
use switchyard_gateway::config::ConfigSource;

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
}

pub fn run(args: FirewallArgs) -> Result<(), String> {
    match args.command {
        FirewallCommand::Scan { text, config } => scan(text, config.as_deref()),
        FirewallCommand::Eval { dir, errors, half } => {
            let half = match half.as_deref() {
                None => None,
                Some("odd") => Some(1),
                Some("even") => Some(0),
                Some(other) => return Err(format!("--half `{other}`: use odd or even")),
            };
            eval(&dir, errors, half)
        }
    }
}

fn scanner(config: Option<&Path>) -> Result<Arc<Scanner>, String> {
    let built_in = || {
        Scanner::new(&Custom::default())
            .map(Arc::new)
            .map_err(|e| e.to_string())
    };
    let Some(path) = config else {
        return built_in();
    };
    let source = ConfigSource {
        path: Some(path.to_owned()),
        env: Env::from_process(),
        listen: None,
    };
    let config = source
        .load(&std::collections::HashMap::new())
        .map_err(|e| e.to_string())?;
    match config.firewall {
        Some(f) => Ok(f.scanner),
        None => built_in(),
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

fn scan(text: Option<String>, config: Option<&Path>) -> Result<(), String> {
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
    Ok(())
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
