"""Code shared by every handler: AWS clients, HTTP responses, settings, WebSocket delivery."""
