"""skinedge: find the skin lesion, show it sharper, in real time.

The package is split so that a device install stays lean: ``skinedge.runtime``
never imports torch; training, evaluation and export live beside it.
"""

__version__ = "0.1.0"
