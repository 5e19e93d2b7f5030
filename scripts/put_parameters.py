"""Write the collections API keys as SSM SecureString parameters (CloudFormation cannot).

    collections-parameters --env dev            # values from the environment, else prompts
    collections-parameters --env dev --check    # which are set (never the values)

(`make setup` installs `collections-parameters` into .venv/bin; `python scripts/put_parameters.py
ARGS` is the same command.)

Names: `{parameter_prefix}/collections/{NAME}` for NAME in ANTHROPIC_API_KEY, VOYAGE_API_KEY
(needed in prod; dev falls back to the offline local providers without them) and the optional
OPENAI_API_KEY, LANGSMITH_API_KEY. A value comes from the environment variable of the same
name, otherwise from a hidden prompt (empty skips it). Values are never printed or logged.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Sequence

from lambdas.collections.names import ANTHROPIC_API_KEY, PARAMETER_NAMES, VOYAGE_API_KEY
from lambdas.common.aws import client
from scripts.operator_cli import OneLineParser, one_line_errors

REQUIRED = (ANTHROPIC_API_KEY, VOYAGE_API_KEY)


def parameter_name(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/collections/{name}"


def check(prefix: str) -> dict[str, bool]:
    ssm = client("ssm")
    names = [parameter_name(prefix, n) for n in PARAMETER_NAMES]
    # GetParameters without decryption: presence only, the values never leave SSM.
    found = {p["Name"] for p in ssm.get_parameters(Names=names, WithDecryption=False)["Parameters"]}
    return {n: parameter_name(prefix, n) in found for n in PARAMETER_NAMES}


def put(prefix: str, names: Sequence[str], prompt: Callable[[str], str], interactive: bool) -> list[str]:
    ssm = client("ssm")
    written = []
    for name in names:
        value = os.environ.get(name, "").strip()
        if not value and interactive:
            need = "required in prod" if name in REQUIRED else "optional"
            value = prompt(f"{name} ({need}; empty to skip): ").strip()
        if not value:
            continue
        ssm.put_parameter(
            Name=parameter_name(prefix, name),
            Value=value,
            Type="SecureString",
            Overwrite=True,
            Description=f"collections {name} (scripts/put_parameters.py)",
        )
        written.append(name)
    return written


def main(argv: Sequence[str] | None = None, prompt: Callable[[str], str] = getpass.getpass) -> int:
    parser = OneLineParser(prog="collections-parameters", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--check", action="store_true", help="list which parameters are set")
    parser.add_argument("--no-prompt", action="store_true", help="only use environment variables")
    parser.add_argument(
        "names",
        nargs="*",
        choices=[[], *PARAMETER_NAMES],
        metavar="NAME",
        help=f"subset of {', '.join(PARAMETER_NAMES)}",
    )
    args = parser.parse_args(argv)
    from infrastructure.config import UnknownEnvironment, get_config  # after --help: it loads the CDK

    try:
        prefix = get_config(args.env).parameter_prefix
    except UnknownEnvironment as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def run() -> int:
        if args.check:
            status = check(prefix)
            for name, present in status.items():
                print(f"{parameter_name(prefix, name)}: {'set' if present else 'missing'}")
            return 0 if all(status[n] for n in REQUIRED) else 1
        interactive = not args.no_prompt and sys.stdin.isatty()
        written = put(prefix, args.names or PARAMETER_NAMES, prompt, interactive=interactive)
        print("written: " + (", ".join(written) if written else "nothing"))
        return 0

    return one_line_errors(run)


if __name__ == "__main__":
    sys.exit(main())
