"""Reference logits, greedy continuations and scores from llama.cpp for `llm-local`'s forward pass.

Writes under crates/llm-local/tests/fixtures/logits/:

* tiny-qwen3.json, tiny-gemma3.json, tiny-llama-rope-freqs.json, tiny-qwen2-yarn.json: for the
  tiny random-weight models of `llm_local::runtime::test_gguf::reference_models` (f32 weights),
  the file's FNV-1a 64 digest (so the test knows it wrote the same file) and, for a fixed token
  sequence (14 tokens; 80 for the RoPE variants, beyond YaRN's original context of 64), every
  position's top-8 logits and log-sum-exp;
* gemma3-270m.json: for the real Gemma-3-270M file (`../shared/tools/fetch-gguf.sh gemma3-270m`),
  per prompt the token ids, every position's top-1 next token and top-5 logits, a 16-token greedy
  continuation, and the log-likelihoods of continuations scored as `LanguageModel::score` does
  (context with BOS and continuation tokenized separately, one batch).

Run with llama-cpp-python (CPU build without AMX; one thread, every position's logits):

    cargo run -p llm-local --example write_tiny_gguf -- /tmp/tiny-gguf
    ~/.cache/llamacpp-noamx/bin/python scripts/llamacpp_logits_reference.py /tmp/tiny-gguf [NAME...]

Names (e.g. tiny-qwen2-yarn) restrict the run to those tiny models and skip Gemma-3-270M.
"""

import json
import os
import pathlib
import sys

import numpy as np
from llama_cpp import Llama

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/llm-local/tests/fixtures/logits"
GEMMA = pathlib.Path(os.environ.get("GGUF_DIR", pathlib.Path.home() / ".cache/gguf")) / "gemma3-270m.gguf"

# Ids of the tiny vocabulary: <|im_start|>, then byte and merge tokens.
TINY_TOKENS = [1, 50, 263, 60, 270, 3, 80, 259, 90, 110, 264, 130, 140, 150]
LONG_TINY_TOKENS = [1] + [3 + (37 * i) % 268 for i in range(79)]
# Per tiny model: its tokens and llama.cpp's context size.
TINY = {
    "tiny-qwen3": (TINY_TOKENS, 64),
    "tiny-gemma3": (TINY_TOKENS, 64),
    "tiny-llama-rope-freqs": (LONG_TINY_TOKENS, 128),
    "tiny-qwen2-yarn": (LONG_TINY_TOKENS, 128),
}

LONG = " ".join(
    f"Step {i}: the {w} network reached {60 + i % 30}% accuracy after {i + 1} epochs."
    for i, w in enumerate(["residual", "dense", "convolutional", "recurrent", "wide", "deep"] * 6)
)
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Neural architecture search is a method that",
    LONG,
]
SCORES = [
    ("The capital of France is", [" Paris", " Berlin", " a banana"]),
    ("2 + 2 =", [" 4", " 5", " twenty-two"]),
    ("A convolutional layer with a 3x3 kernel", [" slides over the image", " eats breakfast"]),
]


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def load(path, n_ctx):
    return Llama(str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                 n_threads=1, verbose=False)


def logits(llm, tokens):
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float64)


def log_sum_exp(row):
    m = row.max()
    return float(m + np.log(np.exp(row - m).sum()))


def top(row, k):
    ids = np.argsort(-row, kind="stable")[:k]
    return [[int(i), round(float(row[i]), 5)] for i in ids]


def tiny(dir_, names):
    for name in names:
        tokens, n_ctx = TINY[name]
        path = pathlib.Path(dir_) / f"{name}.gguf"
        llm = load(path, n_ctx)
        rows = logits(llm, tokens)
        out = {
            "file_fnv1a64": fnv1a64(path.read_bytes()),
            "tokens": tokens,
            "positions": [{"top": top(r, 8), "logsumexp": round(log_sum_exp(r), 5)} for r in rows],
        }
        (OUT / f"{name}.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")


def gemma():
    llm = load(GEMMA, 1024)
    tok = lambda s, bos: llm.tokenize(s.encode(), add_bos=bos, special=False)
    prompts = []
    for text in PROMPTS:
        ids = tok(text, True)
        rows = logits(llm, ids)
        greedy = []  # token by token after the prompt, as generation runs
        for _ in range(16):
            greedy.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
            llm.eval(greedy[-1:])
        prompts.append({
            "text": text,
            "tokens": ids,
            "next": [int(np.argmax(r)) for r in rows],
            "top5_last": top(rows[-1], 5),
            "greedy": greedy,
        })
    scores = []
    for context, conts in SCORES:
        ctx = tok(context, True)
        lps = []
        for c in conts:
            cont = tok(c, False)
            rows = logits(llm, ctx + cont[:-1])[len(ctx) - 1:]
            lp = sum(float(r[t] - log_sum_exp(r)) for r, t in zip(rows, cont))
            lps.append(round(lp, 4))
        scores.append({"context": context, "continuations": conts, "log_probs": lps})
    out = {"prompts": prompts, "scores": scores}
    (OUT / "gemma3-270m.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    names = sys.argv[2:]
    tiny(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny-gguf", names or list(TINY))
    if not names and GEMMA.is_file():
        gemma()
    elif not names:
        print(f"{GEMMA} is absent: run ../shared/tools/fetch-gguf.sh gemma3-270m", file=sys.stderr)
