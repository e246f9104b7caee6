"""Model files that never pickle: saving and loading.

A model file is ONE `.npz` (a zip of `.npy` arrays). Format version 2 holds

    layers.{j}.{f}     array field f of layer j (0-based position in the stack), e.g.
                       layers.0.W: (n_0, n_1), layers.0.b: (n_1,), layers.2.W, ...; all
                       float32 or all float64, finite
    metadata.json      a 0-d unicode array: the JSON text of the metadata dict, whose "layers"
                       lists the stack in order, one {"type": class name, **static fields} per
                       layer: [{"type": "Dense"}, {"type": "LeakyRelu", "alpha": 0.01}, ...]

A layer's array fields (its attrs fields not made with `fnn.tree.static`) are its npz entries and
its static fields are its JSON settings, passed back to the class as keyword arguments on loading
(a tuple comes back as a list). So any frozen attrs layer, the user's own too, has one unambiguous
file form. The metadata also carries `layer_sizes` (input width, then the width of each Dense
layer), `dtype` and `class_names`.

Version 1 (fnn before layers were records) held W1, b1, ..., WL, bL and no "layers": it meant
Dense, Relu, Dense, Relu, ..., Dense, and `load_model` still rebuilds exactly that.

Nothing in a file needs pickle, and `load_model` never uses numpy's `.npy` reader: it reads the
zip itself and bounds its work by what the format promises before allocating. Members must be
distinct, unencrypted, stored or deflated `.npy` arrays; metadata.json is read first (at most
`MAX_METADATA_CHARS` characters, nested at most `MAX_JSON_DEPTH` deep); each array's header is
then parsed (numpy's own parser, on at most 10,000 bytes) and compared with the metadata (dtype,
and the shape layer_sizes gives a Dense W and b), with the size its zip member declares, and with
`MAX_MODEL_BYTES` for all arrays together, and only then are its bytes read. Class names must be
printable, 1 to `MAX_CLASS_NAME` characters, one per output, at save and at load. A file that fails
any check raises `ModelFileError` naming the file, what is wrong and what to do; nothing else
escapes `load_model`.

Every file is written through `fnn.files.atomic_path`, so a crash midway leaves the old file
(or no file), never half of one.
"""

from fnn.files import atomic_path
from fnn.io.format import FORMAT_NAME, FORMAT_VERSION, METADATA_KEY, MNIST_PREPROCESSING
from fnn.io.load import load_model
from fnn.io.save import save_model
from fnn.errors import ModelFileError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "METADATA_KEY", "MNIST_PREPROCESSING", "ModelFileError", "atomic_path", "load_model", "save_model"]
