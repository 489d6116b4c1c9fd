"""`rag doctor`: what a user needs to know when something is off, in one report.

Every check reads local state only: the doctor itself never touches the network.
"""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from rag.backends.models import ModelRegistry, ModelSpec, parse_model_spec
from rag.errors import RagError
from rag.setting_groups import remote_model
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.answer.retrieve import RecallCheck

Status = Literal["ok", "info", "warn", "fail"]
PACKAGES = (
    "rag-abstracts",
    "llama-cpp-python",
    "chromadb",
    "onnxruntime",
    "sentence-transformers",
    "torch",
    "bm25s",
    "pydantic",
    "textual",
)
# Chunks whose own vector the recall check looks up (`rag doctor`, `rag doctor --verify`), and the share
# of them the vector store must find when searches go through its graph.
RECALL_SAMPLE, RECALL_SAMPLE_VERIFY = 200, 2000
MIN_RECALL = 0.98
# Below this, assembling the default model or re-indexing may fail half-way.
LOW_DISK_BYTES = 2 * 1024**3


class Check(BaseModel):
    section: str
    name: str
    status: Status
    detail: str


class DoctorReport(BaseModel):
    checks: list[Check] = Field(default_factory=list)

    def add(self, section: str, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(section=section, name=name, status=status, detail=detail))

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)


def _versions(report: DoctorReport) -> None:
    report.add("versions", "python", "info", f"{platform.python_version()} ({sys.executable})")
    for package in PACKAGES:
        try:
            report.add("versions", package, "info", version(package))
        except PackageNotFoundError:
            status: Status = "info" if package == "torch" else "fail"
            report.add("versions", package, status, "not installed; reinstall rag-abstracts with its dependencies")


def _files(report: DoctorReport, settings: Settings) -> ModelRegistry | None:
    """The files shipped with the program: the prompt templates (checked as at load) and the model catalogue."""
    from rag.answer.prompts import load_prompts

    try:
        templates = load_prompts(settings.answer.prompts_dir)
        report.add("files", "prompts", "ok", f"{len(templates)} templates checked in {settings.answer.prompts_dir}")
    except RagError as exc:
        report.add("files", "prompts", "fail", str(exc))
    try:
        registry = ModelRegistry(settings)
    except RagError as exc:
        report.add("files", "model catalogue", "fail", str(exc))
        return None
    report.add("files", "model catalogue", "ok", f"{len(registry.entries)} models in {settings.models.models_file}")
    return registry


def _data_dir(report: DoctorReport, settings: Settings) -> None:
    home = settings.home
    report.add("data dir", "path", "info", str(home))
    existing = next((p for p in (home, *home.parents) if p.exists()), Path("/"))
    if not os.access(existing, os.W_OK):
        report.add(
            "data dir", "writable", "fail", f"{existing} is not writable; set RAG_HOME or --home to a writable dir"
        )
    free = shutil.disk_usage(existing).free
    status: Status = "warn" if free < LOW_DISK_BYTES else "ok"
    report.add("data dir", "free disk", status, f"{free / 1e9:.1f} GB free in {existing}")


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _llama_cpp(report: DoctorReport) -> None:
    cpu = _cpu_flags()
    if cpu:
        shown = [
            f for f in ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in cpu
        ]
        report.add("llama.cpp", "cpu flags", "info", f"{os.cpu_count()} cores; " + " ".join(shown))
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode().strip().strip("|").strip()
        report.add("llama.cpp", "build", "info", info)
        built = {part.split("=")[0].strip().lower() for part in info.split("|") if part.strip().endswith("= 1")}
        if "avx512f" in cpu and "avx512" not in built:
            report.add(
                "llama.cpp",
                "build flags",
                "warn",
                "the CPU has AVX-512 but llama.cpp was built without it; reinstall llama-cpp-python "
                "with CMAKE_ARGS=-DGGML_NATIVE=ON for faster answers",
            )
    except Exception as exc:  # a broken native build is exactly what the doctor is for
        report.add("llama.cpp", "build", "fail", f"cannot load llama_cpp ({type(exc).__name__}: {str(exc)[:100]})")


class ModelChoice(BaseModel):
    """The model `--model`/RAG_MODEL names (default: the catalogue's first entry), parsed once."""

    configured: str | None = None
    spec: ModelSpec | None = None
    problem: str | None = None

    @classmethod
    def of(cls, settings: Settings, registry: ModelRegistry | None) -> ModelChoice:
        configured = settings.models.model or (registry.default.name if registry is not None else None)
        if configured is None:
            return cls()
        try:
            return cls(configured=configured, spec=parse_model_spec(configured))
        except RagError as exc:
            return cls(configured=configured, problem=str(exc))


def _models(
    report: DoctorReport, settings: Settings, registry: ModelRegistry | None, choice: ModelChoice, verify: bool
) -> None:
    from rag.backends.models import file_sha256

    spec = choice.spec
    if choice.configured is not None:
        report.add("models", "configured", "info", choice.configured)
    if choice.problem is not None:
        report.add("models", "model", "fail", choice.problem)
    if registry is not None:
        states = {s.name: s.state for s in registry.status()}
        for entry in registry.entries:
            state = states[entry.name]
            status: Status = "ok" if state == "ready" else "info"
            detail = state
            if state == "ready" and verify:
                digest = file_sha256(registry.target(entry))
                expected = entry.sha256 or registry.recorded_sha256(entry)
                if digest == expected:
                    detail = f"ready, sha256 {digest[:12]}... matches"
                else:
                    status, detail = (
                        "fail",
                        (
                            f"sha256 {digest[:12]}... does not match {str(expected)[:12]}...; "
                            f"delete {registry.target(entry)} and ask again"
                        ),
                    )
            elif state == "ready":
                detail = "ready (sha256 checked when assembled; --verify re-hashes)"
            if spec is not None and spec.kind == "catalogue" and entry.name == spec.name and state == "not installed":
                status = "fail"
            report.add("models", entry.name, status, detail)
        if spec is not None and spec.kind == "catalogue" and spec.name not in states:
            try:
                registry.get(spec.name)
            except RagError as exc:
                report.add("models", "model", "fail", str(exc))
    if spec is not None and spec.kind == "file":
        file_status: Status = "ok" if spec.path is not None and spec.path.is_file() else "fail"
        report.add("models", "model file", file_status, str(spec.path))
    if spec is not None and spec.kind == "server":
        if settings.models.base_url:
            report.add("models", "model server", "info", f"{spec.name} on the server at {settings.models.base_url}")
        else:
            report.add(
                "models",
                "model server",
                "warn",
                f"model {settings.models.model} needs the server's URL: set RAG_BASE_URL or pass --base-url",
            )
    if remote_model(settings.models.embedding_model) is not None:
        url = settings.models.embedding_base_url or settings.models.base_url
        report.add(
            "models",
            "embedding model",
            "info" if url else "warn",
            f"{settings.models.embedding_model} on the server at {url}"
            if url
            else f"embedding model {settings.models.embedding_model} needs the server's URL: set RAG_EMBEDDING_BASE_URL",
        )
        return
    try:
        from rag.backends.embeddings import resolve_embedding_model

        folder = resolve_embedding_model(settings.models.embedding_model)
        exported = list((settings.models_dir / "embeddings").glob(f"{folder.name}-*.onnx"))
        engine = "onnxruntime export present" if exported else "exported to ONNX on first use"
        report.add("models", "embedding model", "ok", f"{settings.models.embedding_model} from {folder} ({engine})")
    except RagError as exc:
        report.add("models", "embedding model", "fail", str(exc))


def _paper_side(report: DoctorReport, settings: Settings, model: str | None, vectors: int, papers: int) -> None:
    """Whether searches can use the whole-abstract vectors of the configured paper model."""
    wanted = settings.models.paper_embedding_model
    if not wanted:
        report.add(
            "index", "paper model", "info", "off (RAG_PAPER_EMBEDDING_MODEL is empty): BM25 and chunk vectors only"
        )
    elif model == wanted and vectors == papers:
        report.add("index", "paper model", "ok", f"{wanted}: every paper has its whole-abstract vector")
    else:
        have = f"{vectors} of {papers} papers have a vector of {model}" if model else "no paper has a vector yet"
        report.add(
            "index",
            "paper model",
            "warn",
            f"{wanted} is configured but {have}; searches go without it until `rag ingest` embeds them",
        )


def _recall(report: DoctorReport, check: RecallCheck) -> None:
    """Does the vector store's graph find sampled chunks by their own vectors?"""
    from rag.answer.retrieve import RECALL_K

    detail = (
        f"the vector store finds {check.found} of {check.sampled} sampled chunks among the {RECALL_K} nearest "
        "to their own vector"
    )
    if check.found == check.sampled:
        report.add("index", "dense recall", "ok", detail)
    elif check.exact:
        report.add(
            "index",
            "dense recall",
            "ok",
            f"{detail}; this index is small enough that searches scan its vectors exactly, so the misses cost nothing",
        )
    else:
        status: Status = "fail" if check.recall < MIN_RECALL else "warn"
        report.add(
            "index",
            "dense recall",
            status,
            f"{detail} (missed: {', '.join(check.missed[:3])}{' ...' if len(check.missed) > 3 else ''}); "
            f"dense searches can miss papers: search the index exactly by setting RAG_EXACT_SEARCH_MB={check.exact_mb:.0f} "
            "(that much memory), or rely on hybrid search (BM25 finds papers by their words)",
        )


def _index(report: DoctorReport, settings: Settings, verify: bool = False) -> None:
    catalog_path = settings.data_dir.index.catalog
    if not catalog_path.exists():
        report.add(
            "index",
            "state",
            "warn",
            f"no index in {settings.index_dir}; the first question builds it (or run `rag ingest`)",
        )
        return
    try:
        with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True) as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error as exc:
        report.add(
            "index",
            "catalog",
            "fail",
            f"{catalog_path} cannot be read ({exc}); rebuild it from your corpus files: "
            "`rag ingest --rebuild FILE...` (the old index stays until the new one is complete)",
        )
        return
    recorded = meta.get("embedding_model")
    status: Status = "ok" if recorded in (None, settings.models.embedding_model) else "fail"
    report.add(
        "index",
        "embedding model",
        status,
        f"{recorded} ({meta.get('dimension')}-d)"
        + (
            ""
            if status == "ok"
            else f" but {settings.models.embedding_model} is configured; set RAG_EMBEDDING_MODEL={recorded}, or re-embed the "
            "indexed papers with `rag ingest --rebuild`"
        ),
    )
    from rag.assistant import Assistant

    assistant = Assistant(settings)
    try:
        assistant.index.catalog.check_integrity()
        assistant.index.open_for_search()  # first: it checks the files before Chroma reads them
        stats = assistant.stats()
        report.add(
            "index",
            "contents",
            "info",
            f"{stats.papers} papers, {stats.chunks} chunks, {stats.vectors} vectors, {stats.disk_bytes / 1e6:.1f} MB",
        )
        report.add(
            "index",
            "consistency",
            "ok",
            "catalog and vectors agree (the lexical index is rebuilt whenever it lags the catalog)",
        )
        if layout := assistant.index.outdated_layout():
            report.add("index", "layout", "warn", layout)
        _paper_side(report, settings, stats.paper_model, stats.paper_vectors, stats.papers)
        _recall(report, assistant.check_recall(RECALL_SAMPLE_VERIFY if verify else RECALL_SAMPLE))
    except RagError as exc:
        report.add("index", "consistency", "fail", str(exc))
    finally:
        assistant.close()


def _network(report: DoctorReport, settings: Settings, registry: ModelRegistry | None, choice: ModelChoice) -> None:
    from rag.offline import OFFLINE_ENV, enforce_offline

    enforce_offline()
    overridden = [f"{k}={os.environ[k]}" for k, v in OFFLINE_ENV.items() if os.environ.get(k) != v]
    if overridden:
        report.add("network", "offline switches", "warn", "overridden in the environment: " + ", ".join(overridden))
    else:
        report.add("network", "offline switches", "ok", "hub look-ups and telemetry off")
    spec = choice.spec
    entry = None
    if registry is not None and spec is not None and spec.kind == "catalogue":
        try:
            entry = registry.get(spec.name)
        except RagError:
            pass
    remote = [
        f"{what} {url}"
        for what, url in (
            ("vector store", settings.store.chroma_url),
            ("model server", settings.models.base_url if spec is not None and spec.kind == "server" else None),
            (
                "embedding server",
                (settings.models.embedding_base_url or settings.models.base_url)
                if remote_model(settings.models.embedding_model) is not None
                else None,
            ),
        )
        if url
    ]
    if remote:
        report.add("network", "servers", "info", "configured to use " + ", ".join(remote))
    if registry is not None and entry is not None and entry.kind == "hf" and not registry.is_verified(entry):
        report.add(
            "network",
            "model download",
            "warn",
            f"{entry.name} is not downloaded: `rag models pull {entry.name}` needs the network once",
        )
    elif remote:
        report.add("network", "needs the network", "info", "only to reach the servers above (loopback or your network)")
    else:
        report.add("network", "needs the network", "ok", "no: models, index and prompts are all local")


def diagnose(settings: Settings | None = None, *, verify: bool = False) -> DoctorReport:
    """Run every check; never raises for a broken install, it reports it."""
    settings = settings or Settings.load()
    report = DoctorReport()
    _versions(report)
    registry = _files(report, settings)
    choice = ModelChoice.of(settings, registry)
    _data_dir(report, settings)
    _models(report, settings, registry, choice, verify)
    _index(report, settings, verify)
    _llama_cpp(report)
    _network(report, settings, registry, choice)
    return report
