"""Free loopback ports for the tests and benchmarks that start the local runtime (APIs from a base
port upward, moto at base + MOTO_OFFSET, the Lambda API at base + LAMBDA_OFFSET), so parallel or
repeated runs never collide with `make local`."""

from __future__ import annotations

import random
import socket

from scripts.local.runtime import LAMBDA_OFFSET, MOTO_OFFSET


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Below Linux's default ephemeral range (32768-60999): a port checked free there can be taken by an
# outgoing connection before the runtime binds it.
LOWEST, HIGHEST = 10000, 32500


def free_port_base(count: int, low: int = LOWEST, high: int = HIGHEST) -> int:
    """A base with `count` consecutive free ports and free moto and Lambda API ports."""
    for _ in range(50):
        base = random.randrange(low, high)
        if all(port_is_free(p) for p in [*range(base, base + count), base + MOTO_OFFSET, base + LAMBDA_OFFSET]):
            return base
    raise RuntimeError("no free port range")
