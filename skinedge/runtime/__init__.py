"""The lean runtime: segmentation → masking/composite → 4× SR without torch.

Only NumPy (and ONNX Runtime / TensorRT / cuda-python where present) may be
imported here: this package is what runs inside the device.
"""
