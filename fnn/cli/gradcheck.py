"""`fnn gradcheck`: backprop against central differences on a small random network."""

from __future__ import annotations

import numpy as np

from fnn import gradcheck
from fnn.cli import flags

TOLERANCE = 1e-6


def add_parser(commands, common) -> None:
    parser = commands.add_parser(
        "gradcheck",
        parents=[common],
        formatter_class=flags.Formatter,
        help="compare backprop's gradients with central differences",
        description=(
            "Build a small random float64 network, compute the gradient of the loss by backprop "
            "and by central differences, and print their relative error for each parameter "
            f"(W1, b1, W2, ...). PASS when every error is below {TOLERANCE:g}; "
            "exit status 1 on FAIL."
        ),
    )
    parser.add_argument(
        "--sizes", type=flags.int_list, default="20,10,5", metavar="N,...",
        help="layer widths n_0,...,n_L: inputs, hidden layers, classes",
    )
    parser.add_argument("--batch", type=flags.positive_int, default=8, help="rows in the random batch")
    parser.add_argument("--l2", type=flags.nonnegative_float, default=0.1, help="L2 strength")
    parser.add_argument("--seed", type=flags.seed, default=0, help="seed of the random network and batch")
    flags.add_architecture_flags(parser, "relu", 0.0)
    parser.set_defaults(run=run)


def run(args) -> int:
    """Print each parameter's relative error and PASS/FAIL; 0 on PASS, 1 on FAIL."""
    if len(args.sizes) < 2:
        raise flags.FlagError(
            f"--sizes needs at least an input and an output width, got {flags.format_sizes(args.sizes)}"
        )
    try:
        errors = gradcheck.check_random_network(
            np.random.default_rng(args.seed), args.sizes, args.batch, args.l2,
            activation=args.activation, dropout=args.dropout, conv=args.conv, kernel=args.kernel,
        )
    except ValueError as error:  # sizes and --conv that make no network, or no batch clear of kinks
        raise flags.FlagError(f"{error}; see 'fnn gradcheck --help'") from None
    conv = f"conv {flags.format_sizes(args.conv)} ({args.kernel}x{args.kernel}), " if args.conv else ""
    print(
        f"gradient check: {conv}sizes {flags.format_sizes(args.sizes)} {args.activation}, dropout {args.dropout:g}, "
        f"batch {args.batch}, l2 {args.l2:g}, seed {args.seed}, float64"
    )
    print(f"{'param':<6} {'relative error':>15}")
    for name, error in errors:
        print(f"{name:<6} {error:>15.3e}")
    passed = all(error < TOLERANCE for _, error in errors)
    worst = max(error for _, error in errors)
    print(f"{'PASS' if passed else 'FAIL'}: largest relative error {worst:.3e} (tolerance {TOLERANCE:g})")
    return 0 if passed else 1
