"""The tunnel agent's documented command, kept working: `python scripts/tunnel_agent.py ARGS` is
`python -m tunnel_agent ARGS` (the agent lives in the `tunnel_agent` package)."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: the repository root, not scripts/, must come first
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tunnel_agent.agent import main

if __name__ == "__main__":
    sys.exit(main())
