"""`python -m tunnel_agent [login] ...`: the agent's command line."""

from __future__ import annotations

import sys

from tunnel_agent.agent import main

sys.exit(main())
