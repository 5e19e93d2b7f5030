"""`make bench` pieces: each module prints a Markdown table."""
