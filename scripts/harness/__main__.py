"""The harness for shell scripts (scripts/harness/harness.sh calls it; see there).

python3 scripts/harness build
    builds the binary (or takes $EVENTS_SERVICE_BINARY) and prints its path.
python3 scripts/harness serve [--health ready|live|none] [--within S] [--stop-within S]
                              [--log FILE] [--binary PATH] [--no-inherit] [VAR=VALUE ...]
                              [-- COMMAND ...]
    starts the service, waits for health, prints one line, `URL PID LOG`, closes stdout, and
    stays as its parent until SIGTERM (or until its own parent dies); then stops it with SIGTERM
    and exits 0 when it exited 0 within --stop-within seconds. Otherwise, and when the service
    did not start or exited by itself, it says why on stderr with the end of the service's
    output, and exits non-zero (the service's status, 128 + a signal, or 1).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.service import Failure, Service, build, tail  # noqa: E402

PR_SET_PDEATHSIG = 1


class Stop(Exception):
    """SIGTERM arrived."""


def say(message: str):
    print(f"harness: {message}", file=sys.stderr, flush=True)


def status_of(code: int) -> int:
    return 128 - code if code < 0 else code


def stop_when_orphaned(parent: int):
    """SIGTERM when the script that started us dies, even by SIGKILL, so that no service outlives
    it; Linux only, as the rest of the scripts."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def serve(args, command: list[str]) -> int:
    parent = os.getppid()
    env = dict(item.split("=", 1) for item in args.variables)
    health = None if args.health == "none" else args.health

    def on_term(*_):
        raise Stop

    signal.signal(signal.SIGTERM, on_term)
    service = Service(env, binary=args.binary, command=command or None, log=args.log,
                      health=health, inherit=not args.no_inherit)
    try:
        stop_when_orphaned(parent)
        service.start(args.within)
        print(f"{service.url} {service.pid} {service.log}", flush=True)
        # The script has read its line; nothing more goes to its pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = service.proc.wait()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say(f"the service exited by itself with status {status_of(code)}; the end of its output "
            f"({service.log}):\n{tail(service.log)}")
        return status_of(code) or 1
    except Failure as failure:
        say(str(failure))
        return 1
    except Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if service.proc is None:
            return 1
    try:
        code, took = service.stop(args.stop_within)
    except Failure as failure:
        say(f"the service is {failure}")
        return 128 + signal.SIGKILL
    if code != 0:
        say(f"the service exited with status {status_of(code)} {took:.1f} s after SIGTERM; the "
            f"end of its output ({service.log}):\n{tail(service.log)}")
    return status_of(code)


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/harness", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="what", required=True)
    commands.add_parser("build")
    run = commands.add_parser("serve")
    run.add_argument("--health", choices=["ready", "live", "none"], default="ready")
    run.add_argument("--within", type=float, default=60.0)
    run.add_argument("--stop-within", type=float, default=30.0)
    run.add_argument("--log")
    run.add_argument("--binary")
    run.add_argument("--no-inherit", action="store_true")
    run.add_argument("variables", nargs="*", metavar="VAR=VALUE")
    argv, command = sys.argv[1:], []
    if "--" in argv:
        argv, command = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = parser.parse_args(argv)
    if bad := [v for v in getattr(args, "variables", []) if "=" not in v]:
        parser.error(f"not VAR=VALUE: {' '.join(bad)}")
    if args.what == "build":
        try:
            print(build())
        except Failure as failure:
            say(str(failure))
            return 1
        return 0
    return serve(args, command)


if __name__ == "__main__":
    sys.exit(main())
