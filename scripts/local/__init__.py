"""The local runtime: every stack of one environment on this machine, built from its templates.

`python -m scripts.local [--env dev] [--port-base 8000]`, or in Python `LocalRuntime(env).start()`.
"""

from scripts.local.runtime import LocalRuntime, StartError

__all__ = ["LocalRuntime", "StartError"]
