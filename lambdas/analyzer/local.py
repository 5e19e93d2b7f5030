"""The offline `local` provider: a deterministic analysis computed from the pixels.

It names the dominant colours (HSV buckets over a 64x64 reduction), the brightness and the
orientation, and says nothing about content: category is always `other`. Its purpose is that
the pipeline and search run end to end without a key; the words it produces (colour names,
`landscape`, `bright`, ...) are what a local search can find.
"""

from __future__ import annotations

import colorsys
import io
from collections import Counter
from typing import Any

MODEL = "local-pixels-v1"


def colour_name(r: int, g: int, b: int) -> str:
    h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
    if v < 0.2:
        return "black"
    if s < 0.15:
        return "white" if v > 0.85 else "grey"
    hue = h * 360
    for limit, name in (
        (15, "red"),
        (40, "orange"),
        (70, "yellow"),
        (165, "green"),
        (195, "teal"),
        (255, "blue"),
        (290, "purple"),
        (345, "pink"),
        (360, "red"),
    ):
        if hue < limit:
            if name in ("orange", "red") and v < 0.55:
                return "brown"
            return name
    return "red"


def analyze_pixels(image: bytes) -> dict[str, Any]:
    from PIL import Image

    with Image.open(io.BytesIO(image)) as img:
        width, height = img.size
        small = img.convert("RGB").resize((64, 64))
    pixels = list(small.getdata())
    counts = Counter(colour_name(*p) for p in pixels)
    colours = [name for name, n in counts.most_common() if n >= 0.1 * len(pixels)][:3] or [counts.most_common(1)[0][0]]
    brightness = sum(0.299 * r + 0.587 * g + 0.114 * b for r, g, b in pixels) / len(pixels) / 255
    mood = "bright" if brightness > 0.65 else "dark" if brightness < 0.35 else "balanced"
    ratio = width / height
    orientation = "landscape" if ratio > 1.05 else "portrait" if ratio < 0.95 else "square"
    quality = "high" if max(width, height) >= 1000 else "medium" if max(width, height) >= 400 else "low"
    colour_words = " and ".join(colours) if len(colours) < 3 else f"{colours[0]}, {colours[1]} and {colours[2]}"
    return {
        "category": "other",
        "subcategories": colours,
        "headline": f"{mood.capitalize()} {orientation} image in {colour_words}",
        "summary": (
            f"A {mood} {orientation} image, {width}x{height} pixels, dominated by {colour_words}. "
            "Described from its pixels by the local provider, without a vision model."
        ),
        "image_details": {"objects": [], "colors": colours, "setting": "", "text": "", "mood": mood},
        "media_metadata": {"media_type": "other", "orientation": orientation, "quality": quality},
    }
