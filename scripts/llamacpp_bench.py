"""llama.cpp's prefill and decode speed on a GGUF file, as one JSON line (the reference for
`cargo run --release --example llm_bench`). Same passage and prefixes as the Rust side; greedy.

    py=$(../shared/tools/llamacpp-env.sh | tail -1) && "$py" scripts/llamacpp_bench.py MODEL.gguf
"""

import json
import re
import resource
import statistics
import sys
import time

from llama_cpp import Llama

RUST = open("examples/llm_bench.rs").read()
PASSAGE = re.search(r'const PASSAGE: &str = "(.*?)";', RUST, re.S).group(1)
PREFIXES = ["Today:", "Summary:", "Notes:", "Essay:", "Story:"]


def main():
    path = sys.argv[1]
    gen = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    llm = Llama(path, n_threads=2, n_threads_batch=2, n_ctx=2048, n_batch=512, verbose=False)
    prefill, decode = [], []
    for r in range(repeats):
        prompt = f"{PREFIXES[r % 5]} {PASSAGE}"
        tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        # Prefill (and one token), then the whole generation, each from an empty cache.
        llm.reset()
        t = time.perf_counter()
        llm.create_completion(prompt, max_tokens=1, temperature=0.0)
        first = time.perf_counter() - t
        llm.reset()
        t = time.perf_counter()
        out = llm.create_completion(prompt, max_tokens=gen, temperature=0.0)
        full = time.perf_counter() - t
        n = out["usage"]["completion_tokens"]
        prefill.append(len(tokens) / first)
        decode.append((n - 1) / max(full - first, 1e-9))
    print(json.dumps({
        "impl": "llama.cpp",
        "prompt_tokens": len(tokens),
        "generated": n,
        "prefill_tps": round(statistics.median(prefill), 2),
        "decode_tps": round(statistics.median(decode), 2),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
