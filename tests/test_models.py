"""The two networks as the paper describes them, and their weight loading (local files only)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skinedge.errors import MissingWeights, SkinedgeError
from skinedge.models.srgan import Discriminator, Generator, ResidualBlock, VGGContent
from skinedge.models.unet import build_segmenter


def test_generator_follows_the_paper_and_is_fully_convolutional():
    g = Generator()
    assert len([m for m in g.trunk if isinstance(m, ResidualBlock)]) == 16
    assert g.head[0].kernel_size == (9, 9) and g.tail.kernel_size == (9, 9)
    assert sum(isinstance(m, nn.PixelShuffle) for m in g.modules()) == 2
    assert 1.5e6 < sum(p.numel() for p in g.parameters()) < 1.6e6  # SRResNet's ~1.55 M
    g.eval()
    for h, w in ((16, 16), (23, 37)):
        assert g(torch.rand(1, 3, h, w)).shape == (1, 3, 4 * h, 4 * w)


def test_bicubic_skip_is_an_option_that_adds_bicubic():
    g = Generator(blocks=1, features=8, bicubic_skip=True).eval()
    nn.init.zeros_(g.tail.weight)
    nn.init.zeros_(g.tail.bias)
    x = torch.rand(1, 3, 8, 8)
    expected = nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(g(x), expected, atol=1e-6)
    assert Generator().bicubic_skip is False  # not in the paper: off by default


def test_discriminator_has_eight_convs_and_one_logit_per_image():
    d = Discriminator()
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8 and [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert d(torch.rand(2, 3, 96, 96)).shape == (2,) and d(torch.rand(2, 3, 256, 256)).shape == (2,)


def test_vgg_content_from_a_local_file(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    with pytest.raises(MissingWeights, match="VGG19 weights not found"):
        VGGContent(tmp_path / "none.pth")
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), tmp_path / "vgg19.pth")
    vgg = VGGContent(tmp_path / "vgg19.pth")
    out = vgg(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 256, 16, 16) and (out >= 0).all()  # block3_conv3 after ReLU
    assert not any(p.requires_grad for p in vgg.parameters())
    torch.save({"foo": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(MissingWeights, match="not a VGG19 state dict"):
        VGGContent(tmp_path / "wrong.pth")


def test_segmenter_has_dropout_in_both_paths_and_outputs_logits():
    model = build_segmenter("resnet18", dropout=0.3).eval()
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout2d)]
    assert len(drops) == 1 + 5 and all(d.p == 0.3 for d in drops)  # encoder skips + 5 decoder blocks
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.decoder.modules())
    out = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 1, 64, 64) and out.min() < 0  # logits, no sigmoid inside


def test_encoder_weights_imagenet_offline_and_from_a_file(tmp_path):
    with pytest.raises(MissingWeights, match="cannot be downloaded here.*--encoder-weights PATH"):
        build_segmenter("resnet18", encoder_weights="imagenet")
    donor = build_segmenter("resnet18")
    torch.save(donor.encoder.encoder.state_dict(), tmp_path / "enc.pth")
    model = build_segmenter("resnet18", encoder_weights=str(tmp_path / "enc.pth"))
    for key, value in donor.encoder.encoder.state_dict().items():
        assert torch.equal(model.encoder.encoder.state_dict()[key], value)
    (tmp_path / "bad.pth").write_text("garbage")
    with pytest.raises(MissingWeights, match="not a torch state dict"):
        build_segmenter("resnet18", encoder_weights=str(tmp_path / "bad.pth"))
    with pytest.raises(SkinedgeError, match="unknown encoder 'nonet'"):
        build_segmenter("nonet")


def test_batchnorm_recalibration_fixes_eval_mode_statistics():
    from skinedge.train.batchnorm import recalibrate_batchnorm

    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, momentum=0.01), nn.Dropout2d(0.5))
    data = [torch.randn(8, 3, 4, 4) * 3 + 5 for _ in range(10)]
    recalibrate_batchnorm(model, data)
    with torch.no_grad():
        features = torch.cat([model[0](x) for x in data])
    bn = model[1]
    assert torch.allclose(bn.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-4)
    assert bn.momentum == 0.01 and model.training
