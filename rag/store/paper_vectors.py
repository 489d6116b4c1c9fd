"""The paper side of retrieval: one vector per paper (title and whole abstract) from a second,
stronger embedding model (by default all-mpnet-base-v2, int8).

Why a second model: the chunk embedder (MiniLM) and BM25 both lean on the words a question shares
with its paper, and a question in a user's own words shares few. mpnet over the whole abstract finds
the paper of a paraphrased question far more often (BENCHMARKS "Paraphrase-robust retrieval"); fused
with the two others it keeps what they do well. Its vectors live in the catalog (float16, like the
chunks'), are written with each batch of an ingest, and are scanned exactly at search time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from rag.protocols import Embedder
from rag.store.catalog import Catalog
from rag.store.filters import one_blas_thread
from rag.store.precomputed import Precomputed
from rag.types import Paper

if TYPE_CHECKING:
    from rag.settings import Settings

# Papers per repair step (an index from before the paper side, or after the model changed): each
# step commits, so a cut run resumes.
REPAIR_BATCH = 64
# Rows scanned per block: float16 kept in memory is turned into float32 a block at a time.
SCAN_BLOCK = 16384


def paper_text(paper: Paper) -> str:
    """What the paper model embeds: the title and the whole abstract (cut at the model's window)."""
    return f"{paper.title}. {paper.abstract}"


def make_paper_embedder(settings: Settings) -> Embedder | None:
    """The embedder `settings.models.paper_embedding_model` names (None: the paper side is off)."""
    name = settings.models.paper_embedding_model
    if not name:
        return None
    from rag.backends.embeddings import Embedder as LocalEmbedder

    return LocalEmbedder(
        name,
        batch_size=8,
        n_threads=settings.models.n_threads,
        cache_dir=settings.models_dir / "embeddings",
        quantize=True,
    )


class PaperEmbedding:
    """Embeds papers with the paper model, taking vectors shipped for the bundled corpus where they apply."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self.precomputed = Precomputed.shipped(embedder.name)

    @property
    def name(self) -> str:
        return self.embedder.name

    def embed(self, papers: Sequence[Paper], progress: Callable[[int], None] | None = None) -> np.ndarray:
        texts = [paper_text(p) for p in papers]
        return self.precomputed.encode(texts, self.embedder, progress)

    def begin(self, catalog: Catalog) -> None:
        """Before an ingest writes vectors: the catalog's are this model's (another model's are dropped)."""
        if catalog.get_meta("paper_model") != self.name:
            catalog.clear_paper_vectors(self.name)

    def repair(self, catalog: Catalog, progress: Callable[[str, int, int], None] | None = None) -> int:
        """After an ingest: give every paper of the catalog that has none its vector (papers from before
        the paper side, or from another model's); how many were embedded."""
        self.begin(catalog)
        missing = catalog.paper_count() - catalog.paper_vector_count()
        done = 0
        while missing > 0 and (ids := catalog.papers_without_vector(REPAIR_BATCH)):
            papers = catalog.get_papers(ids)
            ordered = [papers[pid] for pid in ids if pid in papers]
            report = (lambda n: progress("paper vectors", n, missing)) if progress else None
            vectors = self.embed(ordered, report)
            catalog.set_paper_vectors({p.paper_id: v for p, v in zip(ordered, vectors)})
            done += len(ordered)
        return done


class PaperScores:
    """Cosine of a query to every paper's vector, from the catalog's vectors held in memory (read once
    per catalog generation); None where the index has no complete paper side for this model."""

    def __init__(self, catalog_of: Callable[[], Catalog], model: str):
        self.catalog_of = catalog_of
        self.model = model
        self._lock = threading.Lock()
        self._held: tuple[int, list[str], np.ndarray] | None = None
        self.row: dict[str, int] = {}  # paper id -> its row in the held vectors

    def ready(self) -> bool:
        catalog = self.catalog_of()
        return catalog.get_meta("paper_model") == self.model and catalog.paper_vector_count() == catalog.paper_count()

    def held(self) -> tuple[list[str], np.ndarray] | None:
        """The papers' ids and vectors (float16), or None without a complete paper side."""
        catalog = self.catalog_of()
        generation = catalog.generation
        with self._lock:
            if self._held is None or self._held[0] != generation:
                if not self.ready():
                    self._held = (generation, [], np.zeros((0, 0), np.float16))
                else:
                    ids, matrix = catalog.all_paper_vectors()
                    self._held = (generation, ids, matrix)
                self.row = {pid: i for i, pid in enumerate(self._held[1])}
            _, ids, matrix = self._held
        return (ids, matrix) if ids else None

    def scores(self, query: np.ndarray, held: tuple[list[str], np.ndarray]) -> np.ndarray:
        """The cosine of `query` to each paper's vector (`held`, as `held()` returned it)."""
        ids, matrix = held
        q = (query / max(float(np.linalg.norm(query)), 1e-12)).astype(np.float32)
        out = np.empty(len(ids), dtype=np.float32)
        with one_blas_thread():
            for start in range(0, len(ids), SCAN_BLOCK):
                block = matrix[start : start + SCAN_BLOCK].astype(np.float32)
                out[start : start + len(block)] = (block @ q) / np.maximum(np.linalg.norm(block, axis=1), 1e-12)
        return out
