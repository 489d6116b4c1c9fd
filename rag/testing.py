"""Test doubles for the logic around the models: never a substitute for the real ones where a test
proves that something works, but enough for tests of the index, answering and the chat."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .protocols import Message

_TOKEN = re.compile(r"\w+")


class ScriptedGenerator:
    """A stand-in `Generator` that replies from a script: for tests of the logic around the model,
    never instead of it.

    `replies` is a list (the n-th call gets the n-th reply, the last one repeats) or a function of
    the messages. `calls` records the messages of every call; `delay` sleeps before each piece.
    """

    def __init__(
        self,
        replies: Sequence[str] | Callable[[Sequence[Message]], str],
        *,
        name: str = "scripted",
        n_ctx: int = 4096,
        delay: float = 0.0,
    ):
        self.replies = replies
        self.name = name
        self.n_ctx = n_ctx
        self.delay = delay
        self.calls: list[list[Message]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> Iterator[str]:
        self.calls.append(list(messages))
        if callable(self.replies):
            reply = self.replies(messages)
        else:
            reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        for piece in re.findall(r"\S+\s*", reply)[:max_tokens]:  # a word a token; the budget holds, as for a model
            if self.delay:
                time.sleep(self.delay)
            yield piece


class HashEmbedder:
    """Deterministic bag-of-words vectors (feature hashing of the stemmed content words the lexical
    index also sees): texts sharing words are close, texts sharing none are orthogonal but for
    hash collisions. Fast and model-free, with the `Embedder` interface the index uses.
    """

    def __init__(self, dimension: int = 256, name: str = "hash-embedder"):
        self.name = name
        self.dimension = dimension
        self.max_tokens = 256

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(_TOKEN.findall(t)) + 2 for t in texts]

    def _vector(self, words: list[str]) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in words:
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "little") % self.dimension] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0:
            vector[0] = 1.0
            return vector
        return vector / norm

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        from .lexical import tokenize

        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        out = np.stack([self._vector(words) for words in tokenize(list(texts))])
        if progress:
            progress(len(texts))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def write_synthetic_corpus(path: Path, papers: int) -> Path:
    """A JSON Lines corpus of `papers` one-sentence abstracts (one chunk each); paper i is titled
    "Study i of marker zq{i}x" and is the only one holding the word zq{i}x."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(papers):
            f.write(
                json.dumps(
                    {
                        "title": f"Study {i} of marker zq{i}x",
                        "abstract": f"We measure the zq{i}x effect in setting {i}.",
                    }
                )
                + "\n"
            )
    return path


__all__ = ["HashEmbedder", "ScriptedGenerator", "write_synthetic_corpus"]
