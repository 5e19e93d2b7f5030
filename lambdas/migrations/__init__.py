"""Collections schema: ordered SQL files in `sql/` and the one runner that applies them."""
