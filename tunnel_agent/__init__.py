"""The tunnel agent users run on their laptop: `tunnel-agent` (see `agent` for usage).

It talks to the tunnel's WebSocket with the protocol in `lambdas.tunnel.protocol`; `make setup`
installs both packages into .venv (editable), so `.venv/bin/tunnel-agent` runs from any directory.
"""
