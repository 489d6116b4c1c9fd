"""`rag chat` over a data dir indexed with hash embeddings and a scripted model, for the real-terminal
test (tests/test_tui_terminal.py runs it inside tmux). Usage: python tests/tmux_chat.py HOME [DELAY]"""

from __future__ import annotations

import sys

from rag import Assistant, Settings
from rag.testing import HashEmbedder, ScriptedGenerator

REPLY = "The logical error rate falls by a factor of 2.1 when the code distance grows from three to five [1]."


def main() -> None:
    home = sys.argv[1]
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    # Hash embeddings give low cosines: a lower relevance gate lets the scripted model answer.
    settings = Settings(home=home, min_relevance=0.1)
    assistant = Assistant(settings, embedder=HashEmbedder(), generator=ScriptedGenerator([REPLY], delay=delay))
    from tui.app import make_app

    make_app(assistant=assistant).run()
    assistant.close()


if __name__ == "__main__":
    main()
