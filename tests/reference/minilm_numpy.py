"""Reference embeddings for all-MiniLM-L6-v2, computed independently of the Rust code.

sentence-transformers (the model's reference implementation) needs PyTorch, which cannot be
installed on the offline build machine; this script is a direct NumPy transcription of what it
computes for this model (modules.json: BertModel → mean pooling over the attention mask →
L2 normalisation), using Hugging Face's `tokenizers` for the tokenizer and `safetensors` for the
weights. Every step is float64. Run once, the output is checked in:

    python3 -m venv v && v/bin/pip install numpy safetensors tokenizers
    v/bin/python tests/reference/minilm_numpy.py <model dir> > crates/local/tests/fixtures/minilm_reference.json
"""

import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "The cat sits on the mat.",
    "A cat is sitting on a rug.",
    "Stock markets fell sharply on Monday.",
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "Ünïcödé and emoji 🚀 still tokenize.",
]


def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    # BERT's exact GELU (erf form).
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def main(model_dir):
    cfg = json.load(open(f"{model_dir}/config.json"))
    w = {k: v.astype(np.float64) for k, v in load_file(f"{model_dir}/model.safetensors").items()}
    prefix = "" if "embeddings.word_embeddings.weight" in w else "bert."
    g = lambda k: w[prefix + k]
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(256)
    heads, hidden = cfg["num_attention_heads"], cfg["hidden_size"]
    d = hidden // heads
    out = []
    for s in SENTENCES:
        enc = tok.encode(s)
        ids = np.array(enc.ids)
        n = len(ids)
        x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[:n] + g("embeddings.token_type_embeddings.weight")[np.zeros(n, dtype=int)]
        x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"))
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q = x @ g(p + "attention.self.query.weight").T + g(p + "attention.self.query.bias")
            k = x @ g(p + "attention.self.key.weight").T + g(p + "attention.self.key.bias")
            v = x @ g(p + "attention.self.value.weight").T + g(p + "attention.self.value.bias")
            q, k, v = (t.reshape(n, heads, d).transpose(1, 0, 2) for t in (q, k, v))
            att = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(1, 0, 2).reshape(n, hidden)
            a = ctx @ g(p + "attention.output.dense.weight").T + g(p + "attention.output.dense.bias")
            x = layer_norm(a + x, g(p + "attention.output.LayerNorm.weight"), g(p + "attention.output.LayerNorm.bias"))
            h = gelu(x @ g(p + "intermediate.dense.weight").T + g(p + "intermediate.dense.bias"))
            o = h @ g(p + "output.dense.weight").T + g(p + "output.dense.bias")
            x = layer_norm(o + x, g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"))
        e = x.mean(0)  # no padding: every token counts
        e /= np.linalg.norm(e)
        out.append({"text": s, "tokens": n, "embedding": [round(float(t), 7) for t in e]})
    json.dump({"model": "all-MiniLM-L6-v2", "method": __doc__.strip().splitlines()[0], "sentences": out}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
