"""The frame's path on the host (DESIGN.md §1), every pixel stage a NumPy function.

- :mod:`.host`: :class:`~.host.Pipeline`, one frame in ~25 lines: preprocess → seg → mask → SR → projection →
  composite; :class:`~.host.FrameResult` is what every pipeline returns;
- :mod:`.reference`: the NumPy references of the CUDA kernels (preprocess, SR input, composite), the one truth
  both paths are tested against;
- :mod:`.mask`: logits → the lesion mask, its ROI and its feathered blend mask;
- :mod:`.tiling`: SR of a large ROI in overlapping tiles, feathered together;
- :mod:`.projection`: the data-consistency projection (down(SR) = LR) and the consistency residual.

The GPU twin of this package is :mod:`skinedge.runtime.gpu`.
"""
