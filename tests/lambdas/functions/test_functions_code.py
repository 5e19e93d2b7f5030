"""User code as data: inline source is parsed (never run) and zipped; uploaded zips are validated."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from lambdas.functions import code
from lambdas.functions.code import CodeError, check_source, validate_zip, zip_source
from tests.lambdas.functions.stack_schema import zip_of


def validate(data: bytes, handler: str = "main.handler") -> int:
    return validate_zip(io.BytesIO(data), handler)


def test_inline_source_with_a_syntax_error_names_file_and_line() -> None:
    with pytest.raises(CodeError, match=r"main\.py line 2: .*"):
        check_source("def handler(event, context):\n    return {\n", "main.handler")


def test_inline_source_is_parsed_not_run() -> None:
    # Would raise at import time; parsing alone accepts it.
    check_source("raise SystemExit('ran!')\ndef handler(e, c):\n    return 1\n", "main.handler")


def test_inline_source_size_and_emptiness_limits() -> None:
    with pytest.raises(CodeError, match="256"):
        check_source("x = 1\n" * (code.MAX_SOURCE_BYTES // 6 + 1), "main.handler")
    with pytest.raises(CodeError, match="non-empty"):
        check_source("   \n", "main.handler")
    with pytest.raises(CodeError, match=r"main\.py: .*null bytes"):
        check_source("x = 1\x00\n", "main.handler")


def test_zip_source_is_deterministic_and_holds_the_handler_module() -> None:
    source = "def run(event, context):\n    return event\n"
    first, second = zip_source(source, "pkg.tool.run"), zip_source(source, "pkg.tool.run")
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == ["pkg/tool.py"]
        assert archive.read("pkg/tool.py").decode() == source
    assert validate(first, "pkg.tool.run") == len(source)


@pytest.mark.parametrize(
    ("entries", "symlink", "message"),
    [
        ({"main.py": b"x"}, "link.py", "symbolic link"),
        ({"main.py": b"x", "../evil.py": b"x"}, None, "'..'"),
        ({"main.py": b"x", "/etc/cron.d/evil": b"x"}, None, "absolute path"),
        ({"main.py": b"x", "C:/evil.py": b"x"}, None, "absolute path"),
        ({"other.py": b"x"}, None, "handler module not found: the zip has neither main.py nor main/__init__.py"),
    ],
)
def test_hostile_or_broken_zips_are_refused_with_a_reason(
    entries: dict[str, bytes], symlink: str | None, message: str
) -> None:
    with pytest.raises(CodeError, match=message.replace(".", r"\.").replace("(", r"\(")):
        validate(zip_of(entries, symlink=symlink))


def test_a_package_handler_is_found() -> None:
    assert validate(zip_of({"app/__init__.py": b"def handler(e, c): pass\n"}), "app.handler") > 0


def test_not_a_zip() -> None:
    with pytest.raises(CodeError, match="not a valid zip"):
        validate(b"PK\x03\x04 this is not really a zip")


def test_too_many_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code, "MAX_FILES", 5)
    with pytest.raises(CodeError, match="6 entries; at most 5"):
        validate(zip_of({"main.py": b"x", **{f"f{i}.txt": b"x" for i in range(5)}}))


def test_a_bomb_is_refused_by_its_declared_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code, "MAX_UNZIPPED_BYTES", 1024 * 1024)
    data = zip_of({"main.py": b"x", "zeros.bin": b"\0" * (2 * 1024 * 1024)})
    assert len(data) < 10_000  # a real bomb: tiny zip, large content
    with pytest.raises(CodeError, match="unpacks to 2097153 bytes"):
        validate(data)


def _understate_size(data: bytes, name: bytes, declared: int) -> bytes:
    """Rewrite an entry's uncompressed size in its local header and central directory."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04" + out[4:4])  # first local header
    while local != -1:
        name_len = struct.unpack_from("<H", out, local + 26)[0]
        if bytes(out[local + 30 : local + 30 + name_len]) == name:
            struct.pack_into("<I", out, local + 22, declared)
        local = out.find(b"PK\x03\x04", local + 4)
    central = out.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", out, central + 28)[0]
        if bytes(out[central + 46 : central + 46 + name_len]) == name:
            struct.pack_into("<I", out, central + 24, declared)
        central = out.find(b"PK\x01\x02", central + 4)
    return bytes(out)


def test_a_zip_that_lies_about_its_sizes_is_refused() -> None:
    data = _understate_size(zip_of({"main.py": b"x", "big.bin": b"\0" * 500_000}), b"big.bin", 100)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.getinfo("big.bin").file_size == 100  # the lie is in place
    with pytest.raises(CodeError, match=r"big\.bin"):
        validate(data)
