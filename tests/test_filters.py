"""Search filters (source, author, year, since/until): the papers they keep, the same whichever way the
dense side is searched, and catalogs from before the filter tables (readers filter without writing;
the next ingest fills the tables)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import rag.answer.retrieve as retrieve
from rag import Assistant, Settings
from rag.store.catalog_base import author_key
from rag.store.filters import FilteredVectors, Filters, KeptVectors
from rag.testing import HashEmbedder

QUERY = "graph networks forecast traffic flow"
WORDS = [
    "attention",
    "sensors",
    "weather",
    "holidays",
    "accidents",
    "highways",
    "rail",
    "buses",
    "lanes",
    "signals",
    "bridges",
    "tolls",
]
AUTHORS = ["Geoffrey Hinton", "Yann LeCun", "Bernhard Schölkopf", "Fei-Fei Li", "Geoffrey West"]


def write_corpus(folder: Path) -> list[dict]:
    """40 papers about traffic forecasting (so every filter has several to rank), over two files, 8 years
    and 5 authors; papers 0-4 carry no year."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(40):
        records.append(
            {
                "title": f"Traffic study {i} with graph networks",
                "abstract": f"We forecast traffic flow on road graphs with {WORDS[i % 12]} and {WORDS[(i * 5) % 11]}. "
                f"Graph networks and {WORDS[(i * 7) % 12]} improve the forecast.",
                "authors": [AUTHORS[i % 5], f"Student Number{i}"],
                **({"year": 2016 + i % 8} if i >= 5 else {}),
            }
        )
    for name, part in (("alpha.jsonl", records[:25]), ("beta.jsonl", records[25:])):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    return records


@pytest.fixture
def indexed(settings, tmp_path):
    records = write_corpus(tmp_path / "corpus")
    assistant = Assistant(settings, embedder=HashEmbedder())
    assistant.ingest([tmp_path / "corpus"])
    yield assistant, records
    assistant.close()


def titles(hits) -> set[str]:
    return {h.title for h in hits}


def expected(records: list[dict], keep) -> set[str]:
    return {r["title"] for i, r in enumerate(records) if keep(i, r)}


def test_filters_of_combines_year_with_since_and_until():
    assert Filters.of(year=2020) == Filters(since=2020, until=2020)
    assert Filters.of(year=2020, since=2018, until=2024) == Filters(since=2020, until=2020)
    assert Filters.of(since=2030, year=2020).since == 2030  # nothing can pass: an empty result, not an error
    assert not Filters.of(source="", author="  ") and Filters.of(author="x")


def test_author_keys_ignore_case_accents_and_punctuation():
    assert author_key("Schölkopf, B.") == "scholkopf b"
    assert author_key("FEI-FEI Li") == "fei fei li"


def test_each_filter_keeps_exactly_its_papers(indexed):
    assistant, records = indexed
    k = 40
    cases = {
        "source": ({"source": "beta"}, lambda i, r: i >= 25),
        "year": ({"year": 2020}, lambda i, r: r.get("year") == 2020),
        "since": ({"since": 2021}, lambda i, r: r.get("year", 0) >= 2021),
        "until": ({"until": 2017}, lambda i, r: 0 < r.get("year", 0) <= 2017),
        "author word": ({"author": "hinton"}, lambda i, r: i % 5 == 0),
        "author words": ({"author": "Geoffrey Hinton"}, lambda i, r: i % 5 == 0),
        "first name": ({"author": "geoffrey"}, lambda i, r: i % 5 in (0, 4)),
        "accents": ({"author": "Scholkopf"}, lambda i, r: i % 5 == 2),
        "combined": (
            {"author": "lecun", "since": 2019, "source": "alpha"},
            lambda i, r: i % 5 == 1 and r.get("year", 0) >= 2019 and i < 25,
        ),
    }
    for name, (given, keep) in cases.items():
        want = expected(records, keep)
        assert want, name
        for mode in ("hybrid", "dense", "lexical"):
            got = titles(assistant.search(QUERY, k=k, mode=mode, filters=Filters.of(**given)))
            assert got <= want, (name, mode, got - want)
            if mode == "hybrid":
                assert got == want, (name, want - got)
    assert assistant.search(QUERY, filters=Filters.of(author="nobody at all")) == []
    assert assistant.search(QUERY, filters=Filters.of(since=2030)) == []
    assert assistant.search(QUERY, filters=Filters.of(source="gamma")) == []


def test_dense_ranking_under_a_filter_is_the_same_exact_or_over_fetched(indexed, monkeypatch):
    """A narrow filter is scored exactly from the catalog's vectors, a broad one over-fetched from Chroma,
    an index without kept vectors asks Chroma for the kept chunks: the same papers in the same order."""
    assistant, _ = indexed
    results = {}
    # fewer than the papers kept: top-n matters
    monkeypatch.setattr(assistant.retriever.settings.retrieval, "candidates", 6)
    paths = {"exact": (0, 2**30, True), "over-fetched": (10**6, 0, True), "chroma ids": (0, 2**30, False)}
    for path, (cheap, exact_max, kept) in paths.items():
        monkeypatch.setattr(retrieve, "OVERFETCH_CHEAP", cheap)
        monkeypatch.setattr(retrieve, "FILTERED_VECTORS_BYTES", exact_max)
        assistant.index.catalog.set_meta({"vectors_kept": "1" if kept else "0"})
        hits = assistant.search(QUERY, k=6, mode="dense", filters=Filters.of(since=2019))
        results[path] = [(h.title, round(h.dense_score or 0, 3)) for h in hits]
    # the hashed vectors tie often: the same scores in order, the same papers above the last score
    scores = {path: [s for _, s in hits] for path, hits in results.items()}
    above = {path: {t for t, s in hits if s > hits[-1][1]} for path, hits in results.items()}
    assert scores["exact"] == scores["over-fetched"] == scores["chroma ids"]
    assert above["exact"] == above["over-fetched"] == above["chroma ids"]
    assert len(results["exact"]) == 6 and len(set(scores["exact"])) > 2


def test_kept_vectors_rank_by_cosine_whatever_their_length():
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(50, 8)).astype(np.float32) * rng.uniform(0.1, 9, size=(50, 1)).astype(np.float32)
    query = rng.normal(size=8)
    kept = KeptVectors.of([f"c{i}" for i in range(50)], matrix)
    cosine = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    want = [f"c{i}" for i in np.argsort(-cosine)]
    assert [cid for cid, _ in kept.nearest(query, 7)] == want[:7]
    assert [cid for cid, _ in kept.nearest(query, 80)] == want
    assert kept.nearest(query, 1)[0][1] == pytest.approx(float(cosine.max()), abs=1e-5)
    assert KeptVectors.of([], np.zeros((0, 8))).nearest(query, 3) == []


def test_filtered_vectors_are_read_once_per_filter_and_table_and_stay_within_their_bytes():
    loads = []

    def loader(rows: int):
        def load():
            loads.append(rows)
            return KeptVectors.of([str(i) for i in range(rows)], np.ones((rows, 4), dtype=np.float32))

        return load

    table, other_table = object(), object()
    masks = [np.array([i == j for j in range(10)]) for i in range(4)]
    cache = FilteredVectors(max_bytes=2 * 4 * 4 * 10)  # room for 20 rows of 4 floats
    cache.get(table, masks[0], loader(10))
    cache.get(table, masks[0], loader(10))
    assert loads == [10]
    cache.get(table, masks[1], loader(10))
    cache.get(table, masks[2], loader(10))  # over the budget: the least recently used (masks[0]) goes
    cache.get(table, masks[1], loader(10))
    assert loads == [10, 10, 10]
    cache.get(table, masks[0], loader(10))
    assert loads == [10, 10, 10, 10]
    assert len(cache.get(table, masks[3], loader(30)).ids) == 30  # too big to keep: served, not kept
    cache.get(table, masks[3], loader(30))
    assert loads[-2:] == [30, 30]
    cache.get(other_table, masks[0], loader(10))  # a new state of the catalog: nothing old is reused
    assert loads[-1] == 10 and len(loads) == 7


def test_a_filtered_search_after_an_ingest_sees_the_new_paper(indexed, tmp_path):
    """The kept vectors held for a filter belong to one state of the catalog."""
    assistant, _ = indexed
    before = titles(assistant.search(QUERY, k=40, mode="dense", filters=Filters.of(since=2019)))
    new = {
        "title": "Traffic flow forecast on graph networks, again",
        "year": 2021,
        "abstract": "Graph networks forecast traffic flow from road sensors and weather.",
    }
    (tmp_path / "gamma.jsonl").write_text(json.dumps(new) + "\n")
    assistant.ingest([tmp_path / "gamma.jsonl"])
    after = titles(assistant.search(QUERY, k=40, mode="dense", filters=Filters.of(since=2019)))
    assert after == before | {new["title"]}


def test_a_filter_that_keeps_no_paper_says_which_part_of_it_and_why(indexed, settings, tmp_path):
    assistant, _ = indexed
    assert assistant.filter_problem(Filters.of(source="alpha", since=2016)) is None
    assert assistant.filter_problem(Filters()) is None
    problem = assistant.filter_problem(Filters.of(source="gamma"))
    assert "'gamma'" in problem and "alpha.jsonl" in problem and "beta.jsonl" in problem
    assert (
        assistant.filter_problem(Filters.of(since=2030))
        == "no paper is from 2030 or later (the papers' years: 2016-2023)"
    )
    assert "from 2010 to 2012" in assistant.filter_problem(Filters.of(since=2010, until=2012))
    assert "'nobody at all'" in assistant.filter_problem(Filters.of(author="nobody at all"))
    both = assistant.filter_problem(Filters.of(source="gamma", year=1999))
    assert "'gamma'" in both and "from 1999" in both
    # each keeps papers, together none (Student Number30's paper is in beta.jsonl)
    assert assistant.filter_problem(Filters.of(source="alpha", author="Student Number30")) == (
        "no paper passes all of these filters together"
    )
    undated = Assistant(settings.model_copy(update={"home": tmp_path / "undated"}), embedder=HashEmbedder())
    (tmp_path / "undated.jsonl").write_text(
        "".join(
            json.dumps({"title": f"Undated paper {i}", "abstract": f"Traffic graphs, study {i}."}) + "\n"
            for i in range(2)
        )
    )
    undated.ingest([tmp_path / "undated.jsonl"])
    assert undated.search(QUERY, filters=Filters.of(since=2000)) == []
    assert "no paper in the index has a year" in undated.filter_problem(Filters.of(since=2000))
    undated.close()


def test_a_known_paper_seen_in_a_new_file_is_found_by_that_source(indexed, tmp_path):
    assistant, records = indexed
    assert assistant.search(QUERY, filters=Filters.of(source="gamma")) == []
    (tmp_path / "gamma.jsonl").write_text(json.dumps(records[3]) + "\n")
    report = assistant.ingest([tmp_path / "gamma.jsonl"])
    assert report.sources_updated == 1
    assert titles(assistant.search(QUERY, filters=Filters.of(source="gamma"))) == {records[3]["title"]}


def test_a_replaced_paper_keeps_its_sources_and_takes_its_new_authors(indexed, tmp_path):
    assistant, records = indexed
    changed = {**records[7], "abstract": records[7]["abstract"] + " A new sentence.", "authors": ["Ada Lovelace"]}
    (tmp_path / "gamma.jsonl").write_text(json.dumps(changed) + "\n")
    assert assistant.ingest([tmp_path / "gamma.jsonl"]).replaced == 1
    assert titles(assistant.search(QUERY, filters=Filters.of(author="lovelace"))) == {changed["title"]}
    assert changed["title"] not in titles(assistant.search(QUERY, k=40, filters=Filters.of(author="lecun")))
    assert titles(assistant.search(QUERY, k=40, filters=Filters.of(source="alpha"))) >= {changed["title"]}
    assert titles(assistant.search(QUERY, k=40, filters=Filters.of(source="gamma"))) == {changed["title"]}


def _schema_and_meta(path: Path) -> tuple[list, list]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT type, name, sql FROM sqlite_master")), sorted(db.execute("SELECT * FROM meta"))


def test_a_catalog_from_before_the_filter_tables(settings, tmp_path):
    """Readers filter it from the papers' JSON columns without writing to it; the next ingest fills the
    tables and the vectors, and the results stay the same."""
    write_corpus(tmp_path / "corpus")
    writer = Assistant(settings, embedder=HashEmbedder())
    writer.ingest([tmp_path / "corpus"])
    queries = [{"author": "hinton"}, {"source": "beta", "since": 2018}, {"year": 2022}, {}]
    before = [
        titles(writer.search(QUERY, k=40, filters=Filters.of(**q))) for q in queries
    ]  # sets: the hashed vectors tie often
    writer.close()
    catalog = settings.index_dir / "catalog.sqlite"
    with sqlite3.connect(catalog) as db:  # what a catalog written by the previous version holds
        for table in ("paper_authors", "author_words", "authors", "paper_sources", "sources"):
            db.execute(f"DROP TABLE {table}")
        db.execute("DROP INDEX papers_by_year")
        db.execute("ALTER TABLE chunks DROP COLUMN vector")
        db.execute("DELETE FROM meta WHERE key IN ('filters_version', 'vectors_kept')")
    old = _schema_and_meta(catalog)

    reader = Assistant(Settings(home=settings.home), embedder=HashEmbedder())
    assert [titles(reader.search(QUERY, k=40, filters=Filters.of(**q))) for q in queries] == before
    reader.close()
    assert _schema_and_meta(catalog) == old

    writer = Assistant(Settings(home=settings.home), embedder=HashEmbedder())
    report = writer.ingest([tmp_path / "corpus"])
    assert (report.added, report.unchanged) == (0, 40)
    catalog_now = writer.index.catalog
    assert catalog_now.filters_ready and catalog_now.vectors_kept
    assert [titles(writer.search(QUERY, k=40, filters=Filters.of(**q))) for q in queries] == before
    writer.close()


def test_progress_totals_converge_on_the_chunks_embedded(settings, tmp_path):
    write_corpus(tmp_path / "corpus")
    calls: list[tuple[str, int, int]] = []
    assistant = Assistant(settings, embedder=HashEmbedder())
    report = assistant.ingest([tmp_path / "corpus"], progress=lambda *a: calls.append(a))
    assert sum(advance for _, advance, _ in calls) == report.chunks_added
    assert calls[-1][2] == report.chunks_added
    assistant.close()
