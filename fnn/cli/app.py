"""The `fnn` command's body: the parser, the commands, and how a run ends (see `fnn.cli`).

A failure the user can act on — a bad flag (`FlagError`), a data file (`DataError`), a model
file (`ModelFileError`), a diverging run, a file system problem (`OSError`) — ends with ONE line
on stderr, `fnn: error: <what was wrong>; <what to do>`, and exit status 2; the traceback only
with `--debug`. Any other exception is a bug in fnn and shows its traceback. Ctrl-C exits 130
and SIGTERM 143, each after one line; a second signal while the first one's cleanup runs is
ignored, so the cleanup finishes. A closed output pipe (`fnn evaluate ... | head`) ends quietly
with 141, as a shell's own commands do. Output folders are built under a temporary name and
renamed into place at the end, so a failed or interrupted command leaves nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback

from fnn.allocator import keep_freed_memory
from fnn.cli import evaluate, flags, gradcheck, predict, serve, train, tune
from fnn.errors import DataError, ModelFileError, TrainingDiverged, UserError
from fnn.files import DiskFull, NotAFolder
from fnn.version import __version__

COMMANDS = (train, tune, evaluate, predict, gradcheck, serve)
SIGPIPE_STATUS = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away


def build_parser() -> flags.Parser:
    """The `fnn` parser: one subcommand per module of COMMANDS."""
    parser = flags.Parser(
        prog="fnn",
        description="A from-scratch NumPy neural network for MNIST-style 28x28 digits.",
        epilog="Run 'fnn <command> --help' for the flags of each command.",
    )
    parser.add_argument("--version", action="version", version=f"fnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    common = flags.common_flags()
    for command in COMMANDS:
        command.add_parser(commands, common)
    return parser


def _hint(error: BaseException, command: str) -> str | None:
    """What to do about an error a user can cause, by its type; None when the message says it."""
    if isinstance(error, (ModelFileError, FileExistsError, flags.FlagError, DiskFull, NotAFolder)):
        return None  # their messages end with the fix
    if isinstance(error, DataError):
        return f"check --data, and --layout for a CSV (see 'fnn {command} --help')"
    if isinstance(error, TrainingDiverged):
        return "lower --lr (or raise --l2) and run again"
    if isinstance(error, FileNotFoundError):
        return "check the path"
    if isinstance(error, PermissionError):
        return "check the permissions or choose another --out"
    if isinstance(error, OSError):
        return "check the disk and the paths"
    return None


def _blas_threads(n: int | None):
    """A context that limits this process's BLAS to n threads (through threadpoolctl); None: as is."""
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `timeout`, `kill` and containers send), raised where the program is, so it
    unwinds exactly as Ctrl-C does: no half-written output, one line, status 143."""

    signum = signal.SIGTERM


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_as_interrupt():
    """For the command's run (main thread only): the first SIGINT raises KeyboardInterrupt and
    the first SIGTERM `Terminated`, where the program is; any signal after that is ignored
    while the first one unwinds, so the cleanup it starts (a staging folder removed, a
    checkpoint written, workers stopped) is never cut short — a second Ctrl-C, or `timeout`'s
    SIGTERM reaching a process that is already stopping, changes nothing."""
    received: list[int] = []

    def stop(signum, frame):
        if received:
            return
        received.append(signum)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _quiet_broken_pipe() -> int:
    """The reader of stdout went away: point stdout at /dev/null so the interpreter's final
    flush cannot fail again, and report the status a shell gives a writer killed by SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return SIGPIPE_STATUS


def main(argv: list[str] | None = None) -> int:
    """Run `fnn` with `argv` (default: sys.argv[1:]) and return the exit status.

    0 success, 1 a failed check (gradcheck FAIL), 2 a usage or input error, 130 Ctrl-C,
    141 a closed output pipe, 143 SIGTERM.
    """
    parser = build_parser()
    keep_freed_memory()  # the program's edge: malloc keeps a training step's freed pages (fnn/allocator.py)
    try:
        args = parser.parse_args(argv)
    except flags.FlagError as error:
        print(f"fnn: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as done:  # --help prints and exits 0
        return int(done.code or 0)
    cores = os.cpu_count() or 1
    if args.threads is not None and args.threads > cores:
        print(f"fnn: error: --threads {args.threads} is more than this machine's {cores} cores; "
              f"pass at most {cores}", file=sys.stderr)
        return 2
    with _signals_as_interrupt():  # until the last line is printed: a second signal cuts nothing short
        return _run(args)


def _run(args) -> int:
    """args.run(args), and the one line and exit status for each way it can end (see `main`)."""
    try:
        with _blas_threads(args.threads):
            status = args.run(args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handler below
            return status
    except KeyboardInterrupt as stop:
        message = getattr(stop, "message", "interrupted; no output was written")
        print(f"fnn: {message}", file=sys.stderr)
        return 128 + int(getattr(stop, "signum", signal.SIGINT))
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except (UserError, OSError) as error:
        if args.debug:
            traceback.print_exc()
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        hint = _hint(error, args.command)
        print(f"fnn: error: {message.rstrip('.')}; {hint}" if hint else f"fnn: error: {message}", file=sys.stderr)
        return 2
