"""Decoding and resizing, with no AWS in sight (the bench and the tests call `render` directly).

The format comes from the bytes, never from the key. Dimensions are checked from the header
before any pixel is decoded, so a decompression bomb costs nothing. JPEGs are decoded with
draft mode (libjpeg's DCT scaling by 1/2, 1/4, 1/8), so a 12-MP photo is never decoded at full size.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from lambdas.common.image_types import sniff

THUMBNAIL_LONG_EDGE = 800
ANALYSIS_LONG_EDGE = 1568  # what Claude's vision input uses without downscaling it again
ANALYSIS_MAX_PIXELS = 1_150_000
JPEG_QUALITY = 85

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "HEIF": "image/heic",
}
_ORIENTATION = 0x0112


class Refused(Exception):
    """The object is not something we will process; retrying cannot change that."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Rendered:
    content_type: str
    width: int  # of the original, as displayed (after EXIF orientation)
    height: int
    thumbnail: bytes
    thumbnail_size: tuple[int, int]
    analysis: bytes
    analysis_size: tuple[int, int]


def fit(width: int, height: int, long_edge: int, max_pixels: int | None = None) -> tuple[int, int]:
    """The largest size with the same aspect ratio within both limits (never upscaled)."""
    scale = min(1.0, long_edge / max(width, height))
    if max_pixels is not None:
        scale = min(scale, math.sqrt(max_pixels / (width * height)))
    # floor keeps the result inside the limits; a 1-px side stays 1 px.
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def _flatten(img: Any) -> Any:
    """RGB for JPEG output; transparency becomes white, not black."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


def _jpeg(img: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def render(data: bytes, max_pixels: int) -> Rendered:
    """Thumbnail and analysis copy of one image; raises Refused for anything not processable."""
    fmt = sniff(data)
    if fmt is None:
        raise Refused("not_image", "content is not JPEG, PNG, WebP, GIF or HEIC")
    from PIL import Image, ImageOps

    if fmt == "HEIF":
        import pi_heif  # pillow-heif's decode-only build: no HEVC encoder (11 MB) in the asset

        pi_heif.register_heif_opener()
    # Our own limit below refuses bombs explicitly; PIL's (2x) is a backstop.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        img: Any = Image.open(io.BytesIO(data), formats=[fmt])
        stored_w, stored_h = img.size
        if stored_w * stored_h > max_pixels:
            raise Refused("decompression_bomb", f"{stored_w}x{stored_h} exceeds {max_pixels} pixels")
        orientation = img.getexif().get(_ORIENTATION, 1)
        target = fit(stored_w, stored_h, ANALYSIS_LONG_EDGE, ANALYSIS_MAX_PIXELS)
        if fmt == "JPEG":
            img.draft("RGB", target)  # smallest DCT scale still >= target
        img = _flatten(img)  # decodes (the first frame of an animation)
        # After draft mode only a <= 2x reduction is left. A box filter (area averaging, what
        # Pillow's reduce() uses) antialiases that properly and costs ~30% less than bilinear;
        # measured against Lanczos it differs by ~0.5 more grey level on average, invisible at
        # thumbnail size and below what the vision model resolves.
        if img.size != target:
            img = img.resize(target, Image.Resampling.BOX)
        if orientation != 1:
            img.getexif()[_ORIENTATION] = orientation  # convert() drops info; restore the tag
            img = ImageOps.exif_transpose(img)
        thumb = img.resize(fit(img.width, img.height, THUMBNAIL_LONG_EDGE), Image.Resampling.BOX)
    except Refused:
        raise
    except Image.DecompressionBombError as exc:
        raise Refused("decompression_bomb", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL reports truncated and malformed files as OSError/SyntaxError/ValueError.
        raise Refused("corrupt", f"{fmt} could not be decoded: {exc}") from None
    swapped = orientation in (5, 6, 7, 8)
    width, height = (stored_h, stored_w) if swapped else (stored_w, stored_h)
    return Rendered(
        content_type=CONTENT_TYPES[fmt],
        width=width,
        height=height,
        thumbnail=_jpeg(thumb),
        thumbnail_size=thumb.size,
        analysis=_jpeg(img),
        analysis_size=img.size,
    )
