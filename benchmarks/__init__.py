"""fnn's benchmarks in asv's shape: `asv run --python=same --quick`, or `python -m benchmarks`.

asv puts only this package on the import path, so when fnn is not installed the checkout
this package sits in supplies it: the benchmarks then time the working tree, which is what
`--python=same` asks for.
"""

import os
import sys

try:
    import fnn  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
