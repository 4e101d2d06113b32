"""SRGAN for 4× lesion enhancement (paper §3.3.1, Ledig et al. 2017).

Value ranges: the generator takes RGB in [0, 1] (N×3×h×w; N×4×h×w with the camera plane, below) and returns RGB
in [0, 1] (N×3×4h×4w; no final tanh, values outside are clamped at inference).
The discriminator returns one *logit* per image; its sigmoid is in the loss
(BCE-with-logits), the same math as the paper's sigmoid + log-loss.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from skinedge.errors import MissingWeights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_BLOCK3_CONV3_RELU = 16  # torchvision vgg19.features[:16] ends with relu(conv3_3)


def _norm(features: int, norm: bool) -> nn.Module:
    return nn.BatchNorm2d(features) if norm else nn.Identity()


class ResidualBlock(nn.Module):
    """conv3×3-BN-PReLU-conv3×3-BN plus identity (without the BNs when ``norm`` is off)."""

    def __init__(self, features: int, norm: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1), _norm(features, norm), nn.PReLU(features),
            nn.Conv2d(features, features, 3, padding=1), _norm(features, norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def icnr_(conv: nn.Conv2d, upscale: int = 2) -> None:
    """ICNR initialisation (Aitken et al. 2017, arXiv 1707.02937) of the convolution before a PixelShuffle.

    One kernel is drawn for each of the C_out/r² output groups and repeated r² times, so at initialisation the
    shuffled output is a nearest-neighbour up-sampling: no 2-px checkerboard to unlearn, and none painted over
    flat skin by a short training.
    """
    r2 = upscale * upscale
    with torch.no_grad():  # the layer's own default-initialised kernels, one per group: the usual scale
        conv.weight.copy_(conv.weight[::r2].repeat_interleave(r2, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(conv.bias.view(-1, r2)[:, :1].expand(-1, r2).reshape(-1))


class UpsampleBlock(nn.Module):
    """conv3×3 to 4× channels (ICNR-initialised), pixel shuffle ×2, PReLU."""

    def __init__(self, features: int):
        super().__init__()
        self.conv = nn.Conv2d(features, features * 4, 3, padding=1)
        icnr_(self.conv, 2)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


class Generator(nn.Module):
    """SRResNet/SRGAN generator: 9×9 head + PReLU, ``blocks`` residual blocks,
    conv-BN with the long skip, two ×2 pixel-shuffle blocks, 9×9 reconstruction.

    Args:
        blocks: residual blocks (16 in the paper; the demo uses fewer).
        features: channels of the trunk (64 in the paper).
        scale: 4 (two ×2 up-sampling blocks) or 2 (one).
        bicubic_skip: NOT in the paper; output = bicubic(LR) + G(LR), which
            makes the network learn only the missing detail. Off by default.
        norm: the paper's BatchNorm layers. Off, the trunk is EDSR's (Lim et al. 2017): BN's batch statistics
            of small crops differ from a whole photo's, which costs PSNR and paints artefacts (ESRGAN §3.1).
        zero_tail: start the reconstruction conv at zero, so with ``bicubic_skip`` the untrained network *is*
            bicubic and training only adds; a short CPU run does not first unlearn a random residual.
        camera_plane: NOT in the paper; a 4th input channel, constant over the image: 1 where the LR came
            through a camera (blur, noise, JPEG), 0 for a clean bicubic down-scale. A blind generator trained on
            both must first learn to tell them apart; told which it sees (the non-blind idea of SRMD, Zhang et
            al. 2018) it learns both in about half the steps. The runtime sets it from its noise estimate.
    Fully convolutional: any input size works.
    """

    def __init__(self, blocks: int = 16, features: int = 64, scale: int = 4, bicubic_skip: bool = False,
                 norm: bool = True, zero_tail: bool = False, camera_plane: bool = False):
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        self.scale = scale
        self.bicubic_skip = bicubic_skip
        self.in_channels = 4 if camera_plane else 3
        self.head = nn.Sequential(nn.Conv2d(self.in_channels, features, 9, padding=4), nn.PReLU(features))
        self.trunk = nn.Sequential(*(ResidualBlock(features, norm) for _ in range(blocks)))
        self.trunk_tail = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), _norm(features, norm))
        self.upsample = nn.Sequential(*(UpsampleBlock(features) for _ in range(scale // 2)))
        self.tail = nn.Conv2d(features, 3, 9, padding=4)
        if zero_tail:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        head = self.head(lr)
        out = self.tail(self.upsample(head + self.trunk_tail(self.trunk(head))))
        if self.bicubic_skip:
            out = out + F.interpolate(lr[:, :3], scale_factor=self.scale, mode="bicubic", align_corners=False)
        return out


def with_camera_plane(lr: torch.Tensor, camera: torch.Tensor | float) -> torch.Tensor:
    """N×3×h×w LR plus the :class:`Generator`'s camera plane: ``camera`` (one value, or one per image) everywhere."""
    n, _, h, w = lr.shape
    level = torch.as_tensor(camera, dtype=lr.dtype, device=lr.device).reshape(-1, 1, 1, 1).expand(n, 1, h, w)
    return torch.cat([lr, level], dim=1)


def _disc_block(cin: int, cout: int, stride: int, bn: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class Discriminator(nn.Module):
    """8 conv layers (64→512 filters, stride 2 every other), BN, LeakyReLU(0.2),
    dense 1024 + LeakyReLU, dense 1 → one logit per image.

    An adaptive 6×6 average pool before the dense head (not in the paper) keeps
    the dense layer at SRGAN's original size (96² crops → 6×6) for 256² crops
    and lets any crop size through.
    """

    def __init__(self, features: int = 64):
        super().__init__()
        f = features
        plan = [(3, f, 1), (f, f, 2), (f, 2 * f, 1), (2 * f, 2 * f, 2),
                (2 * f, 4 * f, 1), (4 * f, 4 * f, 2), (4 * f, 8 * f, 1), (8 * f, 8 * f, 2)]
        layers: list[nn.Module] = []
        for i, (cin, cout, stride) in enumerate(plan):
            layers += _disc_block(cin, cout, stride, bn=i > 0)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * f * 36, 1024),
                                  nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: N×3×H×W in [0, 1] → N logits."""
        return self.head(self.pool(self.features(image))).squeeze(1)


class VGGContent(nn.Module):
    """VGG19 features up to block3_conv3 (after its ReLU) for the content loss.

    Weights come from a local file (torchvision's ``vgg19-dcbb9e9d.pth`` or any
    state dict of ``vgg19().features``): they cannot be downloaded here.
    """

    def __init__(self, weights: str | Path):
        super().__init__()
        import torchvision

        path = Path(weights)
        if not path.is_file():
            raise MissingWeights(f"VGG19 weights not found: {path} (torchvision's vgg19-dcbb9e9d.pth; "
                                 "or --vgg-weights none for a pixel MSE content loss)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is the user's to fix
            raise MissingWeights(f"{path}: not a torch state dict ({type(exc).__name__})") from None
        state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
        features = torchvision.models.vgg19(weights=None).features
        try:
            features.load_state_dict(state)
        except RuntimeError as exc:
            raise MissingWeights(f"{path} is not a VGG19 state dict: {str(exc).splitlines()[0]}") from None
        self.features = features[:VGG19_BLOCK3_CONV3_RELU].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: N×3×H×W RGB in [0, 1] → block3_conv3 activations."""
        return self.features((image - self.mean) / self.std)
