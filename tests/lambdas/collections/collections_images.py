"""Images generated for the processor tests (nothing binary is checked in)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def jpeg(
    width: int = 1200, height: int = 800, orientation: int | None = None, color: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    img = Image.new("RGB", (width, height), color)
    # A distinct top-left quadrant lets tests check that rotation really happened.
    img.paste((20, 20, 220), (0, 0, width // 2, height // 2))
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    img.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def png_alpha(width: int = 900, height: int = 600) -> bytes:
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))  # fully transparent black
    img.paste((0, 160, 0, 255), (0, 0, width // 3, height))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def encode(fmt: str, width: int = 640, height: int = 480, color: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    img = Image.new("RGB", (width, height), color)
    out = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    img.save(out, fmt)
    return out.getvalue()


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid PNG header claiming 400 MP, with a tiny (zlib-compressed zeros) body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    row = b"\x00" + b"\x00" * width
    idat = zlib.compress(row * 16, 9)  # truncated body: the header alone must be refused
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
