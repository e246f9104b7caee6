"""`fnn serve`: draw a digit in the browser and watch the network answer (see `fnn.serve`)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from fnn.cli import flags
from fnn.io import load_model
from fnn.serve import make_server, url


def add_parser(commands, common) -> None:
    parser = commands.add_parser(
        "serve",
        parents=[common],
        formatter_class=flags.Formatter,
        help="serve a page to draw digits on, and a JSON API, for a saved model",
        description=(
            "Load --model and serve, until Ctrl-C or SIGTERM, a page with a drawing canvas that "
            "shows the network's answer, its class probabilities and the 28x28 image it received, "
            "and the JSON API behind it: GET /api/model, POST /api/predict (see README). Binds "
            "loopback only unless --host says otherwise. Exits 130 on Ctrl-C, 143 on SIGTERM."
        ),
    )
    parser.add_argument("--model", required=True, help="a model.npz written by fnn train or fnn tune")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; another than loopback exposes the model to the network")
    parser.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one")
    parser.add_argument("--log-requests", action="store_true", help="log every request on stderr")
    parser.set_defaults(run=run)


def run(args) -> int:
    return serve(args.model, args.host, args.port, log_requests=args.log_requests)


def _print_now(line: str) -> None:
    print(line, flush=True)


STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


def serve(
    model_path: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    out: Callable[[str], object] = _print_now,
    log_requests: bool = False,
) -> int:
    """`fnn serve`: load the model, print the URL, serve until SIGINT or SIGTERM.

    Returns the exit status 128 + the signal's number (130 for SIGINT, 143 for SIGTERM) after
    printing one line. Must be called from the main thread (it installs handlers for the two
    signals, and restores the previous ones before returning). Raises ModelFileError for a bad
    model file and UserError for an address that cannot be bound, before serving.
    """
    params, metadata = load_model(model_path)
    server = make_server(params, metadata, host, port, log_requests)
    received: list[int] = []

    def stop(signum, frame):
        if not received:
            received.append(signum)
            # shutdown() waits for serve_forever() to return, which runs on this (the main)
            # thread, so it must be called from another one
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        names = ", ".join(server.app.class_names[:10]) + (", ..." if len(server.app.class_names) > 10 else "")
        out(f"serving {model_path} ({len(server.app.class_names)} classes: {names}) at {url(server)} (Ctrl-C to stop)")
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    signum = received[0] if received else signal.SIGINT
    out(f"fnn serve: stopped ({STOP_SIGNALS[signum]})")
    return 128 + int(signum)
