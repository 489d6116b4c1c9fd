"""`rag chat` over a data dir indexed with hash embeddings and a scripted model, for the real-terminal
test (tests/test_tui_terminal.py runs it inside tmux).

Usage: python tests/tmux_chat.py HOME [DELAY] [STUCK_MARKER]. With STUCK_MARKER, the model first
sleeps 20 s before its first token, as an uninterruptible prefill does, then writes that file."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rag import Assistant, Settings
from rag.testing import HashEmbedder, ScriptedGenerator

REPLY = "The logical error rate falls by a factor of 2.1 when the code distance grows from three to five [1]."
EXPERTS = "The sparse language model is trained with 64 experts and top-2 routing [1]."


def reply(messages) -> str:
    return EXPERTS if "experts" in messages[-1]["content"].split("Question:")[-1] else REPLY


class Stuck(ScriptedGenerator):
    """Sleeps before its first token without looking at cancellation (a llama.cpp prefill cannot be stopped)."""

    def __init__(self, marker: Path, **kwargs):
        super().__init__(reply, **kwargs)
        self.marker = marker

    def stream(self, messages, **kwargs):
        time.sleep(20)
        self.marker.write_text("the stuck call ended")
        yield from super().stream(messages, **kwargs)


def main() -> None:
    home = sys.argv[1]
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    # Hash embeddings give low cosines: a lower relevance gate lets the scripted model answer.
    settings = Settings(home=home, min_relevance=0.1)
    if len(sys.argv) > 3:
        generator: ScriptedGenerator = Stuck(Path(sys.argv[3]), delay=delay)
    else:
        generator = ScriptedGenerator(reply, delay=delay)
    assistant = Assistant(settings, embedder=HashEmbedder(), generator=generator)
    from tui.app import make_app

    make_app(assistant=assistant).run()
    assistant.close()


if __name__ == "__main__":
    main()
