"""What a dense (embedding) stage would cost per question, measured without downloading a model.

    .venv/bin/python services/ai-responder/scripts/estimate_dense_cost.py

The small multilingual sentence encoders (paraphrase-multilingual-MiniLM-L12-v2, multilingual-e5-small)
are 12-layer transformers with 384 hidden units, 12 heads and a 1,536-unit feed-forward layer. This
runs that architecture's forward pass with random float32 weights in numpy (one thread, as one
replica's share of the cores) on a 16-token question, which is the arithmetic any runtime has to do;
ONNX Runtime is typically within 2x of it. The figure is a floor: tokenisation, the 250k-word
embedding table and pooling come on top.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

LAYERS, HIDDEN, HEADS, FFN, TOKENS = 12, 384, 12, 1536, 16


def layer_norm(x: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)


def main() -> None:
    rng = np.random.default_rng(0)
    weights = [
        {
            "qkv": rng.standard_normal((HIDDEN, 3 * HIDDEN), dtype=np.float32) * 0.02,
            "out": rng.standard_normal((HIDDEN, HIDDEN), dtype=np.float32) * 0.02,
            "up": rng.standard_normal((HIDDEN, FFN), dtype=np.float32) * 0.02,
            "down": rng.standard_normal((FFN, HIDDEN), dtype=np.float32) * 0.02,
        }
        for _ in range(LAYERS)
    ]
    x0 = rng.standard_normal((TOKENS, HIDDEN), dtype=np.float32)

    def encode() -> np.ndarray:
        x = x0
        head = HIDDEN // HEADS
        for w in weights:
            q, k, v = np.split(x @ w["qkv"], 3, axis=-1)
            q, k, v = (m.reshape(TOKENS, HEADS, head).transpose(1, 0, 2) for m in (q, k, v))
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(head)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            attention = (scores / scores.sum(-1, keepdims=True)) @ v
            x = layer_norm(x + attention.transpose(1, 0, 2).reshape(TOKENS, HIDDEN) @ w["out"])
            hidden = x @ w["up"]
            x = layer_norm(x + (hidden * 0.5 * (1 + np.tanh(0.8 * hidden))) @ w["down"])
        return x.mean(0)

    for _ in range(20):
        encode()
    samples = []
    for _ in range(200):
        started = time.process_time()
        encode()
        samples.append((time.process_time() - started) * 1000)
    samples.sort()
    print(
        f"{LAYERS}-layer, {HIDDEN}-wide encoder, {TOKENS} tokens: median {statistics.median(samples):.2f} ms CPU,"
        f" p90 {samples[int(len(samples) * 0.9)]:.2f} ms per question (one thread)"
    )


if __name__ == "__main__":
    main()
