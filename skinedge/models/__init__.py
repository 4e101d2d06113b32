"""The two networks of SkinSegmentSRGAN (PyTorch; training side only).

``unet.py``: the lesion segmenter (smp U-Net, EfficientNet-B3 encoder).
``srgan.py``: the 4× SR generator, its discriminator and the VGG19 content loss.
Nothing in ``skinedge.runtime`` imports this package.
"""
