"""`fnn tune`: search hidden width, l2 and learning rate on the dev split (a grid or random
points, each with one or more seeds, on local processes or a Dask cluster), draw the heat map,
refit the best point, test it once."""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from fnn import tune
from fnn.cli import flags, runs
from fnn.data import Dataset
from fnn.errors import UserError
from fnn.files import staged_folder
from fnn.text import count

HIDDENS = ((64,), (110,), (128,))
L2S = (0.0, 0.1, 1.0)
CONNECT_TIMEOUT_S = 5  # how long --scheduler waits for the scheduler's handshake, then for a first worker
SCHEMES = ("", "tcp", "tls", "ws", "wss", "ucx")  # Dask's protocols; none means tcp
SAMPLING_STREAM = 1  # --samples draws from SeedSequence([--seed, 1]), apart from the split's stream


def add_parser(commands, common) -> None:
    parser = commands.add_parser(
        "tune",
        parents=[flags.data_flags(), flags.training_flags(search=True), common],
        formatter_class=flags.Formatter,
        help="grid-search hidden width, l2 and learning rate on the dev split",
        description=(
            "Train one network per point of the grid --hiddens x --l2s x --lrs (or of --samples "
            "random points), each with --repeats seeds, in parallel over --workers processes or "
            "the workers of a Dask --scheduler; score each on the dev split, write tune.csv (one "
            "row per point: mean and standard deviation of dev accuracy, the seeds) and "
            "tune_heatmap.png (mean dev accuracy over hidden x l2), then retrain the best point "
            "(best mean) on the train split (train + dev with --refit-on-dev), save it as "
            "model.npz and report its test accuracy once. The search never sees the test split. "
            "A point's seeds derive from --seed and the point's configuration, so a point scores "
            "the same in any grid. Grid values are separated by spaces; commas inside one "
            "--hiddens value make a deeper network: '--hiddens 64 128 256,128'."
        ),
    )
    parser.add_argument(
        "--hiddens", type=flags.int_list, nargs="+", metavar="N[,N...]",
        help=f"hidden layer widths to try (default: {' '.join(map(flags.format_sizes, HIDDENS))})",
    )
    parser.add_argument(
        "--l2s", type=flags.float_list, nargs="+", metavar="L2",
        help=f"L2 strengths to try, spaces or commas (default: {' '.join(f'{v:g}' for v in L2S)})",
    )
    parser.add_argument(
        "--lrs", type=flags.positive_float_list, nargs="+", metavar="LR",
        help=f"learning rates to try, spaces or commas (default: {flags.DEFAULTS.lr:g})",
    )
    parser.add_argument(
        "--samples", type=flags.positive_int, default=None, metavar="N",
        help="train N random points instead of the whole grid: hidden drawn from --hiddens, lr and "
        "l2 log-uniform between the smallest and largest of --lrs and --l2s (a 0 among --l2s is "
        "drawn for half the points); duplicates are trained once",
    )
    parser.add_argument(
        "--repeats", type=flags.positive_int, default=1, metavar="K",
        help="seeds per point: the table shows the mean and standard deviation of dev accuracy, "
        "and the best point is the best mean",
    )
    parser.add_argument(
        "--workers", type=flags.positive_int, default=min(2, os.cpu_count() or 1),
        help="parallel training processes, each using one BLAS thread (ignored with --scheduler)",
    )
    parser.add_argument(
        "--scheduler", type=scheduler_address, default=None, metavar="tcp://HOST:PORT",
        help="run the points on the workers of this Dask distributed scheduler instead of local "
        "processes (needs 'pip install fnn[dask]' here and fnn on every worker)",
    )
    parser.add_argument(
        "--refit-on-dev", action="store_true",
        help="retrain the best point on train + dev instead of train alone",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/tune-<timestamp>/)")
    parser.set_defaults(run=run)


def scheduler_address(text: str) -> str:
    """A Dask scheduler's address, [PROTOCOL://]HOST:PORT, as 'dask scheduler' prints it."""
    scheme, _, rest = text.rpartition("://")
    host, _, port = rest.rpartition(":")
    if scheme not in SCHEMES or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"expected a Dask scheduler address such as tcp://10.0.0.5:8786 (protocol one of "
            f"{', '.join(filter(None, SCHEMES))}), got {text!r}"
        )
    return text


def _display_hidden(results: pd.DataFrame) -> pd.DataFrame:
    """hidden as 128 (one hidden layer everywhere) or '256,128' text, for tables and the heatmap."""
    hidden = results["hidden"]
    if all(len(h) == 1 for h in hidden):
        return results.assign(hidden=[h[0] for h in hidden])
    return results.assign(hidden=[flags.format_sizes(h) for h in hidden])


def _points(args) -> list[dict]:
    """The grid of --hiddens x --l2s x --lrs, or --samples random points of the space they span."""
    hiddens = list(dict.fromkeys(args.hiddens or HIDDENS))
    l2s = list(dict.fromkeys(v for values in (args.l2s or [L2S]) for v in values))
    lrs = list(dict.fromkeys(v for values in (args.lrs or [(flags.DEFAULTS.lr,)]) for v in values))
    if args.samples is None:
        return tune.grid_points({"hidden": hiddens, "l2": l2s, "lr": lrs})
    space = {"hidden": hiddens, "l2": tune.log_uniform_between(l2s), "lr": tune.log_uniform_between(lrs)}
    return tune.sample_points(np.random.default_rng([args.seed, SAMPLING_STREAM]), space, args.samples)


def connect(address: str):
    """A `distributed.Client` of the scheduler at `address` with at least one worker, or a
    one-line UserError saying what to install or start.

    Dask's client trusts what answers: a port that accepts and stays silent (or a web server,
    which waits for a request) holds it past any timeout, and garbage or a TLS address without
    TLS settings end in a traceback. So the address first has to pass `_handshake` within
    CONNECT_TIMEOUT_S; only a peer that spoke Dask's handshake gets a Client.
    """
    try:
        from distributed import Client
    except ImportError:
        raise flags.FlagError(
            "--scheduler needs the 'distributed' package: pip install 'fnn[dask]' (or distributed), "
            "or leave --scheduler out to tune on local processes"
        ) from None
    fix = f"start a scheduler with 'dask scheduler' and its workers with 'dask worker {address}', or fix the address"
    # distributed logs each failed attempt to connect; the error below says it in one line
    with _quiet("distributed"), _quiet("tornado"):
        reason = _handshake(address)
        if reason is not None:
            raise UserError(f"--scheduler {address}: {reason}; {fix}")
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except Exception as error:  # noqa: BLE001 - a peer that passed the handshake but is no scheduler
            raise UserError(f"--scheduler {address}: {_first_line(error)}; {fix}") from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError):
        client.close()
        raise UserError(
            f"--scheduler {address}: the scheduler has no workers after {CONNECT_TIMEOUT_S} s; "
            f"start some with 'dask worker {address}'"
        ) from None
    client.run(tune.limit_blas_threads, 1)  # as the local pool does: the same sums, the same table
    return client


def _handshake(address: str) -> str | None:
    """Open one connection to `address` and exchange Dask's handshake with it, all within
    CONNECT_TIMEOUT_S (a deadline over the whole exchange: Dask's own timeout covers only the
    connect). None when a Dask peer answered; otherwise why not, in words for the error line.

    Whatever answers is untrusted, so any exception from the exchange means "not a Dask
    scheduler" (random bytes fail inside Dask's frame reader, a web server's reply inside the
    WebSocket client); Ctrl-C and SIGTERM are not Exceptions and still stop the command.
    """
    import asyncio

    from distributed.comm import connect as open_comm
    from distributed.security import Security

    async def exchange():
        comm = await open_comm(address, timeout=CONNECT_TIMEOUT_S, **Security().get_connection_args("client"))
        await comm.close()

    try:
        asyncio.run(asyncio.wait_for(exchange(), CONNECT_TIMEOUT_S))
    except Exception as error:  # noqa: BLE001 - see the docstring
        text = _first_line(error)
        # TimeoutError: refused or unreachable until the deadline, or accepted and then silence
        # (a bare socket, an HTTP server waiting for a request)
        if isinstance(error, TimeoutError) or text.startswith("Timed out"):
            return f"no Dask scheduler answered within {CONNECT_TIMEOUT_S} s"
        if "ssl_context" in text or "TLS" in text:
            return (
                "a tls:// address needs Dask's TLS settings (distributed.comm.tls.ca-file, "
                ".client.cert and .client.key in the Dask configuration), which are missing or wrong"
            )
        return "what answered there is not a Dask scheduler (its reply was not Dask's handshake)"
    return None


def _first_line(error: BaseException) -> str:
    """An exception's first line without its final full stop, or its type's name when empty."""
    text = str(error).strip()
    return text.splitlines()[0].rstrip(".") if text else type(error).__name__


@contextlib.contextmanager
def _quiet(logger: str):
    """Only CRITICAL records from `logger` (and its children) while the block runs."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


@contextlib.contextmanager
def _executor(args):
    """(executor, where it runs, in words) for --scheduler or --workers; on leaving, runs not yet
    started are cancelled (after a failure or Ctrl-C) and the pool or the client is closed."""
    if args.scheduler is None:
        pool = tune.worker_pool(args.workers)
        try:
            yield pool, count(args.workers, "worker")
        except BaseException:
            _stop_workers()  # their runs are discarded: do not wait for them to finish
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return
    client = connect(args.scheduler)
    executor = client.get_executor()
    try:
        workers = len(client.scheduler_info()["workers"])
        yield ScatteredData(client, executor), f"Dask scheduler {args.scheduler} ({count(workers, 'worker')})"
    finally:
        executor.shutdown(wait=False)  # cancels what is still pending on the cluster
        client.close()


def _stop_workers(grace_s: float = 2.0) -> None:
    """End this process's tune workers now (after Ctrl-C, SIGTERM or an error), so that closing
    the pool never waits for a run in progress: SIGTERM to each, then SIGKILL to any still
    alive after `grace_s`; all are reaped. A worker already gone (SIGTERM to the whole process
    group reached it too) is only reaped."""
    workers = [child for child in multiprocessing.active_children() if isinstance(child, tune.Worker)]
    for worker in workers:
        worker.terminate()
    deadline = time.monotonic() + grace_s
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()
            worker.join()


class ScatteredData(Executor):
    """A Dask client's executor that ships each Dataset argument to the workers once.

    `tune.search` submits every run with the train and dev sets; sent with each task, MNIST's
    180 MB would cross the scheduler once per run. Here the first submit scatters each Dataset
    to every worker and later ones pass the Dask future, which the workers resolve locally.
    """

    def __init__(self, client, executor: Executor):
        self._client, self._executor, self._scattered = client, executor, {}

    def submit(self, fn, /, *args, **kwargs):
        return self._executor.submit(fn, *(self._shipped(arg) for arg in args), **kwargs)

    def _shipped(self, arg):
        if not isinstance(arg, Dataset):
            return arg
        if id(arg) not in self._scattered:  # the Dataset is kept too, so its id stays its own
            self._scattered[id(arg)] = (arg, self._client.scatter(arg, broadcast=True, hash=False))
        return self._scattered[id(arg)][1]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)


def _shown(results: pd.DataFrame) -> pd.DataFrame:
    """results for tune.csv and the screen: hidden as 128 or '256,128', the seeds as '12 34'."""
    return _display_hidden(results).assign(seeds=[" ".join(map(str, seeds)) for seeds in results["seeds"]])


def run(args) -> int:
    points = _points(args)
    first = points[0]
    base = flags.config(args, hidden=first["hidden"], l2=first["l2"], lr=first["lr"])
    for hidden in {tuple(point["hidden"]) for point in points}:
        flags.check_fits_in_memory(hidden, "tune", budget=args.max_memory)
    out = args.out or runs.default_out("tune-")
    n_runs = len(points) * args.repeats
    record = flags.data_record(args)
    with staged_folder(out) as folder:
        with _executor(args) as (executor, where):  # connect before loading data: fail fast
            splits = runs.load_splits(**record, progress=args.progress)
            runs.check_conv_fits(base, splits.train.X.shape[1], "tune")
            if not len(splits.dev.X):
                raise flags.FlagError("tune scores each grid point on the dev split, which is empty; pass --dev > 0")
            print(
                f"data {args.data}: {len(splits.train.X)} train / {len(splits.dev.X)} dev rows; "
                f"{len(points)} {'random' if args.samples else 'grid'} points x {count(args.repeats, 'seed')} "
                f"on {where}, {count(base.epochs, 'epoch')} each{runs.augment_note(base)}"
            )
            bar = tqdm(
                total=n_runs, desc="tune", unit="run", disable=not runs.show_progress(args.progress), file=sys.stderr
            )
            try:
                results = tune.search(
                    args.seed, points, splits, base=base, repeats=args.repeats, executor=executor,
                    on_result=lambda row: bar.update(),
                )
            finally:
                bar.close()
        best = tune.best_config(results, base)  # first: it says what to do if every run diverged
        winner = tune.best_row(results)
        shown = _shown(results)
        runs.write_csv(folder / "tune.csv", shown)
        from fnn import plots  # matplotlib loads only when figures are drawn

        plots.save_figure(plots.tuning_heatmap(shown, data=str(args.data)), folder / "tune_heatmap.png")
        refit = runs.train_and_save(best, splits, folder, record, progress=args.progress, on_dev=args.refit_on_dev)
    columns = [c for c in shown.columns if c != "seeds" and not (c == "dev_acc_std" and args.repeats == 1)]
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(shown[columns].to_string(
            index=False, float_format=lambda v: f"{v:.4f}", formatters={"l2": "{:g}".format, "lr": "{:g}".format}
        ))
    spread = f" (mean of {args.repeats} seeds, std {winner['dev_acc_std']:.4f})" if args.repeats > 1 else ""
    print(
        f"best on dev: hidden {flags.format_sizes(best.hidden)}, l2 {best.l2:g}, lr {best.lr:g}, dev accuracy "
        f"{winner['dev_acc']:.4f}{spread}; refit on {'train + dev' if args.refit_on_dev else 'train'} with seed {best.seed}"
    )
    runs.print_summary(refit.summary, out)
    return 0
