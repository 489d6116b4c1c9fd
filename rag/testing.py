"""Test doubles for the logic around the models: never a substitute for the real ones where a test
proves that something works, but enough for tests of the index, answering and the chat."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .llm import ScriptedGenerator

_TOKEN = re.compile(r"\w+")


class HashEmbedder:
    """Deterministic bag-of-words vectors (feature hashing): texts sharing words are close.

    Fast and model-free, with the `Embedder` interface the index uses.
    """

    def __init__(self, dimension: int = 64, name: str = "hash-embedder"):
        self.name = name
        self.dimension = dimension
        self.max_tokens = 256

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(_TOKEN.findall(t)) + 2 for t in texts]

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in _TOKEN.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "little") % self.dimension] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0:
            vector[0] = 1.0
            return vector
        return vector / norm

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)
        if progress:
            progress(len(texts))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def write_synthetic_corpus(path: Path, papers: int) -> Path:
    """A JSON Lines corpus of `papers` one-sentence abstracts (one chunk each); paper i is titled
    "Study i of marker zq{i}x" and is the only one holding the word zq{i}x."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(papers):
            f.write(json.dumps({"title": f"Study {i} of marker zq{i}x",
                                "abstract": f"We measure the zq{i}x effect in setting {i}."}) + "\n")
    return path


__all__ = ["HashEmbedder", "ScriptedGenerator", "write_synthetic_corpus"]
