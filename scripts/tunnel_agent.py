"""The tunnel agent's documented command, kept working: `python scripts/tunnel_agent.py ARGS` is
`tunnel-agent ARGS` and `python -m tunnel_agent ARGS` (the agent lives in the `tunnel_agent`
package, importable from anywhere once `make setup` has installed the project)."""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file, Python puts this file's directory first on sys.path, where this very file would be
# found as `tunnel_agent` instead of the package: drop that entry (what `python -P` does), add none.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

from tunnel_agent.agent import main

if __name__ == "__main__":
    sys.exit(main())
