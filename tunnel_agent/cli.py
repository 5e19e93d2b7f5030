"""The agent's command line: its arguments (`tunnel-agent 3000`, flags, --help examples), and
where it keeps the tunnel's URL and token between runs (`tunnel-agent login`).

The file is `$XDG_CONFIG_HOME/tunnel-agent/config.json` (`~/.config/tunnel-agent/config.json`
when XDG_CONFIG_HOME is unset), written with mode 0600 in a 0700 directory: it holds a secret.
Flags win over the environment (TUNNEL_URL, TUNNEL_TOKEN), which wins over the file.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from lambdas.tunnel.tokens import valid_subdomain
from tunnel_agent.forwarder import AgentConfig

SUBDOMAIN_RULE = "3-63 characters of a-z, 0-9 and hyphens, starting and ending with a letter or digit"
EXIT_FATAL = 1
EXIT_USAGE = 2

URL_ENV = "TUNNEL_URL"
TOKEN_ENV = "TUNNEL_TOKEN"  # noqa: S105 - the variable's name, not a secret


class ConfigError(Exception):
    """The config file exists but cannot be used (one line for the user)."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tunnel-agent" / "config.json"


def save(path: Path, url: str, token: str) -> None:
    """Write the file readable by its owner only (created 0600, never briefly world-readable)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = json.dumps({"url": url, "token": token}, indent=2) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def load(path: Path) -> dict[str, str]:
    """The saved `url` and `token` ({} without a file)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object: run `tunnel-agent login` again")
    return {k: v for k, v in data.items() if k in ("url", "token") and isinstance(v, str)}


def resolve(flag: str | None, env_name: str, saved: dict[str, str], key: str) -> str | None:
    return flag or os.environ.get(env_name) or saved.get(key)


EXAMPLES = """\
examples:
  # once: keep the tunnel's URL and token (mode 0600, see "login --help" for where)
  tunnel-agent login --url wss://ID.execute-api.REGION.amazonaws.com/dev --token TOKEN
  # then expose the app on port 3000 (or "localhost:8080", "https://127.0.0.1:8443")
  tunnel-agent 3000
  # a stable name, taken over from another agent serving it
  tunnel-agent 3000 --subdomain my-demo --replace
  # without login: flags, or TUNNEL_URL and TUNNEL_TOKEN in the environment
  TUNNEL_URL=wss://... TUNNEL_TOKEN=TOKEN tunnel-agent 3000
  tunnel-agent --url wss://... --token TOKEN --port 3000

Each request prints one line: time, method, path and query, the status the client got (504 when
the app answered after the tunnel stopped waiting), response size and duration. The inspector at
http://127.0.0.1:4040 (the next free port if taken) lists the last requests with their headers
and bodies and replays one on a click. Ctrl-C lets requests in flight finish (--stop-timeout
seconds), a second Ctrl-C quits at once.
"""


def parse_target(text: str) -> tuple[str, str, int]:
    """(scheme, host, port) from `3000`, `HOST:PORT` or `http(s)://HOST[:PORT]`."""
    if text.isdigit():
        return "http", "127.0.0.1", int(text)
    parts = urlsplit(text if "://" in text else f"http://{text}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"expected a port, HOST:PORT or http(s)://HOST[:PORT], got {text!r}")
    return parts.scheme, parts.hostname, port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunnel-agent",
        description="Expose a local HTTP app through the tunnel (`login` saves the URL and token once).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", nargs="?", help="the local app: PORT, HOST:PORT or http(s)://HOST[:PORT]")
    parser.add_argument("--url", help=f"tunnel WebSocket URL, wss://... (or {URL_ENV}, or login)")
    parser.add_argument("--token", help=f"agent token (or {TOKEN_ENV}, or login)")
    parser.add_argument("--port", type=int, help="local port (the same as a PORT target)")
    parser.add_argument("--host", help="target host (default 127.0.0.1)")
    parser.add_argument("--scheme", choices=("http", "https"), help="target scheme (default http)")
    parser.add_argument(
        "--host-header", help="'rewrite' to send HOST:PORT as Host, or a literal value (default: public host)"
    )
    parser.add_argument("--subdomain", help="ask for a stable subdomain (first token to claim it owns it)")
    parser.add_argument(
        "--replace", action="store_true", help="take the name over from another agent serving it (it exits)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="requests forwarded at once (default 16)")
    parser.add_argument(
        "--inspect-port", type=int, default=4040, help="request inspector port (default 4040; busy: the next free)"
    )
    parser.add_argument("--no-inspect", action="store_true", help="no request inspector")
    parser.add_argument(
        "--stop-timeout", type=float, default=5.0, help="Ctrl-C: seconds requests in flight may take (default 5)"
    )
    parser.add_argument("--config", type=Path, help=f"saved login (default {config_path()})")
    # For tests and operators who need shorter cycles than API Gateway's limits.
    parser.add_argument("--ping-interval", type=float, default=300.0, help=argparse.SUPPRESS)
    parser.add_argument("--rotate-after", type=float, default=110 * 60.0, help=argparse.SUPPRESS)
    return parser


def _check_url(parser: argparse.ArgumentParser, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        parser.exit(EXIT_USAGE, f"error: --url must be a ws:// or wss:// URL, got {url!r}\n")


def parse_args(argv: list[str] | None) -> AgentConfig:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        saved = load(args.config or config_path())
    except ConfigError as exc:
        parser.exit(EXIT_USAGE, f"error: {exc}\n")
    url = resolve(args.url, URL_ENV, saved, "url")
    token = resolve(args.token, TOKEN_ENV, saved, "token")
    if not url:
        parser.exit(
            EXIT_USAGE,
            f"error: no tunnel URL: pass --url, set {URL_ENV}, or run `tunnel-agent login` once\n",
        )
    _check_url(parser, url)
    if not token:
        parser.exit(EXIT_USAGE, f"error: --token (or {TOKEN_ENV}, or `tunnel-agent login`) is required\n")
    if args.target and args.port:
        parser.exit(EXIT_USAGE, "error: give the local app once: a target or --port, not both\n")
    if not args.target and not args.port:
        parser.exit(EXIT_USAGE, "error: which local app? e.g. `tunnel-agent 3000` (or --port 3000)\n")
    try:
        scheme, host, port = parse_target(args.target) if args.target else ("http", "127.0.0.1", args.port)
    except ValueError as exc:
        parser.exit(EXIT_USAGE, f"error: {exc}\n")
    if args.subdomain and not valid_subdomain(args.subdomain.lower()):
        parser.exit(EXIT_USAGE, f"error: --subdomain {args.subdomain!r}: {SUBDOMAIN_RULE}\n")
    if not 0 < port < 65536 or args.concurrency < 1 or not 0 < args.inspect_port < 65536:
        parser.exit(EXIT_USAGE, "error: ports must be 1-65535 and --concurrency at least 1\n")
    return AgentConfig(
        url=url,
        token=token,
        port=port,
        host=args.host or host,
        scheme=args.scheme or scheme,
        host_header=args.host_header,
        subdomain=args.subdomain.lower() if args.subdomain else None,
        replace=args.replace,
        concurrency=args.concurrency,
        ping_interval=args.ping_interval,
        rotate_after=args.rotate_after,
        stop_timeout=max(0.0, args.stop_timeout),
        inspect_port=None if args.no_inspect else args.inspect_port,
    )


def login(argv: list[str]) -> int:
    """`login --url URL --token TOKEN`: save them for the short form (`tunnel-agent 3000`)."""
    path = config_path()
    parser = argparse.ArgumentParser(
        prog="tunnel-agent login",
        description=f"Save the tunnel's WebSocket URL and token to {path} (mode 0600; under "
        "$XDG_CONFIG_HOME when set), so that `tunnel-agent PORT` needs neither.",
    )
    parser.add_argument("--url", required=True, help="tunnel WebSocket URL (wss://...)")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV), help="agent token")
    parser.add_argument("--config", type=Path, default=path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _check_url(parser, args.url)
    if not args.token:
        parser.exit(EXIT_USAGE, f"error: --token (or {TOKEN_ENV}) is required\n")
    try:
        save(args.config, args.url, args.token)
    except OSError as exc:
        parser.exit(EXIT_FATAL, f"error: cannot write {args.config}: {exc}\n")
    print(f"Saved the tunnel URL and token to {args.config} (readable by you only)")
    return 0
