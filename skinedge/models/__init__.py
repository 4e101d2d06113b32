"""The two networks of SkinSegmentSRGAN (PyTorch), their checkpoints, and loading them back.

``unet.py``: the lesion segmenter (smp U-Net, EfficientNet-B3 encoder).
``srgan.py``: the 4× SR generator, its discriminator and the VGG19 content loss.
``checkpoint.py``: the checkpoint file format; ``shapes.py``: the shape record of a pruned network;
``load.py``: rebuild a network from its checkpoint (what export, eval and the torch backend load).
Nothing in ``skinedge.runtime`` imports this package at import time (the torch backend loads
checkpoints through ``load.py`` when a runner activates).
"""
