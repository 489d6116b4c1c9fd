"""The language model an `Assistant` answers with: named by the settings, loaded on first use, switched
and unloaded."""

from __future__ import annotations

from rag.backends.llm import make_generator
from rag.backends.models import ModelRegistry
from rag.backends.models import Progress as ModelProgress
from rag.protocols import Generator
from rag.settings import Settings


class LoadedModel:
    """At most one loaded generator. Not safe from several threads by itself: the Assistant calls it
    under its lock."""

    def __init__(self, settings: Settings, generator: Generator | None = None):
        self.settings = settings
        self.generator = generator
        self._registry: ModelRegistry | None = None

    @property
    def registry(self) -> ModelRegistry:
        """The model catalogue (models.txt, read once)."""
        if self._registry is None:
            self._registry = ModelRegistry(self.settings)
        return self._registry

    @property
    def name(self) -> str:
        """The loaded model's name, else the configured one (default: the first entry of models.txt)."""
        if self.generator is not None:
            return self.generator.name
        return self.settings.models.model or self.registry.default.name

    def load(self, progress: ModelProgress | None = None) -> Generator:
        """The model the settings name (assembled from its packages and verified on first use), loaded once;
        for `openai:NAME`, a client of the server at `base_url`, checked to answer."""
        if self.generator is None:
            self.generator = make_generator(self.settings, registry=self._registry, progress=progress)
        return self.generator

    def unload(self) -> None:
        """Free the model's memory; the next `load` loads the model the settings name again."""
        generator, self.generator = self.generator, None
        close = getattr(generator, "close", None)
        if callable(close):
            close()

    def switch(self, name: str | None, progress: ModelProgress | None = None) -> Generator:
        """Load model `name` (a catalogue name, a .gguf path or openai:NAME) instead; on failure keep the old one."""
        previous, previous_model = self.generator, self.settings.models.model
        self.settings.set("model", name, given_as="model")  # checked as RAG_MODEL is: an error changes nothing
        self.generator = None
        try:
            return self.load(progress)
        except Exception:
            self.settings.set("model", previous_model)
            self.generator = previous
            raise
