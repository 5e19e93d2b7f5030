"""Where the agent keeps the tunnel's URL and token between runs (`tunnel_agent.py login`).

The file is `$XDG_CONFIG_HOME/tunnel-agent/config.json` (`~/.config/tunnel-agent/config.json`
when XDG_CONFIG_HOME is unset), written with mode 0600 in a 0700 directory: it holds a secret.
Flags win over the environment (TUNNEL_URL, TUNNEL_TOKEN), which wins over the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

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
        raise ConfigError(f"{path} is not a JSON object: run `tunnel_agent.py login` again")
    return {k: v for k, v in data.items() if k in ("url", "token") and isinstance(v, str)}


def resolve(flag: str | None, env_name: str, saved: dict[str, str], key: str) -> str | None:
    return flag or os.environ.get(env_name) or saved.get(key)
