//! The injection classifier: a logistic regression over sentence embeddings
//! (all-MiniLM-L6-v2, 384 dimensions), trained offline on the development half of
//! `bench/firewall-eval/corpus` (`switchyard firewall train`) and shipped as JSON.
//!
//! The rules of [`crate::injection`] read what a text says; the classifier reads what it
//! resembles, so it catches paraphrases no phrase list names. It is pure arithmetic here:
//! embedding the text is the caller's (the gateway runs the local model).

use serde::{Deserialize, Serialize};

/// The weights shipped with the binary.
const BUILTIN: &str = include_str!("../data/injection-classifier.json");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classifier {
    /// The embedding model whose vectors the weights read (`local/all-minilm-l6-v2`).
    pub model: String,
    pub weights: Vec<f32>,
    pub bias: f32,
    /// Scores at or above this are injection.
    pub threshold: f32,
    /// How it was trained, for people: corpus, half, sizes.
    #[serde(default)]
    pub trained_on: String,
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct Training {
    pub epochs: usize,
    pub rate: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
}

impl Default for Training {
    fn default() -> Self {
        Self {
            epochs: 3000,
            rate: 0.5,
            l2: 1e-3,
        }
    }
}

impl Classifier {
    /// The classifier built into the binary.
    pub fn builtin() -> Result<Self, String> {
        serde_json::from_str(BUILTIN).map_err(|e| format!("the built-in injection classifier: {e}"))
    }

    /// The probability that the embedded text is an injection attempt (0 for a vector of the
    /// wrong size).
    pub fn score(&self, embedding: &[f32]) -> f32 {
        if embedding.len() != self.weights.len() {
            return 0.0;
        }
        let z: f32 = self
            .weights
            .iter()
            .zip(embedding)
            .map(|(w, x)| w * x)
            .sum::<f32>()
            + self.bias;
        sigmoid(z)
    }

    pub fn is_injection(&self, embedding: &[f32]) -> bool {
        self.score(embedding) >= self.threshold
    }

    /// Fits the weights to labelled vectors by full-batch gradient descent on the log loss,
    /// each class weighted by the inverse of its size (so a corpus with twice as many benign
    /// texts does not teach the model to say "benign"). Deterministic: same data, same
    /// weights. The threshold is the one that maximises F1 on the training data.
    pub fn train(model: &str, xs: &[Vec<f32>], ys: &[bool], t: Training) -> Result<Self, String> {
        let dim = xs.first().map_or(0, Vec::len);
        if dim == 0 || xs.len() != ys.len() || xs.iter().any(|x| x.len() != dim) {
            return Err("training needs vectors of one size, one label each".into());
        }
        let positives = ys.iter().filter(|y| **y).count();
        let negatives = ys.len() - positives;
        if positives == 0 || negatives == 0 {
            return Err("training needs examples of both classes".into());
        }
        let n = ys.len() as f32;
        let wpos = n / (2.0 * positives as f32);
        let wneg = n / (2.0 * negatives as f32);
        let mut w = vec![0.0f32; dim];
        let mut b = 0.0f32;
        let mut grad = vec![0.0f32; dim];
        for _ in 0..t.epochs {
            grad.iter_mut().for_each(|g| *g = 0.0);
            let mut gb = 0.0f32;
            for (x, &y) in xs.iter().zip(ys) {
                let z: f32 = w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>() + b;
                let err = sigmoid(z) - if y { 1.0 } else { 0.0 };
                let weight = if y { wpos } else { wneg };
                for (g, xi) in grad.iter_mut().zip(x) {
                    *g += weight * err * xi;
                }
                gb += weight * err;
            }
            for (wi, g) in w.iter_mut().zip(&grad) {
                *wi -= t.rate * (g / n + t.l2 * *wi);
            }
            b -= t.rate * gb / n;
        }
        let mut c = Self {
            model: model.to_owned(),
            weights: w,
            bias: b,
            threshold: 0.5,
            trained_on: String::new(),
        };
        let scores: Vec<f32> = xs.iter().map(|x| c.score(x)).collect();
        let mut best = (f32::MIN, 0.5f32);
        for k in 1..100 {
            let th = k as f32 / 100.0;
            let (mut tp, mut fp, mut fneg) = (0.0f32, 0.0f32, 0.0f32);
            for (s, &y) in scores.iter().zip(ys) {
                match (*s >= th, y) {
                    (true, true) => tp += 1.0,
                    (true, false) => fp += 1.0,
                    (false, true) => fneg += 1.0,
                    (false, false) => {}
                }
            }
            let f1 = 2.0 * tp / (2.0 * tp + fp + fneg).max(1.0);
            if f1 > best.0 {
                best = (f1, th);
            }
        }
        c.threshold = best.1;
        Ok(c)
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_problem_and_scores_by_it() {
        // Two clusters in 3 dimensions.
        let xs: Vec<Vec<f32>> = (0..40)
            .map(|i| {
                let s = (i % 10) as f32 / 100.0;
                if i < 20 {
                    vec![1.0 - s, s, 0.1]
                } else {
                    vec![s, 1.0 - s, 0.1]
                }
            })
            .collect();
        let ys: Vec<bool> = (0..40).map(|i| i < 20).collect();
        let c = Classifier::train("test", &xs, &ys, Training::default()).unwrap();
        assert!(c.is_injection(&[0.9, 0.05, 0.1]));
        assert!(!c.is_injection(&[0.05, 0.9, 0.1]));
        assert!(c.score(&[0.9, 0.05, 0.1]) > 0.9);
        // The same data gives the same weights.
        assert_eq!(
            c,
            Classifier::train("test", &xs, &ys, Training::default()).unwrap()
        );
        // A vector of another size is not judged.
        assert_eq!(c.score(&[1.0]), 0.0);
        assert!(Classifier::train("t", &xs, &[true; 40], Training::default()).is_err());
    }

    #[test]
    fn the_builtin_weights_load() {
        let c = Classifier::builtin().unwrap();
        assert_eq!(c.model, "local/all-minilm-l6-v2");
        assert_eq!(c.weights.len(), 384);
        assert!(c.threshold > 0.0 && c.threshold < 1.0);
    }
}
