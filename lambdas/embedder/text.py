"""The text that represents an item in the vector space, built from its current analysis.

Order matters a little for real models (headline and category first); every field that a user
might search by is included. The SHA-256 of this text is stored with the vector, so an
unchanged text is never embedded twice.
"""

from __future__ import annotations

import hashlib
from typing import Any


def document_text(category: str, subcategories: list[str], headline: str, summary: str, raw: dict[str, Any]) -> str:
    details = raw.get("image_details") or {}
    media = raw.get("media_metadata") or {}
    lines = [
        headline.strip(),
        f"Category: {category}" + (f" ({', '.join(subcategories)})" if subcategories else ""),
        summary.strip(),
    ]
    for label, key in (("Objects", "objects"), ("Colors", "colors")):
        if details.get(key):
            lines.append(f"{label}: {', '.join(details[key])}")
    for label, key in (("Setting", "setting"), ("Text in image", "text"), ("Mood", "mood")):
        if details.get(key):
            lines.append(f"{label}: {details[key]}")
    if media:
        lines.append("Media: " + ", ".join(str(media[k]) for k in ("media_type", "orientation") if media.get(k)))
    return "\n".join(line for line in lines if line)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
