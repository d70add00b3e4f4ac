"""Offline prompt conditioning: text -> conditioning tokens, with no downloaded text encoder.

A fixed hashing featuriser: every lower-cased word gets a seeded Gaussian vector (seeded by a
process-independent hash of the word), words are spread over ``n_tokens - 1`` slots by position,
and the last token is the mean of all word vectors (a pooled summary, like a global condition).
The empty prompt maps to all zeros: the "unconditional" branch of classifier-free guidance.
Real checkpoints use real text encoders (T5, CLAP text); this keeps the default run offline while
different prompts still give different, deterministic conditioning.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from bench.core.hashing import stable_hash

_WORD = re.compile(r"[a-z0-9]+")


def prompt_words(prompt: str) -> list[str]:
    return _WORD.findall(prompt.lower())


def word_vector(word: str, dim: int) -> np.ndarray:
    rng = np.random.default_rng(stable_hash("word", word, dim))
    return rng.standard_normal(dim).astype(np.float32) / np.sqrt(dim)


def prompt_tokens(prompt: str, n_tokens: int, dim: int) -> torch.Tensor:
    """(n_tokens, dim) float32 conditioning tokens for ``prompt`` (zeros for the empty prompt)."""
    out = np.zeros((n_tokens, dim), dtype=np.float32)
    words = prompt_words(prompt)
    if not words:
        return torch.from_numpy(out)
    vectors = np.stack([word_vector(w, dim) for w in words])
    slots = max(1, n_tokens - 1)
    for i, vec in enumerate(vectors):
        out[i % slots] += vec
    out[-1] = vectors.mean(axis=0) * np.sqrt(len(words))
    return torch.from_numpy(out)


def style_ids(prompt: str, n_tokens: int, vocab: int) -> torch.Tensor:
    """(n_tokens,) int64 style token ids in [1, vocab) for ``prompt``; id 0 is reserved for the
    masked (unconditional) style used by classifier-free guidance, and for the empty prompt.
    Built on the host (callers upload them once per prompt)."""
    words = prompt_words(prompt)
    if not words or vocab < 2:
        return torch.zeros(n_tokens, dtype=torch.int64, device="cpu")
    key = " ".join(words)
    ids = [1 + stable_hash("style", key, k) % (vocab - 1) for k in range(n_tokens)]
    return torch.tensor(ids, dtype=torch.int64, device="cpu")
