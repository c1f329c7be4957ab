"""``python -m rudder --version``, ``python -m rudder policy list|doc|check|test`` and ``python -m rudder plugin
add|install|update|remove|list|verify``: the ``rudder policy`` and ``rudder plugin``
commands, so that a policy library is tested and installed the same way from Python as
from the command line.
Exit codes as there: 0 ok, 1 tests failed, 2 bad usage or a policy that does not load.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import List, Optional

from . import _rudder


NO_TESTS = ("policy test: no test files here (scripts/tests/*.json, plugins/*/tests/*.json); "
            "`rudder policy test --std` runs the standard library's own, --allow-empty makes this exit 0")


def run(argv: Optional[List[str]] = None) -> int:
    """``main``, with a closed stdout (``| head -3``) ending the command quietly, as
    the rudder binary does: the lines already written, exit 0, no traceback."""
    try:
        code = main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rudder")
    parser.add_argument("--version", action="version",
                        version=f"rudder-policy {_rudder.__version__} (the Rust library rudder-policy "
                                f"{_rudder.library_version}, {platform.python_implementation()} "
                                f"{platform.python_version()})")
    commands = parser.add_subparsers(dest="command", required=True)
    policy = commands.add_parser("policy", help="list, document, check and test policies")
    sub = policy.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every policy on the search path and in the standard library")
    doc = sub.add_parser("doc", help="a policy's doc, hooks and parameters")
    doc.add_argument("policy")
    check = sub.add_parser("check", help="compile and validate policies")
    check.add_argument("policies", nargs="+")
    check.add_argument("--param", action="append", default=[], metavar="[POLICY.]KEY=VALUE")
    test = sub.add_parser("test", help="run policy test files (scripts/tests, plugins/*/tests)")
    test.add_argument("which", nargs="*", help="policy names or test files; all by default")
    test.add_argument("--std", action="store_true", help="the standard library's own tests, compiled in")
    test.add_argument("--allow-empty", action="store_true", help="exit 0 when there is nothing to test")
    plugin = commands.add_parser("plugin", help="install, lock and verify policy libraries (rudder.toml, rudder.lock)")
    psub = plugin.add_subparsers(dest="action", required=True)
    add = psub.add_parser("add", help="add a plugin from a git URL or a folder, install it, lock it")
    add.add_argument("source")
    ref = add.add_mutually_exclusive_group()
    for flag in ("tag", "rev", "branch", "version"):
        ref.add_argument(f"--{flag}")
    add.add_argument("--name")
    install = psub.add_parser("install", help="install exactly what rudder.lock records")
    install.add_argument("--locked", action="store_true")
    install.add_argument("--offline", action="store_true")
    update = psub.add_parser("update", help="re-resolve within each entry's constraint")
    update.add_argument("names", nargs="*")
    remove = psub.add_parser("remove", help="remove a plugin from rudder.toml and rudder.lock")
    remove.add_argument("name")
    psub.add_parser("list", help="every plugin with its version, source, commit, checksum and state")
    psub.add_parser("verify", help="check installed plugins against rudder.lock")
    args = parser.parse_args(argv)

    if args.command == "plugin":
        kwargs = {k: v for k, v in vars(args).items() if k not in ("command", "action") and v is not None}
        lines, code, error = _rudder.plugin_run(args.action, **kwargs)
        for line in lines:
            print(line)
        if error is not None:
            print(f"error: {error}", file=sys.stderr)
        return code

    try:
        if args.action == "list":
            for line in _rudder.policy_list():
                print(line)
        elif args.action == "doc":
            sys.stdout.write(_rudder.policy_doc(args.policy))
        elif args.action == "check":
            lines, error = _rudder.policy_check(args.policies, args.param)
            for line in lines:
                print(line)
            if error is not None:
                print(f"error: {error}", file=sys.stderr)
                return 2
        elif args.action == "test":
            passed, failed, failures = _rudder.policy_test(".", args.which, stdlib=args.std)
            if passed + failed == 0:
                if args.allow_empty:
                    print("no policy tests to run", file=sys.stderr)
                    return 0
                print(f"error: {NO_TESTS}", file=sys.stderr)
                return 1
            for f in failures:
                print(f)
            print(f"{passed} passed, {failed} failed")
            return 1 if failed else 0
    except (ValueError, _rudder.PolicyLoadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run())
