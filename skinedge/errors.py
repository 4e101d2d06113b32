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


def one_line(text: object, limit: int = 300) -> str:
    """``text`` as one printable line of at most ``limit`` characters: for messages that quote what a library or a
    damaged file said (a decoder's error, a DICOM element), which may hold newlines, control bytes or megabytes."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"
