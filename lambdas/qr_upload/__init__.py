"""QR-upload handoff: a desktop shows a QR code, a phone uploads a photo, the desktop is told.

Functions: `http_api.handler` (HTTP API routes and the two pages) and `websocket_events.handler`
(WebSocket $connect/$disconnect and S3 ObjectCreated under `session-uploads/`), plus the deploy-time
`signing_key.handler` (the key pair behind the desktop's CloudFront photo links, photo_links.py).
"""
