"""Errors that are the user's to fix.

The CLI prints these as one line on stderr and exits non-zero; anything else is
a bug and keeps its traceback.
"""


class SkinedgeError(Exception):
    """A user mistake or bad input, with a message that says how to fix it."""

    exit_code = 1


class DataError(SkinedgeError):
    """A dataset, image or mask that cannot be used as it is."""


class MissingWeights(SkinedgeError):
    """Pretrained weights that cannot be downloaded here and were not supplied."""
