"""The tunnel agent users run on their laptop: `python -m tunnel_agent` (see `agent` for usage).

It talks to the tunnel's WebSocket with the protocol in `lambdas.tunnel.protocol`, so it runs
from the repository root, where both packages are importable.
"""
