"""GAN training on the CPU: train_gan against a plain PyTorch loop of the same networks.

Measured: training images/s of ``workers.training.gan.train_gan`` (default GanConfig and
TrainConfig: the 9 procedural styles at 64 px), from its progress callback's timestamps.
Baseline: a plain loop written here the way pytorch/examples' DCGAN writes one (D on real and
on fake in two calls, G's loss backpropagated through D with D's weight gradients computed
too, Adam's default implementation), doing the same work: the same Generator and
Discriminator on the same pairs of images, hinge loss, the attribute and diversity terms, the
same DiffAugment on real and fake, an EMA of G; neither writes checkpoints or samples. The two
alternate, chunk by chunk (``--rounds``), after a warm-up chunk each; medians of the per-step
times are reported. Both run their forward passes in the precision ``train_gan`` picks
(``workers.devices.autocast(..., cpu=True)``: bf16 autocast on a CPU with bf16 units); where that
is bf16, a third runner, ``train_gan`` in fp32, gives the second figure: what bf16 buys.
With ``--quality-steps N`` it also trains N steps on the built-in procedural dataset and reports
how many generated images a style classifier trained on real ones puts in the style they were
generated for, against that classifier's accuracy on held-out real images.

    python -m bench.gan_training [--rounds 4] [--steps 15] [--quality-steps 0]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from bench.common import Figure, command, median, print_figures
from workers import devices
from workers.data.attributes import colour_attributes
from workers.data.procedural import STYLES, make_dataset
from workers.metrics.conditional_accuracy import conditional_accuracy, train_style_classifier
from workers.models.gan import Discriminator, GanConfig, Generator, generate, image_attributes
from workers.training.gan import TrainConfig, diff_augment, pair_shortfall, train_gan

MODULE = "bench.gan_training"


# -- data, and the baseline: a plain loop ------------------------------------------------


def procedural(per_style: int, seed: int,
               side: int = GanConfig.resolution) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The built-in procedural dataset with its colour attributes."""
    images, labels = make_dataset(per_style, side, seed=seed)
    return images, labels, colour_attributes(images)


def plain_loop(images: np.ndarray, labels: np.ndarray, attrs: np.ndarray, config: GanConfig,
               train: TrainConfig, steps: int, on_step: Callable[[float, float], None]) -> None:
    """pytorch/examples' DCGAN loop with this project's networks, hinge loss, DiffAugment and EMA,
    its forward passes in the precision ``train_gan`` picks on this CPU."""
    torch.manual_seed(train.seed)
    g, d = Generator(config), Discriminator(config)
    g_ema = copy.deepcopy(g).eval()
    opt_g = torch.optim.Adam(g.parameters(), lr=train.lr_g, betas=train.betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=train.lr_d, betas=train.betas)
    rng = torch.Generator().manual_seed(train.seed)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    data_labels, data_attrs = torch.from_numpy(labels), torch.from_numpy(attrs)
    members = [torch.from_numpy(np.flatnonzero(labels == c)) for c in range(config.n_classes)]
    for step in range(steps):
        firsts = torch.randint(0, len(data), (train.batch_size // 2,))
        partners = torch.stack([members[int(labels[i])][torch.randint(len(members[int(labels[i])]), (1,))][0]
                                for i in firsts])
        index = torch.stack([firsts, partners], dim=1).reshape(-1)
        real, y, a = data[index], data_labels[index], data_attrs[index]
        with devices.autocast("cpu", cpu=True):
            fake = g(torch.randn(train.batch_size, config.nz), y, a).float()
            real_logits = d(diff_augment(real, train.augment, rng), y, a).float()
            fake_logits = d(diff_augment(fake.detach(), train.augment, rng), y, a).float()

        d.zero_grad()
        loss_d = torch.relu(1 - real_logits).mean() + torch.relu(1 + fake_logits).mean()
        loss_d.backward()
        opt_d.step()

        g.zero_grad()
        with devices.autocast("cpu", cpu=True):
            fake_logits = d(diff_augment(fake, train.augment, rng), y, a).float()
        loss_g = (-fake_logits.mean()
                  + train.attribute_weight * (image_attributes(fake) - a).abs().mean()
                  + train.diversity_weight * pair_shortfall(fake, real))
        loss_g.backward()
        opt_g.step()

        decay = min(train.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(g_ema.parameters(), g.parameters(), strict=True):
                p_ema.mul_(decay).add_(p, alpha=1 - decay)
            for b_ema, b in zip(g_ema.buffers(), g.buffers(), strict=True):
                b_ema.copy_(b)
        on_step(loss_d.item(), loss_g.item())


# -- throughput ---------------------------------------------------------------------------


def step_times(runner: str, data: tuple[np.ndarray, np.ndarray, np.ndarray], config: GanConfig,
               train: TrainConfig, steps: int) -> list[float]:
    """Seconds per step of one chunk of ``steps`` steps, the first two (warm-up) dropped."""
    stamps: list[float] = []
    if runner.startswith("train_gan"):
        train_gan(*data, config, TrainConfig(**{**train.to_dict(), "steps": steps}),
                  on_progress=lambda *_: stamps.append(time.perf_counter()), mixed_precision=runner == "train_gan")
    else:
        plain_loop(*data, config, train, steps, lambda *_: stamps.append(time.perf_counter()))
    return list(np.diff(stamps[1:]))


def throughput(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    data = procedural(64, seed=0)
    config = GanConfig(n_classes=len(STYLES))
    train = TrainConfig(batch_size=args.batch, checkpoint_every=10**9, sample_every=10**9)
    precision = devices.autocast_precision("cpu", cpu=True)
    times: dict[str, list[float]] = {"train_gan": [], "plain": []}
    if precision != "fp32":
        times["train_gan fp32"] = []
    for runner in times:  # warm-up: allocator, oneDNN primitives
        step_times(runner, data, config, train, 4)
    for _ in range(args.rounds):
        for runner, values in times.items():
            values += step_times(runner, data, config, train, args.steps)
    speed = {name: args.batch / median(values) for name, values in times.items()}
    ours, plain = speed["train_gan"], speed["plain"]
    figures = [Figure(f"gan training {config.resolution} px, batch {args.batch}", ours, plain, "img/s", "plain loop",
                      higher_is_better=True, command=command(MODULE, argv), goal=">= 1.0",
                      note=(f"ngf {config.ngf}, ndf {config.ndf}, {torch.get_num_threads()} threads, {precision} in "
                            f"both; {ours / args.batch * 60:.0f} steps/min vs {plain / args.batch * 60:.0f}; "
                            f"median of {len(times['plain'])} steps each, same work (augment + EMA) in both"))]
    if "train_gan fp32" in speed:
        figures.append(Figure(f"gan training {config.resolution} px, batch {args.batch}: {precision}", ours,
                              speed["train_gan fp32"], "img/s", "train_gan in fp32", higher_is_better=True,
                              command=command(MODULE, argv),
                              note="the CPU's bf16 units; ARTFORGE_CPU_BF16=0 trains in fp32"))
    return figures


# -- quality ------------------------------------------------------------------------------


def quality(args: argparse.Namespace, argv: list[str]) -> Figure:
    images, labels, attrs = procedural(args.per_style, seed=0)
    config = GanConfig(n_classes=len(STYLES), ngf=args.ngf, ndf=args.ndf)
    train = TrainConfig(steps=args.quality_steps, batch_size=args.batch, lr_g=args.lr, lr_d=args.lr,
                        checkpoint_every=10**9, sample_every=10**9)
    grids = []
    started = time.perf_counter()
    result = train_gan(images, labels, attrs, config, train, save_samples=lambda step, grid: grids.append(grid))
    minutes = (time.perf_counter() - started) / 60
    grids[-1].resize((grids[-1].width * 3, grids[-1].height * 3), Image.Resampling.NEAREST).save(args.grid)
    g = Generator(config)
    g.load_state_dict(result.g_ema_state)
    classifier = train_style_classifier(images, labels, len(STYLES))
    _, asked_labels, asked_attrs = procedural(40, seed=1)
    fake = generate(g, asked_labels, asked_attrs, seed=1)
    per_style = {style.name: round(conditional_accuracy(classifier, fake[asked_labels == c],
                                                        asked_labels[asked_labels == c]), 2)
                 for c, style in enumerate(STYLES)}
    return Figure(f"gan {args.quality_steps} steps: generated images in their style",
                  100 * conditional_accuracy(classifier, fake, asked_labels), 100 * classifier.real_accuracy, "%",
                  "held-out real images", higher_is_better=True, command=command(MODULE, argv), goal=">= 80 %",
                  note=(f"{minutes:.1f} min of training on {len(images)} procedural images, ngf {args.ngf}, "
                        f"ndf {args.ndf}, batch {args.batch}, lr {args.lr}; per style {per_style}; grid {args.grid}"))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="chunks per runner, alternating")
    parser.add_argument("--steps", type=int, default=15, help="steps per chunk")
    parser.add_argument("--batch", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quality-steps", type=int, default=0, help="also train this long and classify samples")
    parser.add_argument("--per-style", type=int, default=500)
    parser.add_argument("--ngf", type=int, default=GanConfig.ngf)
    parser.add_argument("--ndf", type=int, default=GanConfig.ndf)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr_g)
    parser.add_argument("--grid", default="/tmp/gan_training_grid.png")
    parser.add_argument("--skip-throughput", action="store_true")
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    figures = [] if args.skip_throughput else throughput(args, argv)
    if args.quality_steps:
        figures.append(quality(args, argv))
    return figures


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
