"""Training of the segmenter and the SR generator (PyTorch; not used by the runtime)."""
