"""Vectors shipped inside the package for the bundled corpus, so that its first ingest embeds nothing.

One file a packaged embedding model (`rag/data/vectors/<model>.npz`): the vectors (float16) of the
texts that model embeds for the bundled corpus, keyed by a hash of each text, and the recipe they
were made with. An ingest takes a text's vector from there when the model and recipe are the ones
in use and the text is the same; anything else (another corpus, other chunk sizes) is embedded as
usual. `tests/test_precomputed.py` checks that the shipped vectors equal freshly computed ones.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rag.protocols import Embedder
from rag.resources import resource_path

# What made the shipped vectors: a new export or quantisation recipe makes them stale (unused).
RECIPES = {"all-MiniLM-L6-v2": "onnx-fp32-1", "all-mpnet-base-v2": "onnx-int8-1"}


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def vectors_file(model: str) -> Path:
    return resource_path("vectors") / f"{model}.npz"


class Precomputed:
    """Known vectors by text; `encode` embeds only the texts it does not know."""

    def __init__(self, table: dict[bytes, np.ndarray] | None = None):
        self.table = table or {}

    @classmethod
    @functools.cache
    def shipped(cls, model: str) -> Precomputed:
        """The vectors shipped for `model` (none if there are none, or they were made another way)."""
        path = vectors_file(model)
        if model not in RECIPES or not path.is_file():
            return cls()
        with np.load(path, allow_pickle=False) as data:
            if str(data["recipe"]) != RECIPES[model]:
                return cls()
            keys, vectors = data["keys"], data["vectors"]
            return cls({bytes(k): v for k, v in zip(keys, vectors)})

    def __len__(self) -> int:
        return len(self.table)

    def encode(
        self, texts: Sequence[str], embedder: Embedder, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """`embedder.encode(texts)`, with the known texts' vectors taken from the table."""
        if not self.table:
            return embedder.encode(list(texts), progress=progress)
        known = [self.table.get(text_key(t)) for t in texts]
        todo = [i for i, v in enumerate(known) if v is None]
        fresh = embedder.encode([texts[i] for i in todo], progress=progress) if todo else None
        if progress and len(texts) > len(todo):
            progress(len(texts) - len(todo))
        width = fresh.shape[1] if fresh is not None else len(next(v for v in known if v is not None))
        out = np.zeros((len(texts), width), dtype=np.float32)
        for i, vector in enumerate(known):
            if vector is not None:
                out[i] = vector
        if fresh is not None:
            out[todo] = fresh
        return out


def write(model: str, texts: Sequence[str], vectors: np.ndarray, path: Path | None = None) -> Path:
    """Save `vectors` (row i for texts[i]) as the shipped vectors of `model`."""
    target = path or vectors_file(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    keys = np.array([text_key(t) for t in texts], dtype="S16")
    np.savez_compressed(target, keys=keys, vectors=vectors.astype(np.float16), recipe=np.array(RECIPES[model]))
    return target
