"""`python -m scripts.local [--env dev] [--port-base 8000] [--set-env FUNCTION:NAME=VALUE ...]`

Brings the environment up, prints where everything runs (every stack output with its local
value), then streams every function's logs until Ctrl-C. A failed start prints one line and
exits non-zero.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from scripts.local.runtime import LocalRuntime


def parse_set_env(items: list[str]) -> dict[str, dict[str, str]]:
    """`FUNCTION:NAME=VALUE` (FUNCTION is a function name, a logical id, or `*` for all)."""
    overrides: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, assignment = item.partition(":")
        name, eq, value = assignment.partition("=")
        if not sep or not eq or not name:
            raise SystemExit(f"--set-env {item!r}: expected FUNCTION:NAME=VALUE")
        overrides.setdefault(target, {})[name] = value
    return overrides


def print_table(runtime: LocalRuntime) -> None:
    rows = [("moto (AWS services)", runtime.moto_url), ("Lambda API (Invoke runs functions)", runtime.lambda_url)]
    rows += [
        (f"{a.protocol} API {a.name}", f"{'http' if a.protocol == 'HTTP' else 'ws'}://{a.address}")
        for a in runtime.apis
    ]
    rows += [(f"CloudFront {d.resource.logical_id}", f"http://{d.address}") for d in runtime.distributions]
    if runtime.database is not None:
        rows.append(("PostgreSQL (pgvector)", runtime.database.url))
    for stack, outputs in runtime.outputs.items():
        # CDK's generated cross-stack exports are plumbing, not something to open.
        rows += [
            (f"{stack} {name}", str(value)) for name, value in outputs.items() if not name.startswith("ExportsOutput")
        ]
    width = max(len(r[0]) for r in rows)
    print()
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for hint in hints(runtime):
        print(f"\n  {hint}")
    if runtime.skipped:
        print(f"\n  not run locally: {', '.join(runtime.skipped)}")
    print("\nlogs follow (Ctrl-C stops everything)\n", flush=True)


def hints(runtime: LocalRuntime) -> list[str]:
    """How to use what runs: the AWS CLI/SDK environment for moto, and commands keyed on outputs."""
    env = (
        f"AWS_ENDPOINT_URL={runtime.moto_url} AWS_ENDPOINT_URL_LAMBDA={runtime.lambda_url} "
        f"AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={runtime.region}"
    )
    credentials = f"AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={runtime.region}"
    found = [
        f"AWS SDK/CLI against the local services: {env}",
        # AWS CLI v1 before 1.29 and v2 before 2.13 ignore AWS_ENDPOINT_URL (some SDKs ignore it for
        # some services): a copied command would reach real AWS. --endpoint-url works everywhere.
        "the same with any AWS CLI version (older ones ignore AWS_ENDPOINT_URL), endpoint per command:\n"
        f"    {credentials} aws --endpoint-url {runtime.moto_url} s3 ls\n"
        f"    {credentials} aws --endpoint-url {runtime.lambda_url} lambda list-functions",
    ]
    for stack, outputs in runtime.outputs.items():
        if "TokensTableName" in outputs and "WebSocketUrl" in outputs:  # a tunnel stack: how to attach an agent
            found.append(f"tunnel agent ({stack}): " + _agent_command(runtime, outputs, env))
            if "HttpApiUrl" in outputs:  # each tunnel is its own origin at NAME.localhost (browsers, curl)
                port = outputs["HttpApiUrl"].rstrip("/").rpartition(":")[2]
                found.append(f"tunnels ({stack}): http://NAME.localhost:{port}/ (also {outputs['HttpApiUrl']}/t/NAME/)")
        if "FunctionsApiUrl" in outputs and "FunctionsTableName" in outputs:  # functions: a CLI with an admin key
            found.append(f"functions CLI ({stack}, org demo, admin key): " + _functions_command(runtime, outputs, env))
    return found


def _functions_command(runtime: LocalRuntime, outputs: dict[str, str], env: str) -> str:
    """A ready CLI command with a fresh admin key for org `demo`, or how to make one."""
    try:
        from scripts.functions_keys import cli_command, create_key

        key = create_key(
            outputs["FunctionsTableName"], "demo", "admin", label="make local", ddb=runtime.client("dynamodb")
        )
        return cli_command(outputs["FunctionsApiUrl"], key, "demo")
    except Exception:  # the helper changed or is missing: fall back to the two commands
        return (
            f"{env} .venv/bin/functions-keys --table {outputs['FunctionsTableName']} create --org demo --role admin\n"
            f"    FUNCTIONS_API_URL={outputs['FunctionsApiUrl']} FUNCTIONS_API_KEY=KEY FUNCTIONS_ORG=demo .venv/bin/platform-functions list"
        )


def _agent_command(runtime: LocalRuntime, outputs: dict[str, str], env: str) -> str:
    """A ready command with a fresh token (the tunnel's own helpers), or how to get one."""
    try:
        from scripts.tunnel_tokens import agent_command, create_token

        token = create_token(outputs["TokensTableName"], "make local", runtime.client("dynamodb"))
        return agent_command(outputs["WebSocketUrl"], token)
    except Exception:  # the helper changed or is missing: fall back to the two commands
        return (
            f"{env} .venv/bin/tunnel-tokens --table {outputs['TokensTableName']} create\n"
            f"    .venv/bin/tunnel-agent --url {outputs['WebSocketUrl']} --token TOKEN --port 3000"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.local", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env",
        default="dev",
        help="environment whose configuration and stacks to run, as `-c env=` for cdk (default: %(default)s)",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=8000,
        metavar="PORT",
        help="first local port: HTTP APIs from PORT upward, then WebSocket APIs; moto (the AWS services) at "
        "PORT+100, the Lambda API at PORT+101 (default: %(default)s)",
    )
    parser.add_argument(
        "--set-env",
        action="append",
        default=[],
        metavar="FUNCTION:NAME=VALUE",
        help="set or override an environment variable of a function (FUNCTION: its name, its logical id, "
        "or * for every function); repeatable",
    )
    parser.add_argument(
        "--no-colour", action="store_true", help="plain log lines (colour is used only when stdout is a terminal)"
    )
    args = parser.parse_args(argv)
    started = time.time()
    runtime = LocalRuntime(
        args.env,
        port_base=args.port_base,
        set_env=parse_set_env(args.set_env),
        log_out=sys.stdout,
        colour=not args.no_colour and sys.stdout.isatty(),
        progress=lambda message: print(f"... {message}", flush=True),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        runtime.start()
        # Set after start so Ctrl-C during start still aborts it; set explicitly because a shell
        # that starts us in the background (`make local &`, CI scripts) leaves SIGINT ignored.
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    except KeyboardInterrupt:
        runtime.stop()
        return 130
    except Exception as exc:
        runtime.stop()
        print(f"local runtime failed to start: {exc}", file=sys.stderr)
        return 1
    print(f"... up in {time.time() - started:.1f} s")
    print_table(runtime)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    print("\nstopping...", flush=True)
    runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
