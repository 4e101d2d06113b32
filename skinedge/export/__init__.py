"""From checkpoints to deployable ONNX files: export, pruning, FP16/INT8 variants, gates.

Precision lives in the ONNX file (DESIGN.md §3): every variant is made and
accuracy-checked here on the CPU with ONNX Runtime before a GPU sees it.
"""
