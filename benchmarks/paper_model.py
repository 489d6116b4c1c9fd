"""The paper model (all-mpnet-base-v2 over whole abstracts): what int8 keeps, and how to fuse it.

`quantize`: exports the model to ONNX and quantises it several ways; for each, the cosine of its
vectors to the torch model's on 24 bundled abstracts and its speed (abstracts/s, batches of 8).

`fusion`: on an index with the paper side (`rag ingest` with the default settings), the gold paper's
rank among all papers under each way of combining the three signals (BM25 over papers, MiniLM's best
chunk per paper, the paper model's cosine), per question type, for the QA files given. Every signal
is computed for every paper here (the product lists the top 40 of the first two), so the numbers are
the fusion rules', not the product's (`rag eval --retrieval-only` gives those).

    python benchmarks/paper_model.py quantize -o benchmarks/results-paper-model-quantize.json
    RAG_HOME=<index> python benchmarks/paper_model.py fusion ../shared/eval/dev.jsonl ../shared/eval/val.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from rag import Assistant, Settings
from rag.backends.embedding_packages import MPNET, packaged_folder
from rag.corpus.readers import read_corpus
from rag.scoring import load_qa
from rag.types import normalise_text


def quantize(output: Path | None) -> None:
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tokenizers import Tokenizer

    from rag.backends.embeddings import _TorchBackend, quantize_onnx

    settings = Settings()
    folder = packaged_folder(MPNET, settings.models_dir)
    texts = [f"{p.title}. {p.abstract}" for p in read_corpus().papers[:24]]
    torch_backend = _TorchBackend(folder, 2)
    reference = torch_backend.encode(texts)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(384)
    tokenizer.enable_padding()

    def encode(path: Path) -> tuple[np.ndarray, float]:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        out = []
        started = time.perf_counter()
        for start in range(0, len(texts), 8):
            enc = tokenizer.encode_batch(texts[start : start + 8])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            w = mask[..., None].astype(np.float32)
            pooled = (hidden * w).sum(1) / w.sum(1)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.vstack(out), len(texts) / (time.perf_counter() - started)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.onnx"
        torch_backend.export_onnx(full)
        names = [n.name for n in onnx.load(str(full), load_external_data=False).graph.node if n.op_type == "MatMul"]
        variants = {
            "float32": None,
            "int8 every MatMul, per tensor": {"weight_type": QuantType.QInt8},
            "int8 every MatMul, per channel": {"weight_type": QuantType.QInt8, "per_channel": True},
            "int8 feed-forward output only": {
                "weight_type": QuantType.QInt8,
                "per_channel": True,
                "nodes_to_quantize": [n for n in names if "/output/" in n and "/attention/" not in n],
            },
            "int8 attention + intermediate (shipped)": "shipped",
        }
        for name, options in variants.items():
            path = Path(tmp) / f"{len(rows)}.onnx"
            if options is None:
                path = full
            elif options == "shipped":
                quantize_onnx(full, path)
            else:
                quantize_dynamic(str(full), str(path), **options)
            encode(path)  # warm up
            vectors, speed = encode(path)
            cos = np.sum(vectors * reference, axis=1)
            rows[name] = {
                "cos_min": round(float(cos.min()), 4),
                "cos_mean": round(float(cos.mean()), 4),
                "abstracts_per_s": round(speed, 2),
                "load": round(os.getloadavg()[0], 2),
            }
            print(name, rows[name], flush=True)
    if output:
        output.write_text(json.dumps(rows, indent=1) + "\n")


def _standardised(x: np.ndarray, depth: int = 40) -> np.ndarray:
    top = np.sort(x)[-depth:]
    return (x - top.mean()) / max(float(top.std()), 1e-9)


def _rrf(signals: list[np.ndarray], k: int = 60) -> np.ndarray:
    out = np.zeros(len(signals[0]))
    for x in signals:
        ranks = np.empty(len(x))
        ranks[np.argsort(-x)] = np.arange(1, len(x) + 1)
        out += 1.0 / (k + ranks)
    return out


def fusion(qa_files: list[Path], output: Path | None) -> None:
    assistant = Assistant(Settings())
    assistant.search("warm up", k=1)
    retriever, index = assistant.retriever, assistant.index
    papers = retriever.papers
    held = papers.held() if papers else None
    if held is None or assistant.paper_embedder is None:
        raise SystemExit("this index has no paper side: run `rag ingest` with the default settings")
    ids, _ = held
    row = {pid: i for i, pid in enumerate(ids)}
    chunks = retriever.exact_vectors()
    assert chunks is not None
    chunk_row = np.array([row[cid.split(":", 1)[0]] for cid in chunks.ids])
    titles = index.catalog.get_papers(ids)
    gold_of = [normalise_text(titles[pid].title) for pid in ids]
    variants = {
        "BM25 + MiniLM, reciprocal ranks (before)": lambda b, m, p: _rrf([b, m]),
        "paper model alone": lambda b, m, p: p,
        "three, reciprocal ranks": lambda b, m, p: _rrf([b, m, p]),
        "three, standardised scores (shipped)": lambda b, m, p: _standardised(b) + _standardised(m) + _standardised(p),
        "three, standardised, paper model x2": lambda b, m, p: (
            _standardised(b) + _standardised(m) + 2 * _standardised(p)
        ),
    }
    results: dict = {}
    for path in qa_files:
        ranks: dict[str, dict[str, list[int]]] = {}
        for item in load_qa(path):
            if not item.answerable:
                continue
            gold = {normalise_text(t) for t in item.gold_titles}
            is_gold = np.array([g in gold for g in gold_of])
            bm25 = np.zeros(len(ids))
            for pid, score in index.lexical.search(item.question, len(ids)):
                bm25[row[pid]] = score
            minilm = np.full(len(ids), -1.0)
            np.maximum.at(minilm, chunk_row, chunks.unit @ index.embedder.encode_query(item.question))
            paper = papers.scores(assistant.paper_embedder.encode_query(item.question), held)
            for name, fuse in variants.items():
                fused = fuse(bm25, minilm, paper)
                rank = 1 + int(np.sum(fused > fused[is_gold].max()))
                for group in (item.type, "all"):
                    ranks.setdefault(name, {}).setdefault(group, []).append(rank)
        results[path.name] = {
            name: {
                g: {
                    "n": len(r),
                    "top3": round(float(np.mean([x <= 3 for x in r])), 3),
                    "top5": round(float(np.mean([x <= 5 for x in r])), 3),
                }
                for g, r in groups.items()
            }
            for name, groups in ranks.items()
        }
        for name, groups in results[path.name].items():
            line = "  ".join(f"{g} {v['top3']:.3f}/{v['top5']:.3f}" for g, v in sorted(groups.items()))
            print(f"{path.name} | {name}: top3/top5 {line}", flush=True)
    if output:
        output.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("-o", "--output", type=Path)
    f = sub.add_parser("fusion")
    f.add_argument("qa_files", type=Path, nargs="+")
    f.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    if args.step == "quantize":
        quantize(args.output)
    else:
        fusion(args.qa_files, args.output)


if __name__ == "__main__":
    main()
