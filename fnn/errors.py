"""The errors a user can act on.

Each is raised with a message that names the file, field or flag, what was expected and what
arrived. The command line prints these as one line and exits 2; any other exception is a bug
in fnn and shows as one (a traceback).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a file, a flag or an argument. The message says what to fix."""


class DataError(UserError, ValueError):
    """A data source that cannot be read as images and labels; the message names the file,
    line and column where it can, and what was expected there."""


class ModelFileError(UserError, ValueError):
    """A model file that cannot be used; the message names the file, the problem and the fix."""


class TrainingDiverged(UserError, ValueError):
    """Training whose loss stopped being finite (a learning rate too large for the data); the
    message names the step and learning rate."""
