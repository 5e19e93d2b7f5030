"""HTTP tunnel: public HTTP requests reach an agent on a laptop over an API Gateway WebSocket."""
