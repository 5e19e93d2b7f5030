"""User code as data: inline source checked for syntax and zipped, uploaded zips validated.

Nothing here imports or runs user code. Inline source is only parsed (`ast` flags: no bytecode),
and a zip is only read: entry names, types and sizes, decompressed with a running cap so a zip
that lies about its sizes is still stopped at the limit.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import re
import stat
import zipfile
from dataclasses import dataclass
from typing import IO

MAX_SOURCE_BYTES = 256 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # Lambda's direct-upload limit for a zip
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024  # Lambda's unzipped deployment package limit
MAX_FILES = 10_000
HANDLER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class CodeError(ValueError):
    """User code that cannot be accepted; the message is for the person who sent it."""


@dataclass(frozen=True)
class CodeDigest:
    sha256_hex: str
    size: int

    @property
    def lambda_sha256(self) -> str:
        """The form Lambda reports as `CodeSha256` (base64 of the digest)."""
        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()


def digest(data: bytes) -> CodeDigest:
    return CodeDigest(hashlib.sha256(data).hexdigest(), len(data))


def check_handler(handler: str) -> str:
    if not HANDLER_PATTERN.match(handler or ""):
        raise CodeError(f"handler {handler!r} must look like module.function (e.g. main.handler)")
    return handler


def handler_module_paths(handler: str) -> tuple[str, str]:
    """The two files a handler's module can live in: `pkg/mod.py` or `pkg/mod/__init__.py`."""
    module = check_handler(handler).rpartition(".")[0].replace(".", "/")
    return f"{module}.py", f"{module}/__init__.py"


def check_source(source: str, handler: str) -> None:
    """Refuse inline source that is too large or is not valid Python (parsed, never compiled to
    bytecode or run)."""
    if not isinstance(source, str) or not source.strip():
        raise CodeError("source must be non-empty Python text")
    size = len(source.encode())
    if size > MAX_SOURCE_BYTES:
        raise CodeError(
            f"source is {size} bytes; inline source is limited to {MAX_SOURCE_BYTES} (256 KB): upload a zip"
        )
    filename = handler_module_paths(handler)[0]
    try:
        compile(source, filename, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:
        where = f"{filename} line {exc.lineno}" if exc.lineno else filename
        raise CodeError(f"{where}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise CodeError(f"{filename}: cannot be parsed ({type(exc).__name__})") from None


def zip_source(source: str, handler: str) -> bytes:
    """A deterministic zip holding the source as the handler's module (same source, same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(handler_module_paths(handler)[0], date_time=_FIXED_TIME)
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, source)
    return buffer.getvalue()


def _bad_name(name: str) -> str | None:
    if "\\" in name or "\x00" in name:
        return "contains a backslash or NUL"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in name.split("/"):
        return "contains '..'"
    return None


def validate_zip(stream: IO[bytes], handler: str) -> int:
    """Check a deployment zip; returns its total uncompressed size. Raises CodeError naming the
    first problem: not a zip, encrypted, symlinks, absolute or `..` paths, too many files, too
    large once unzipped (declared or actual), or the handler's module missing."""
    check_handler(handler)
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CodeError(f"not a valid zip file ({exc})") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_FILES:
            raise CodeError(f"zip has {len(entries)} entries; at most {MAX_FILES} are allowed")
        declared = 0
        names = set()
        for entry in entries:
            problem = _bad_name(entry.filename)
            if problem:
                raise CodeError(f"zip entry {entry.filename!r} {problem}")
            if stat.S_ISLNK(entry.external_attr >> 16):
                raise CodeError(f"zip entry {entry.filename!r} is a symbolic link; symlinks are not allowed")
            if entry.flag_bits & 0x1:
                raise CodeError(f"zip entry {entry.filename!r} is encrypted")
            declared += entry.file_size
            names.add(entry.filename)
        if declared > MAX_UNZIPPED_BYTES:
            raise CodeError(f"zip unpacks to {declared} bytes; the limit is {MAX_UNZIPPED_BYTES} (250 MB)")
        if not names.intersection(handler_module_paths(handler)):
            module, package = handler_module_paths(handler)
            raise CodeError(f"handler module not found: the zip has neither {module} nor {package}")
        return _inflate_all(archive, entries)


def _inflate_all(archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo]) -> int:
    """Decompress every entry with a running total (headers can lie: a bomb is stopped at the
    limit, not after it has filled the disk or memory); CRCs are checked by zipfile."""
    total = 0
    for entry in entries:
        if entry.is_dir():
            continue
        try:
            with archive.open(entry) as member:
                while chunk := member.read(1024 * 1024):
                    total += len(chunk)
                    if total > MAX_UNZIPPED_BYTES:
                        raise CodeError(
                            f"zip unpacks to more than {MAX_UNZIPPED_BYTES} bytes (250 MB) though its "
                            "headers declare less"
                        )
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
            raise CodeError(f"zip entry {entry.filename!r} cannot be read ({exc})") from None
    return total
