"""QR code rendering, server-side (never a third-party service).

segno is imported inside the function so that only the request that renders a code pays for it.
"""

from __future__ import annotations

import io


def qr_svg(data: str) -> str:
    """A standalone SVG document (with xmlns, usable as an <img> data: URI) encoding `data`."""
    import segno  # deferred: cold start of every other route stays free of it

    code = segno.make_qr(data, error="m")
    out = io.BytesIO()
    # A white background keeps the code scannable on dark page themes.
    code.save(out, kind="svg", xmldecl=False, scale=6, border=4, light="#fff", title="Upload QR code")
    return out.getvalue().decode()
