"""The `fnn` command: train, tune, evaluate, predict, gradcheck and serve from a shell.

This is one of fnn's two edges (with scripts/): flags, prints, progress bars, clocks and files
live here, one module per command (`fnn/cli/<command>.py`, each with its `add_parser` and its
`run`); everything they compute comes from the library. `fnn.cli.app` holds the parser and how
a run ends: one line and exit status 2 for an error the user can act on, 130 for Ctrl-C, 143
for SIGTERM.

This module itself imports only the standard library, so that `main` can take SIGINT and
SIGTERM before anything slow happens: the commands import numpy, pandas and matplotlib, half a
second in which a signal would otherwise kill the program without a word. A signal then ends it
with one line and 130 or 143; nothing has been written yet.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

APP_NAMES = ("build_parser", "Terminated", "COMMANDS", "SIGPIPE_STATUS")  # fnn.cli.app's, read through fnn.cli
STARTING_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}


def main(argv: list[str] | None = None) -> int:
    """Run `fnn` with `argv` (default: sys.argv[1:]) and return the exit status (see
    `fnn.cli.app.main`). Call it from the main thread; the signal handlers it installs are
    restored when it returns."""
    previous = {signum: signal.signal(signum, _stop_while_starting) for signum in STARTING_SIGNALS}
    status = None
    try:
        from fnn.cli import app  # the commands and their imports: numpy, pandas, matplotlib

        status = app.main(argv)
        return status
    finally:
        # argv None: this process is the `fnn` program, and after a stop it is about to exit;
        # a later signal must not cut the interpreter's own cleanup (joining the pipes of tune's
        # workers) short and turn the status printed for into a kill
        stopping = argv is None and status in {128 + int(signum) for signum in STARTING_SIGNALS}
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if stopping else handler)


def _stop_while_starting(signum, frame):
    """Before a command runs nothing has been written, so nothing needs undoing: say so and
    exit at once (os._exit: the imports under way are not unwound)."""
    sys.stderr.flush()
    os.write(2, f"fnn: {STARTING_SIGNALS[signum]} while starting; nothing was written\n".encode())
    os._exit(128 + signum)


def __getattr__(name: str):
    """`fnn.cli.build_parser`, `fnn.cli.Terminated`, ...: names of `fnn.cli.app` (PEP 562)."""
    if name in APP_NAMES:
        return getattr(importlib.import_module("fnn.cli.app"), name)
    raise AttributeError(f"module 'fnn.cli' has no attribute {name!r}")
