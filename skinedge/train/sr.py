"""``skinedge train sr``: the SRGAN generator as the paper trains it (§3.3.2, §4.2.2).

Phase ``pretrain`` trains the generator alone with a pixel loss (SRResNet,
MSE); phase ``gan`` adds the discriminator: L_G = content + 1e-3 × adversarial,
content = MSE of VGG19 block3_conv3 features (or pixel MSE with
``--vgg-weights none``); ``both`` runs pretrain then gan from the best
pretrain checkpoint. Defaults: Adam 1e-4 (β1 0.9), batch 8, 100 epochs per
phase, LR 64² → HR 256² crops. Validation every epoch: PSNR/SSIM on the Y
channel with a border of ``scale`` pixels, over the whole crop and inside the
lesion, beside bicubic on the same crops; the best checkpoint has the highest
PSNR-Y.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from skinedge import metrics
from skinedge.data.degrade import Degradation, bicubic_upscale
from skinedge.errors import SkinedgeError
from skinedge.models.srgan import Discriminator, Generator, VGGContent, with_camera_plane
from skinedge.models.checkpoint import load_checkpoint, load_state
from skinedge.train.loop import (Budget, check_finite, seed_everything, start_runtime, stop_runtime,
                                 unwrap, wrap_ddp)
from skinedge.train.losses import adversarial_loss, discriminator_loss
from skinedge.train.runner import Phase, restore, run_phase
from skinedge.train.samples import SRSamples, to_unit
from skinedge.train.setup import RunConfig, prepare_run

PHASES = ("pretrain", "gan", "both")


@dataclass
class SRConfig(RunConfig):
    """Paper defaults (§4.2.2) for the options a run does not share with seg."""

    batch: int = 8
    epochs: int = 100
    phase: str = "both"
    blocks: int = 16
    features: int = 64
    scale: int = 4
    bicubic_skip: bool = False
    hr_size: int = 256
    pixel_loss: str = "mse"
    vgg_weights: str = "none"
    adv_weight: float = 1e-3
    degradation: str = "default"
    init: Path | None = None
    val_limit: int | None = None

    def arch(self) -> dict:
        return {"blocks": self.blocks, "features": self.features, "scale": self.scale,
                "bicubic_skip": self.bicubic_skip}


def degradation_of(name: str, scale: int) -> Degradation:
    if name == "bicubic":
        return Degradation.bicubic_only(scale)
    if name == "default":
        return Degradation(scale=scale)
    raise SkinedgeError(f"--degradation must be default or bicubic, got {name!r}")


@torch.no_grad()
def super_resolve(generator: torch.nn.Module, lr_images: np.ndarray, device: torch.device,
                  camera: float = 1.0) -> np.ndarray:
    """N×h×w×3 uint8 LR → N×sh×sw×3 uint8 SR (eval mode, clamped to [0, 1]); ``camera`` fills the camera plane of
    a generator that has one (1: the LR came through a camera, 0: a clean bicubic down-scale)."""
    generator.eval()
    lr = to_unit(lr_images).to(device)
    if getattr(generator, "in_channels", 3) == 4:
        lr = with_camera_plane(lr, camera)
    out = generator(lr).clamp(0, 1)
    return (out.permute(0, 2, 3, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def validate_sr(generator: torch.nn.Module, samples: SRSamples, device: torch.device, scale: int,
                limit: int | None = None) -> dict[str, float]:
    """Mean PSNR/SSIM (Y, border ``scale``) of G and of bicubic, whole crop and inside the lesion."""
    rows = []
    for index in range(min(len(samples), limit or len(samples))):
        lr, hr = samples.pair(index)
        sr = super_resolve(generator, lr[None], device)[0]
        bic = bicubic_upscale(lr, scale)
        mask = samples.lesion_mask(index)
        baseline = metrics.sr_scores(bic, hr, scale, mask)
        rows.append({**metrics.sr_scores(sr, hr, scale, mask), **{f"bicubic_{k}": v for k, v in baseline.items()}})
    keys = sorted({k for row in rows for k in row})
    return metrics.mean_scores([{k: row.get(k, float("nan")) for k in keys} for row in rows])


def _pixel_loss(name: str):
    if name not in ("mse", "l1"):
        raise SkinedgeError(f"--pixel-loss must be mse or l1, got {name!r}")
    return F.mse_loss if name == "mse" else F.l1_loss


def _phase(cfg: SRConfig, name: str, train: SRSamples, val: SRSamples, rt, data: dict) -> Phase:
    """Build the pretrain or gan phase: models, optimizers, step and validation."""
    generator = Generator(**cfg.arch()).to(rt.device)
    g_opt = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    modules, optimizers = {"model": generator}, {"model": g_opt}
    g = wrap_ddp(generator, rt)
    pixel = _pixel_loss(cfg.pixel_loss)
    last = str(cfg.out / f"sr-{name}-last.pt")
    if name == "pretrain":
        def step(indices, epoch, global_step):
            g.train()
            lr, hr = (t.to(rt.device) for t in train.batch(indices, epoch))
            loss = pixel(g(lr), hr)
            check_finite(loss, global_step, last)
            g_opt.zero_grad(set_to_none=True)
            loss.backward()
            g_opt.step()
            return {"loss": loss.item()}
    else:
        disc = Discriminator().to(rt.device)
        d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        modules["discriminator"], optimizers["discriminator"] = disc, d_opt
        d = wrap_ddp(disc, rt)
        vgg = VGGContent(cfg.vgg_weights).to(rt.device) if cfg.vgg_weights != "none" else None
        content = (lambda a, b: F.mse_loss(vgg(a), vgg(b))) if vgg is not None else pixel

        def step(indices, epoch, global_step):
            g.train()
            d.train()
            lr, hr = (t.to(rt.device) for t in train.batch(indices, epoch))
            fake = g(lr)
            d_loss = discriminator_loss(d(hr), d(fake.detach()))
            check_finite(d_loss, global_step, last)
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            g_content = content(fake, hr)
            g_loss = g_content + cfg.adv_weight * adversarial_loss(d(fake))
            check_finite(g_loss, global_step, last)
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            return {"g": g_loss.item(), "content": g_content.item(), "d": d_loss.item()}

    def validate():
        return validate_sr(unwrap(g), val, rt.device, cfg.scale, cfg.val_limit)

    io = {"input": "RGB in [0, 1], N×3×h×w", "output": "RGB in [0, 1] (clamp), N×3×sh×sw",
          "scale": cfg.scale, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
          "content_loss": "vgg19 block3_conv3" if cfg.vgg_weights != "none" else f"pixel {cfg.pixel_loss}"}
    return Phase(f"sr-{name}", "sr", len(train), cfg.batch, cfg.epochs, step, validate, "psnr_y",
                 modules, optimizers, cfg.arch(),
                 {"config": {**cfg.to_json(), "phase": name}, "data": data, "io": io}, cfg.seed,
                 cfg.schedule)


def _init_generator(phase: Phase, cfg: SRConfig) -> None:
    """Start the gan phase from a pretrained generator (``--init`` or this run's pretrain best)."""
    path = cfg.init or cfg.out / "sr-pretrain-best.pt"
    if not Path(path).is_file():
        if cfg.init:
            raise SkinedgeError(f"--init checkpoint not found: {path}")
        return  # a GAN from scratch; the paper pretrains, so `--phase both` is the default
    payload = load_checkpoint(Path(path), "sr")
    load_state(phase.modules["model"], payload["state"]["model"], Path(path), "generator")


def train_sr(cfg: SRConfig) -> dict:
    """Train (or resume) the SR generator into ``cfg.out``; returns results per phase."""
    if cfg.phase not in PHASES:
        raise SkinedgeError(f"--phase must be one of {', '.join(PHASES)}, got {cfg.phase!r}")
    rt = start_runtime(cfg.device)
    if cfg.vgg_weights == "none" and rt.main and cfg.phase != "pretrain":
        print("content loss: pixel MSE (--vgg-weights none; the paper uses VGG19 block3_conv3 features)")
    results = {}
    try:
        seed_everything(cfg.seed + rt.rank)
        names = ["pretrain", "gan"] if cfg.phase == "both" else [cfg.phase]
        if cfg.resume and not any((cfg.out / f"sr-{n}-last.pt").is_file() for n in names):
            raise SkinedgeError(f"--resume: no sr-{names[0]}-last.pt in {cfg.out} to resume from")
        for name in names:
            last = cfg.out / f"sr-{name}-last.pt"
            resume = cfg.resume and last.is_file()  # a finished phase resumes as a no-op
            dataset, split, data = prepare_run(cfg.out, cfg.data, cfg.split, cfg.seed, resume,
                                               f"sr-{name}", cfg.to_json(), rt.main)
            deg = degradation_of(cfg.degradation, cfg.scale)
            train = SRSamples(dataset.subset(split.parts["train"]), cfg.hr_size, deg, True, cfg.seed)
            val = SRSamples(dataset.subset(split.parts["val"]), cfg.hr_size, deg, False, cfg.seed)
            phase = _phase(cfg, name, train, val, rt, data)
            progress = restore(phase, load_checkpoint(last, "sr"), last) if resume else None
            if name == "gan" and not resume:
                _init_generator(phase, cfg)
            results[name] = run_phase(phase, rt, cfg.out, Budget(cfg.max_steps, cfg.max_minutes), progress)
    finally:
        stop_runtime(rt)
    return results

