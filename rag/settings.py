"""Settings: one pydantic-settings class, read from `RAG_*` environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CORPUS = Path(__file__).resolve().parent / "data" / "corpus"


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("rag-abstracts", appauthor=False))


class Settings(BaseSettings):
    """Everything a user can configure. Each field can be set as `RAG_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Data dir: index, models, chats.")
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Embedding model: the packaged all-MiniLM-L6-v2 or a local sentence-transformers folder.",
    )
    model: str | None = Field(
        default=None, description="LLM: a name from models.txt or a path to a .gguf (default: first entry)."
    )
    chunk_tokens: int = Field(default=160, ge=32, le=254, description="Word pieces per chunk, title included.")
    chunk_overlap: int = Field(default=1, ge=0, le=3, description="Sentences shared by neighbouring chunks.")
    embed_batch_size: int = Field(default=16, ge=1)
    candidates: int = Field(default=40, ge=1, description="Chunks each retriever proposes before fusion.")
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal-rank-fusion constant.")
    candidates_for_answer: int = Field(default=5, ge=1, description="Papers retrieved for an answer.")
    context_passages: int = Field(default=3, ge=1, le=10, description="Top papers shown to the model.")
    context_sentences: int = Field(default=2, ge=1, description="Sentences kept from each of those abstracts.")
    context_tokens: int = Field(default=450, ge=50, description="Token budget of the passages in the prompt.")
    min_relevance: float = Field(default=0.25, description="Below this best cosine, refuse without calling the model.")
    min_support: float = Field(default=0.5, description="Share of a sentence's content words its passage must hold.")
    max_answer_tokens: int = Field(default=160, ge=16)
    temperature: float = Field(default=0.0, ge=0.0)
    lock_timeout: float = Field(default=600, ge=0, description="Seconds an ingest waits for another one to finish.")
    n_threads: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    models_home: Path | None = Field(default=None, description="Where models are assembled (default: HOME/models).")
    prompts_dir: Path = Field(default=PROJECT_ROOT / "prompts")
    models_file: Path = Field(default=PROJECT_ROOT / "models.txt")

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def models_dir(self) -> Path:
        return self.models_home or self.home / "models"
