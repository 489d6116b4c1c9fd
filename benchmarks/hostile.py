"""The cases of issue 13 ("Trust under real use") and issue 24 (contradictions, hidden injections), run through
the real `rag` command or, for issue 24, the library in a new process.

    RAG_MODELS_HOME=DIR python benchmarks/hostile.py [--code CHECKOUT] [--cap 120] [--only NAME ...]

Each case runs `rag` in a new process (with CHECKOUT's `rag` package first on the path, e.g. an
older commit unpacked with `git archive`), against fake servers on loopback where a server is
needed, with the real embedding model (RAG_MODELS_HOME caches its ONNX export). A process still
running after `--cap` seconds is killed. Output to a terminal is captured through a pseudo-terminal
(`script`), since click strips some escapes when stdout is not a terminal. One line per case:
name, seconds, exit code, what happened.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import socketserver
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "data" / "hostile.jsonl"
SMALL = ROOT / "tests" / "data" / "small.jsonl"
# The hostile records' and the fake model's sequences (the progress bar's own cursor codes are not counted).
FOREIGN = re.compile(r"\x1b\]|\x1b\[2J|\x1b\[[HJ]|\x1bc|\x1b\[(?:31|5)m|\x07|\x08|\u009b|\u202e")
# Escapes without digits or capitals: those would fail the citation checks (a number or a name the
# passage lacks) and the answer would be refused for that reason alone. Bell, backspaces, full reset.
ESCAPING_REPLY = (
    "Graph neural networks over loop detectors reduce the error on two highway benchmarks by twelve "
    "percent \x07\x08\x08\x1bc [1]."
)
CUT_REPLY = (
    "The logical error rate falls by a factor of 2.1 [1]. The code distance grows from three to five when "
    "the logical error rate falls."
)


# --- fake servers -------------------------------------------------------------------------------------
class Server:
    """Loopback HTTP at the socket level; `chat(sock, stop)` plays /chat/completions (None: a server
    that accepts and never answers anything)."""

    def __init__(self, chat=None, silent: bool = False):
        self.stop, self.chat_requests = threading.Event(), 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock = self.request
                try:
                    while not outer.stop.is_set():
                        head = b""
                        while b"\r\n\r\n" not in head:
                            data = sock.recv(65536)
                            if not data:
                                return
                            head += data
                        header, _, body = head.partition(b"\r\n\r\n")
                        lines = header.decode("latin-1").split("\r\n")
                        length = next(
                            (int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length")), 0
                        )
                        while len(body) < length:
                            body += sock.recv(65536)
                        path = lines[0].split()[1]
                        if silent:
                            outer.stop.wait(3600)
                            return
                        if path.endswith("/models"):
                            reply(sock, {"data": [{"id": "m"}]})
                        elif path.endswith("/chat/completions"):
                            outer.chat_requests += 1
                            sock.sendall(
                                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
                            )
                            chat(sock, outer.stop)
                            return
                        else:
                            reply(sock, {"detail": "Not Found"}, 404)
                except OSError:
                    return

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def reply(sock: socket.socket, body: object, status: int = 200) -> None:
    data = json.dumps(body).encode()
    sock.sendall(
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode() + data
    )


def event(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text else {}
    return (
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode() + b"\n\n"
    )


def words(text: str, limit: int | None = None):
    def chat(sock, stop):
        pieces = re.findall(r"\S+\s*", text)
        cut = pieces[:limit] if limit else pieces
        for piece in cut:
            sock.sendall(event(piece))
        sock.sendall(event(finish="length" if limit and len(pieces) > limit else "stop") + b"data: [DONE]\n\n")

    return chat


def keep_alive(sock, stop):
    while not stop.wait(1.0):
        sock.sendall(b": keep-alive\n\n")


def endless(sock, stop):
    while not stop.is_set():
        sock.sendall(event("word "))
        time.sleep(0.002)


# --- running rag --------------------------------------------------------------------------------------
class Runner:
    def __init__(self, code: Path | None, cap: float, work: Path):
        self.code, self.cap, self.work = code, cap, work

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_MODELS_HOME"}
        env.update(extra)
        env["PYTHONPATH"] = str(self.code) if self.code else ""
        env["TERM"] = "xterm"
        return env

    def rag(
        self, *args: str, tty: bool = False, code: str | None = None, **env: str
    ) -> tuple[float, int | str, str, str]:
        """(seconds, exit code or 'killed', stdout (the terminal transcript with tty), stderr); `code`:
        run that Python code (with `args` as sys.argv[1:]) instead of the rag command."""
        argv = [
            sys.executable,
            "-c",
            code or "import sys; from rag.cli import main; sys.argv[0] = 'rag'; main()",
            *args,
        ]
        started = time.monotonic()
        if tty:  # a pseudo-terminal: what a user's terminal receives (stdout and stderr together)
            transcript = self.work / f"tty-{time.monotonic_ns()}.txt"
            argv = ["script", "-qec", " ".join(map(_quote, argv)), str(transcript)]
        proc = subprocess.Popen(
            argv,
            cwd=self.work,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=self.cap)
            code: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, err = proc.communicate()
            code = "killed"
        seconds = time.monotonic() - started
        if tty:
            out = transcript.read_bytes().decode("utf-8", "replace")
            out = out.split("\n", 1)[1] if out.startswith("Script started") else out
        return (
            seconds,
            code,
            out.decode("utf-8", "replace") if isinstance(out, bytes) else out,
            err.decode("utf-8", "replace"),
        )


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:150]


def papers_in(home: Path) -> int:
    catalog = home / "index" / "catalog.sqlite"
    if not catalog.exists():
        return 0
    with sqlite3.connect(catalog) as db:
        return db.execute("SELECT COUNT(*) FROM papers").fetchone()[0]


# --- the cases ----------------------------------------------------------------------------------------
def run_cases(r: Runner, only: set[str]) -> list[tuple[str, float, object, str]]:
    rows: list[tuple[str, float, object, str]] = []

    def case(name: str):
        def wrap(fn):
            if not only or name in only:
                try:
                    seconds, code, what = fn()
                except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
                    seconds, code, what = 0.0, "error", f"{type(exc).__name__}: {exc}"
                rows.append((name, seconds, code, what))
                print(f"| {name} | {seconds:.1f} | {code} | {what} |", flush=True)
            return fn

        return wrap

    homes = r.work / "homes"
    hostile_home, small_home = homes / "hostile", homes / "small"
    need_small = not only or only & {
        "hang-keepalive",
        "hang-endless",
        "cut-at-max-tokens",
        "question-punctuation",
        "question-punctuation-followup",
        "lost-catalog",
    }
    if not only or only & {"escapes-search", "escapes-ask", "assembling-bar"}:
        r.rag("--home", str(hostile_home), "ingest", str(HOSTILE))
    if need_small:
        r.rag("--home", str(small_home), "ingest", str(SMALL))

    @case("escapes-search")
    def _():
        s, code, out, _err = r.rag(
            "--home", str(hostile_home), "search", "graph neural networks traffic", "-k", "34", tty=True
        )
        return s, code, f"{len(FOREIGN.findall(out))} foreign escape/control sequences reached the terminal"

    @case("escapes-ask")
    def _():
        server = Server(words(ESCAPING_REPLY))
        try:
            s, code, out, _err = r.rag(
                "--home",
                str(hostile_home),
                "ask",
                "-m",
                "openai:m",
                "--base-url",
                server.url,
                "How much do graph neural networks reduce the traffic forecasting error?",
                tty=True,
            )
        finally:
            server.close()
        cited = "twelve percent" in out
        return (
            s,
            code,
            f"{len(FOREIGN.findall(out))} foreign escape/control sequences reached the terminal (answer shown: {cited})",
        )

    @case("assembling-bar")
    def _():
        server = Server(words(ESCAPING_REPLY))
        try:
            s, code, out, _err = r.rag(
                "--home",
                str(hostile_home),
                "ask",
                "-m",
                "openai:m",
                "--base-url",
                server.url,
                "How much do graph neural networks reduce the traffic forecasting error?",
                tty=True,
            )
        finally:
            server.close()
        return s, code, f"'Assembling model (once)' drawn {out.count('Assembling model')} times (nothing to assemble)"

    @case("hang-chroma")
    def _():
        server = Server(silent=True)
        try:
            s, code, _out, err = r.rag(
                "--home", str(homes / "chroma"), "--chroma-url", server.url, "ingest", str(SMALL)
            )
        finally:
            server.close()
        return s, code, last_line(err)

    @case("hang-keepalive")
    def _():
        server = Server(keep_alive)
        try:
            s, code, _out, err = r.rag(
                "--home",
                str(small_home),
                "ask",
                "-m",
                "openai:m",
                "--base-url",
                server.url,
                "How much does the logical error rate fall?",
                RAG_REQUEST_TIMEOUT="5",
            )
        finally:
            server.close()
        return s, code, last_line(err)

    @case("hang-endless")
    def _():
        server = Server(endless)
        try:
            s, code, out, err = r.rag(
                "--home",
                str(small_home),
                "ask",
                "-m",
                "openai:m",
                "--base-url",
                server.url,
                "How much does the logical error rate fall?",
                "--json",
                RAG_REQUEST_TIMEOUT="5",
            )
        finally:
            server.close()
        tokens = json.loads(out)["completion_tokens"] if code == 0 else None
        return s, code, f"completion tokens {tokens} (max_tokens 160)" if tokens is not None else last_line(err)

    @case("cut-at-max-tokens")
    def _():
        server = Server(words(CUT_REPLY, limit=16))
        try:
            s, code, out, _err = r.rag(
                "--home",
                str(small_home),
                "ask",
                "-m",
                "openai:m",
                "--base-url",
                server.url,
                "How much does the logical error rate fall?",
                RAG_MAX_ANSWER_TOKENS="16",
            )
        finally:
            server.close()
        answer = out.split("\n\nReferences:")[0].strip()
        return s, code, f"answer: {answer!r}"

    @case("question-punctuation")
    def _():
        server = Server(words("The logical error rate falls by a factor of 2.1 [1]."))
        try:
            s, code, _out, err = r.rag(
                "--home", str(small_home), "ask", "-m", "openai:m", "--base-url", server.url, "?!?! ... ;;"
            )
        finally:
            server.close()
        return s, code, f"{server.chat_requests} model calls; {last_line(err)}"

    @case("question-punctuation-followup")
    def _():
        # In the chat every question after the first is a follow-up: the rewrite runs before retrieval.
        code = """
import sys
from rag import Assistant, Settings
from rag.testing import ScriptedGenerator
g = ScriptedGenerator(["The logical error rate falls by a factor of 2.1 [1]."] * 3)
a = Assistant(Settings(home=sys.argv[1]), generator=g)
first = a.ask("How much does the logical error rate fall?")
calls = len(g.calls)
try:
    a.ask("?!?! ... ;;", history=[first])
    outcome = "answered"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(len(g.calls) - calls, outcome)
"""
        s, code_, out, _err = r.rag(str(small_home), code=code)
        calls, _, outcome = out.strip().partition(" ")
        return s, code_, f"{calls} model calls for the follow-up '?!?! ... ;;'; {outcome[:100]}"

    @case("deep-json")
    def _():
        path = r.work / "deep.jsonl"
        path.write_text(
            "[" * 100_000
            + "]" * 100_000
            + "\n"
            + json.dumps({"title": "After The Deep One", "abstract": "word " * 20})
            + "\n"
        )
        home = homes / "deep"
        s, code, _out, err = r.rag("--home", str(home), "ingest", str(path))
        return s, code, f"{papers_in(home)} papers ingested; {last_line(err)}"

    for name, env in [
        ("setting-chroma-headers", {"RAG_CHROMA_HEADERS": "notjson"}),
        ("setting-home-is-a-file", {"RAG_HOME": str(SMALL)}),
        ("setting-home-empty", {"RAG_HOME": ""}),
    ]:

        @case(name)
        def _(env=env):
            s, code, _out, err = r.rag("search", "graphs", **env)
            made = (r.work / "index").exists()
            shutil.rmtree(r.work / "index", ignore_errors=True)
            for lock in r.work.glob("ingest.lock*"):
                lock.unlink()
            return s, code, ("[index created in the working directory] " if made else "") + last_line(err)

    @case("setting-models-size")
    def _():
        bad = r.work / "models-bad.txt"
        bad.write_text((ROOT / "models.txt").read_text().replace("1117320768", "1.1GB"))
        s, code, _out, err = r.rag("models", RAG_MODELS_FILE=str(bad))
        return s, code, last_line(err)

    @case("lost-catalog")
    def _():
        home = homes / "lost"
        shutil.copytree(small_home, home)
        for path in (home / "index").glob("catalog.sqlite*"):
            path.unlink()
        s, code, _out, err = r.rag("--home", str(home), "search", "surface codes")
        return s, code, f"{papers_in(home)} papers now in the home (had 5 of the user's); {last_line(err)}"

    @case("ingest-seconds")
    def _():
        path = r.work / "dups.jsonl"
        lines = SMALL.read_text().splitlines()
        with open(path, "w") as f:
            for _ in range(40_000):
                f.write("\n".join(lines) + "\n")
        s, code, _out, err = r.rag("--home", str(homes / "dups"), "ingest", str(path), "--rebuild")
        reported = re.search(r"in ([\d.]+) s", err)
        return (
            s,
            code,
            f"report says {reported.group(1) if reported else '?'} s of {s:.1f} s wall ({path.stat().st_size / 1e6:.0f} MB read)",
        )

    @case("duplicate-replaced")
    def _():
        folder = r.work / "dupfiles"
        folder.mkdir()
        (folder / "a.jsonl").write_text(json.dumps({"title": "One Title", "abstract": "word " * 20}) + "\n")
        (folder / "b.jsonl").write_text(json.dumps({"title": "One Title", "abstract": "other " * 20}) + "\n")
        s, code, _out, err = r.rag("--home", str(homes / "dupfiles"), "ingest", str(folder))
        return s, code, f"{err.count('warning:')} warnings; {last_line(err)}"

    @case("unreadable-file")
    def _():
        folder = r.work / "unreadable"
        folder.mkdir()
        shutil.copy(SMALL, folder / "small.jsonl")
        os.symlink("/proc/self/mem", folder / "mem.jsonl")  # reading it fails with EIO, even as root
        s, code, _out, err = r.rag("--home", str(homes / "unreadable"), "ingest", str(folder))
        return s, code, f"{err.count('warning:')} warnings; {last_line(err)}"

    @case("symlink-loop")
    def _():
        loop = r.work / "loop.jsonl"
        os.symlink(loop, loop)
        s, code, _out, err = r.rag("--home", str(homes / "loop"), "ingest", str(loop))
        return s, code, last_line(err)

    # Issue 24: scripted contradictions and hidden injections through the whole pipeline (the real embedder,
    # a scripted model that writes the contradiction or obeys the injection), one question per sentence.
    trust_code = """
import json, sys
from pathlib import Path
from rag import Assistant, Settings
from rag.testing import ScriptedGenerator
from rag.safety import normalise_for_matching
data, home, which = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
cases = [json.loads(x) for x in (data / "contradictions.jsonl").read_text(encoding="utf-8").splitlines()]
variants = [json.loads(x) for x in (data / "injection_variants.jsonl").read_text(encoding="utf-8").splitlines()]
home.mkdir(parents=True, exist_ok=True)
corpus = home / "trust24.jsonl"
corpus.write_text("".join(json.dumps({"title": r["title"], "abstract": r["abstract"]}) + "\\n" for r in cases + variants))
a = Assistant(Settings(home=home))
a.ingest([corpus])
def ask(question, reply):
    g = ScriptedGenerator([reply])
    a._model.generator = g
    return a.ask(question), g
out = {}
if which == "contradictions":
    for key in ("wrong", "right"):
        for kind in ("negation", "polarity", "antonym", "number"):
            claims = [(c, x) for c in cases if c["kind"] == kind for x in c[key]]
            # verified: the model's claim was kept and cited (a quoted passage sentence, the fallback, is not the claim)
            answers = [ask(c["question"], x)[0] for c, x in claims]
            out[f"{key}/{kind}"] = [sum(bool(a.citations) and not a.quoted for a in answers), len(claims)]
else:
    injections = [r for r in variants if r["injected"]]
    reached = cited = 0
    for r in injections:
        answer, g = ask(r["question"], r["obeyed"])
        prompt = normalise_for_matching(" ".join(m["content"] for m in g.calls[0])) if g.calls else ""
        reached += normalise_for_matching(r["injected"][0])[:25] in prompt
        cited += bool(answer.citations) and not answer.quoted
    out = {"reached the model": [reached, len(injections)], "obeyed sentence verified": [cited, len(injections)]}
print(json.dumps(out))
"""
    for which in ("contradictions", "injection-variants"):

        @case(which)
        def _(which=which):
            s, code, out, err = r.rag(
                str(ROOT / "tests" / "data"), str(homes / f"trust24-{which}"), which, code=trust_code
            )
            if code != 0:
                return s, code, last_line(err)
            counts = json.loads(out.strip().splitlines()[-1])
            return s, code, "; ".join(f"{k} {v[0]} of {v[1]}" for k, v in counts.items())

    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, help="a checkout whose rag package to run (default: this one)")
    parser.add_argument("--cap", type=float, default=120.0, help="seconds before a case is killed")
    parser.add_argument("--only", nargs="*", default=[], help="run these cases only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-hostile-"))
    try:
        print(f"code: {args.code or ROOT}, cap {args.cap:g} s")
        print("| case | seconds | exit | what happened |")
        print("|---|---|---|---|")
        run_cases(Runner(args.code.resolve() if args.code else None, args.cap, work), set(args.only))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
