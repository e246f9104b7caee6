"""The `fnn` command: train, tune, evaluate, predict and gradcheck from a shell.

This is one of fnn's two edges (with scripts/): flags, prints, progress bars, clocks and files
live here; everything it computes comes from the library's pure functions.

Every failure a user can cause (a bad flag, a missing or malformed file, a diverging run) ends
with ONE line on stderr, `fnn: error: <what was wrong>; <what to do>`, and exit status 2; the
traceback only with `--debug`. Ctrl-C exits 130. Output folders are built under a temporary
name and renamed into place at the end, so a failed or interrupted command leaves nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from fnn.gradcheck import check_grads

GRADCHECK_TOLERANCE = 1e-6


class UsageError(Exception):
    """A command line argparse rejected; main() prints it as one line and exits 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line raises UsageError instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{message}; see '{self.prog} --help'")


# ---------------------------------------------------------------- flag value types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    """'256,128' -> (256, 128): layer widths, each a whole number >= 1."""
    try:
        return tuple(_positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers >= 1 such as 128 or 256,128, got {text!r}"
        ) from None


def _split_size(text: str) -> int | float:
    """A row count ('500') or a fraction of the data ('0.1'), as `fnn.data.split` takes it."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a row count such as 500 or a fraction such as 0.1, got {text!r}"
        ) from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a fraction must lie strictly between 0 and 1, got {text!r}")
    return value


def _format_sizes(sizes) -> str:
    return ",".join(str(n) for n in sizes)


# ---------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    """The `fnn` parser: one subcommand each for train, tune, evaluate, predict and gradcheck."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show progress bars on stderr",
    )
    common.add_argument(
        "--debug", action="store_true", help="on an error, print the full traceback too"
    )

    parser = _Parser(
        prog="fnn",
        description="A from-scratch NumPy neural network for MNIST-style 28x28 digits.",
        epilog="Run 'fnn <command> --help' for the flags of each command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)

    gradcheck = commands.add_parser(
        "gradcheck",
        parents=[common],
        help="compare backprop's gradients with central differences",
        description=(
            "Build a small random float64 network, compute the gradient of the loss by backprop "
            "and by central differences, and print their relative error for each parameter "
            f"(W1, b1, W2, ...). PASS when every error is below {GRADCHECK_TOLERANCE:g}; "
            "exit status 1 on FAIL."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    gradcheck.add_argument(
        "--sizes", type=_int_list, default="20,10,5", metavar="N,...",
        help="layer widths n_0,...,n_L: inputs, hidden layers, classes",
    )
    gradcheck.add_argument("--batch", type=_positive_int, default=8, help="rows in the random batch")
    gradcheck.add_argument("--l2", type=_nonnegative_float, default=0.1, help="L2 strength")
    gradcheck.add_argument("--seed", type=int, default=0, help="seed of the random network and batch")
    gradcheck.set_defaults(run=run_gradcheck)
    return parser


# ---------------------------------------------------------------- output folders


def _default_out(prefix: str = "") -> Path:
    """runs/<prefix><YYYYmmdd-HHMMSS>, the default --out of commands that write a folder."""
    return Path("runs") / f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}"


@contextlib.contextmanager
def staged_folder(final: Path):
    """Yield a fresh hidden folder beside `final`; rename it to `final` when the block succeeds.

    On any exception (Ctrl-C included) the folder and everything in it are removed, and so are
    the parent folders this call created, so a failed command leaves no trace. `final` must not
    exist yet, or be an empty folder.
    """
    final = Path(final)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise FileExistsError(f"output folder {final} already exists and is not empty; pass a new --out")
    created = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a run folder is an ordinary folder
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # innermost first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


# ---------------------------------------------------------------- commands


def run_gradcheck(args) -> int:
    """Print each parameter's relative error and PASS/FAIL; 0 on PASS, 1 on FAIL."""
    if len(args.sizes) < 2:
        raise ValueError(
            f"--sizes needs at least an input and an output width, got {_format_sizes(args.sizes)}"
        )
    errors = check_grads(np.random.default_rng(args.seed), args.sizes, args.batch, args.l2)
    print(
        f"gradient check: sizes {_format_sizes(args.sizes)}, batch {args.batch}, "
        f"l2 {args.l2:g}, seed {args.seed}, float64"
    )
    print(f"{'param':<6} {'relative error':>15}")
    for name, error in errors:
        print(f"{name:<6} {error:>15.3e}")
    passed = all(error < GRADCHECK_TOLERANCE for _, error in errors)
    worst = max(error for _, error in errors)
    print(f"{'PASS' if passed else 'FAIL'}: largest relative error {worst:.3e} (tolerance {GRADCHECK_TOLERANCE:g})")
    return 0 if passed else 1


# ---------------------------------------------------------------- errors and exit status


def _hint(error: BaseException) -> str:
    """What to do about an error a user can cause, by its type."""
    if isinstance(error, FileNotFoundError):
        return "check the path"
    if isinstance(error, PermissionError):
        return "check the file's permissions or choose another --out"
    if isinstance(error, OSError):
        return "check the disk and the paths"
    return "fix the input named above and run again (see 'fnn <command> --help')"


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean bad input rather than a bug in fnn."""
    return (ValueError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Run `fnn` with `argv` (default: sys.argv[1:]) and return the exit status.

    0 success, 1 a failed check (gradcheck FAIL), 2 a usage or input error, 130 Ctrl-C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(f"fnn: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as done:  # --help prints and exits 0
        return int(done.code or 0)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("fnn: interrupted; no output was written", file=sys.stderr)
        return 130
    except _user_errors() as error:
        if args.debug:
            traceback.print_exc()
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"fnn: error: {message}; {_hint(error)}", file=sys.stderr)
        return 2
