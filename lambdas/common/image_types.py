"""Photo formats by their magic numbers (first bytes), never by name or declared type: shared by
the QR upload event function and the collections image processor."""

from __future__ import annotations

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
# How many leading bytes `sniff` needs.
SNIFF_BYTES = 12


def sniff(data: bytes) -> str | None:
    """JPEG, PNG, GIF, WEBP or HEIF (HEIC/HEIF) from the first bytes, or None for anything else."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None
