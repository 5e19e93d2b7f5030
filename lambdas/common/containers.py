"""What a Lambda container keeps between invocations (settings, SDK clients, keys, a connection),
in one registry, so that `reset()` returns the process to a fresh container's state in one call.

Tests call `reset()` before each case (and where a case stands for a new container); handlers
never need to. A cache joins the registry where it is defined: `@per_container` for a function
whose result is kept (like `functools.cache`), `@on_reset` for state that needs its own teardown
(a database connection to close).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_resets: list[Callable[[], None]] = []


def per_container(fn: Callable[..., T]) -> functools._lru_cache_wrapper[T]:
    """`functools.cache`, forgotten by `reset()`."""
    cached = functools.cache(fn)
    _resets.append(cached.cache_clear)
    return cached


def on_reset(fn: Callable[[], None]) -> Callable[[], None]:
    """Register `fn` to run on `reset()`; returns it unchanged."""
    _resets.append(fn)
    return fn


def reset() -> None:
    """Forget everything registered: the next call builds it again, as a new container would."""
    for clear in _resets:
        clear()
