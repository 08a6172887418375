"""GPU figures, in-process (no Redis, S3 or workers): what the service's own model code does on a
CUDA device, each figure against a baseline measured in the same run.

- GAN training images/s through ``workers.training.gan.train_gan`` (its progress callback's
  timestamps; every step ends in ``.item()``, a device sync): bf16 autocast vs fp32 (TF32), and
  the GPU vs the same call on the CPU.
- Restoration training images/s through ``workers.training.restoration.train_restoration``:
  bf16 vs fp32.
- Generation images/s through ``workers.models.gan.generate`` with a randomly initialised
  generator of the service's config (``build_generator(GanConfig(...), None)``): batch 64 and
  1024 vs batch 1, and the GPU vs the CPU; the bare generator forward under
  ``workers.devices.inference`` (bf16, channels_last) vs plain fp32, and ``maybe_compile`` vs eager.
- Restoration ms per image through ``workers.restoration.learned`` (a randomly initialised
  InpaintingNet and DamageDetector: speed only) at 512/1024/2048 px: bf16 vs fp32, the GPU vs
  the CPU where the CPU is cheap, channels_last vs contiguous.
- The creation recipe for a GPU (issue 18): the conditional GAN trained on 256 px procedural
  paintings (bf16 autocast on CUDA) for a share of the budget; at every checkpoint, its training
  images/s and the Fréchet distance of its EMA generator's works from held-out paintings, against
  the real-vs-real floor: a learning curve.
- The restoration recipe for a GPU (issue 20): the three restoration networks trained on 256 px
  paintings (and the debian-images corpus's pictures where it is installed) for a share of the
  budget; at every checkpoint, the served fill's pooled hole PSNR on held-out paintings and photos
  (32-64 px holes) against the best classical method on the same holes: a learning curve.
- Style transfer ms per image through ``workers.models.style_networks.engine(device)`` at
  512/1024/2048 px against ``engine("cpu")``. Where onnxruntime has no CUDA provider the engine
  runs on the CPU: 2048 px is then skipped, with the reason printed.

Timings: warm-ups first (cuDNN autotuning, lazy sessions), ``torch.cuda.synchronize`` before and
after every timed call, value and baseline alternating, medians. The section goes below the
kept marker of bench/RESULTS.md (replacing its own previous section, nothing else).

    python -m bench.gpu_bench [--device cuda] [--quick] [--out bench/RESULTS.md]
    python -m bench.gpu_bench --from-section SECTION.md     (write a section measured elsewhere)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers import devices

MODULE = "bench.gpu_bench"
RESULTS = Path(__file__).with_name("RESULTS.md")
KEPT_MARKER = "<!-- kept by bench.run_all: figures measured by the commands named with them -->"
HEADING = "## GPU (bench/gpu_check.sh)"
N_CLASSES = 9  # the procedural dataset's nine styles (workers.data.procedural.STYLES), the default training set


@dataclass
class Row:
    figure: str
    value: float
    baseline: float
    unit: str  # "img/s" (higher is better) or "ms" (lower is better)
    baseline_label: str
    device: str
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline

    @property
    def higher_is_better(self) -> bool:
        return self.unit.endswith("/s") or self.unit == "dB"


@dataclass
class Report:
    device: str
    quick: bool
    argv: list[str]
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)


class Budget:
    """Wall-clock budget: sections that would not fit are skipped, with the reason reported."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


# -- timing -------------------------------------------------------------------------------


def sync(device: str) -> None:
    if devices.is_cuda(device):
        torch.cuda.synchronize()


def alternate(fns: dict[str, Callable[[], object]], device: str, warmup: int, runs: int) -> dict[str, float]:
    """Median seconds per call of each function: ``warmup`` untimed calls each, then ``runs``
    rounds in which each is timed once, in turn, synchronised before and after."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            sync(device)
            started = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


@contextlib.contextmanager
def env(name: str, value: str | None) -> Iterator[None]:
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def fp32(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` with bf16 autocast switched off (``ARTFORGE_CUDA_BF16=0``): fp32 storage, TF32 math."""
    def run() -> object:
        with env(devices.BF16_ENV, "0"):
            return fn()
    return run


def fp32_label(device: str, gan_training: bool = False) -> str:
    if devices.is_cuda(device):
        return "fp32 (TF32)"
    if gan_training and devices.cpu_bf16_wanted(device):
        return "fp32 (this CPU has bf16 units)"
    return "fp32: the same here (on the CPU only GAN training autocasts, where the CPU has bf16 units)"


def with_weights(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random non-zero weights everywhere (the inpainter's last layer starts at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return net


# -- training -----------------------------------------------------------------------------


def gan_step_seconds(device: str, resolution: int, batch: int, steps: int, warm: int, mixed: bool) -> list[float]:
    """Seconds per step of ``train_gan`` (the service's loop), the first ``warm`` steps dropped."""
    from workers.models.gan import GanConfig
    from workers.training.gan import TrainConfig, train_gan

    rng = np.random.default_rng(0)
    n = max(4 * batch, 64)
    images = rng.integers(0, 256, (n, resolution, resolution, 3), dtype=np.uint8)
    labels, attrs = np.arange(n) % N_CLASSES, rng.random((n, 3), dtype=np.float32)
    stamps: list[float] = []
    train = TrainConfig(steps=warm + steps, batch_size=batch, checkpoint_every=10**9, sample_every=10**9)
    train_gan(images, labels, attrs, GanConfig(n_classes=N_CLASSES, resolution=resolution), train,
              on_progress=lambda *_: stamps.append(time.perf_counter()), device=device, mixed_precision=mixed)
    return list(np.diff(stamps[warm - 1:])) if warm else list(np.diff(stamps))


def restoration_step_seconds(device: str, batch: int, patch: int, steps: int, warm: int, mixed: bool) -> list[float]:
    from workers.models.restoration import RestorationConfig
    from workers.training.restoration import RestorationTrainConfig, train_restoration

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (2 * patch, 2 * patch, 3), dtype=np.uint8) for _ in range(32)]
    stamps: list[float] = []
    train = RestorationTrainConfig(steps=warm + steps, batch_size=batch, patch=patch, checkpoint_every=10**9,
                                   sample_every=10**9)
    train_restoration(images, RestorationConfig(), train, on_progress=lambda *_: stamps.append(time.perf_counter()),
                      device=device, mixed_precision=mixed)
    return list(np.diff(stamps[warm - 1:])) if warm else list(np.diff(stamps))


def training(report: Report, sizes: dict[str, Any]) -> None:
    dev = report.device
    steps, warm, rounds = sizes["train_steps"], sizes["train_warm"], sizes["train_rounds"]
    first: list[float] = []
    for resolution, batch in sizes["gan"]:
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(rounds):
            for mixed in (True, False):
                times[mixed] += gan_step_seconds(dev, resolution, batch, steps, warm, mixed)
        first = first or times[True]
        bf16, plain = (batch / statistics.median(times[m]) for m in (True, False))
        report.rows.append(Row(f"GAN training {resolution} px, batch {batch}: bf16 autocast", bf16, plain, "img/s",
                               fp32_label(dev, gan_training=True), dev,
                               f"train_gan, GanConfig(n_classes={N_CLASSES}, resolution="
                               f"{resolution}) defaults; median of {len(times[True])} steps each, {rounds} "
                               "alternating runs of each"))
    if devices.is_cuda(dev):
        resolution, batch = sizes["gan"][0]
        on_cpu = gan_step_seconds("cpu", resolution, batch, sizes["cpu_train_steps"], 2, True)
        report.rows.append(Row(f"GAN training {resolution} px, batch {batch}: GPU (bf16) vs CPU",
                               batch / statistics.median(first), batch / statistics.median(on_cpu), "img/s",
                               f"same call on the CPU ({devices.autocast_precision('cpu', cpu=True)}), "
                               f"{torch.get_num_threads()} threads", f"{dev} vs cpu",
                               f"median of {len(on_cpu)} CPU steps"))
    batch, patch = sizes["restoration_train"]
    rtimes: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for mixed in (True, False):
            rtimes[mixed] += restoration_step_seconds(dev, batch, patch, steps, warm, mixed)
    bf16, plain = (batch / statistics.median(rtimes[m]) for m in (True, False))
    report.rows.append(Row(f"restoration training {patch} px patches, batch {batch}: bf16 autocast", bf16, plain,
                           "img/s", fp32_label(dev), dev, "train_restoration, RestorationConfig() defaults; the damage "
                           "is simulated on the CPU each step, which bounds what the GPU can gain"))


class TimeIsUp(Exception):
    pass


def creation_curve(report: Report, sizes: dict[str, Any]) -> None:
    """Train the GAN at ``resolution`` px for ``seconds`` (at most), checkpointing every ``every``
    steps; each checkpoint's EMA generator draws as many works as the held-out set holds, one per
    held-out painting with its style and colours, scored by the Fréchet distance."""
    from workers.data.attributes import colour_attributes
    from workers.data.datasets import HELD_OUT_SEED, REFERENCE_SEED
    from workers.data.procedural import STYLES, make_dataset
    from workers.metrics.frechet import frechet_distance, pretrained_features
    from workers.models.builders import build_generator
    from workers.models.gan import GanConfig, generate
    from workers.training.gan import TrainConfig, train_gan

    dev, (resolution, per_style, batch, seconds, every, held) = report.device, sizes["gan_curve"]
    if sizes["budget"].left() < seconds + 30:
        report.skipped.append(f"creation recipe: {sizes['budget'].left():.0f} s of the budget left, "
                              f"it takes {seconds + 30} s")
        return
    images, labels = make_dataset(per_style, resolution, seed=0)
    real, real_labels = make_dataset(held, resolution, seed=HELD_OUT_SEED)
    real_features = pretrained_features(real)
    floor = frechet_distance(pretrained_features(make_dataset(held, resolution, seed=REFERENCE_SEED)[0]),
                             real_features)
    config = GanConfig(n_classes=len(STYLES), resolution=resolution)
    train = TrainConfig(steps=10**6, batch_size=batch, checkpoint_every=every, sample_every=10**9)
    started, scoring = time.monotonic(), 0.0

    def stop_when_time_is_up() -> None:
        if time.monotonic() - started - scoring > seconds:
            raise TimeIsUp

    def score(state: dict[str, Any]) -> None:
        nonlocal scoring
        began, step = time.monotonic(), int(state["step"])
        rate = step * batch / max(began - started - scoring, 1e-9)
        generator = build_generator(config, state["generator_ema"])
        fake = generate(generator, real_labels, colour_attributes(real), seed=1)
        fd = frechet_distance(pretrained_features(fake), real_features)
        report.rows.append(Row(f"creation recipe {resolution} px, step {step} ({rate:,.0f} img/s): Fréchet "
                               "distance of the EMA generator", fd, floor, "FD", "real-vs-real floor", dev,
                               f"train_gan, GanConfig(resolution={resolution}) and TrainConfig defaults but batch "
                               f"{batch}; {len(images)} procedural paintings; {len(real)} held out, against another "
                               f"{len(real)} for the floor; img/s counts training time only"))
        scoring += time.monotonic() - began

    with contextlib.suppress(TimeIsUp):
        train_gan(images, labels, colour_attributes(images), config, train, save_checkpoint=score,
                  check_cancel=stop_when_time_is_up, device=dev)


def restoration_curve(report: Report, sizes: dict[str, Any]) -> None:
    """Train the restoration networks at ``side`` px for ``seconds`` (at most), checkpointing every
    ``every`` steps; each checkpoint's inpainter is scored as jobs serve it."""
    from shared.debian_images import DEFAULT_MANIFEST_PATH, DatasetNotInstalled, read_manifest
    from workers.data.datasets import HELD_OUT_SEED
    from workers.data.debian_images import tiles_of_split
    from workers.data.photos import photo_tiles
    from workers.data.procedural import make_dataset
    from workers.models.builders import load_inpainter
    from workers.models.restoration import InpaintingNet, RestorationConfig
    from workers.training.restoration import RestorationTrainConfig, train_restoration
    from workers.training.restoration_eval import compare_inpainting, learned_pooled_hole_psnr

    dev, (side, per_style, batch, seconds, every) = report.device, sizes["curve"]
    if sizes["budget"].left() < seconds + 20:
        report.skipped.append(f"restoration recipe: {sizes['budget'].left():.0f} s of the budget left, "
                              f"it takes {seconds + 20} s")
        return
    images = list(make_dataset(per_style, side, seed=0)[0])
    corpus = "no debian-images corpus here"
    try:
        pictures = tiles_of_split(read_manifest(DEFAULT_MANIFEST_PATH), "train", tile=side, side=2 * side)
        images += pictures
        corpus = f"{len(pictures)} debian-images tiles"
    except DatasetNotInstalled:
        pass
    held = {"paintings": list(make_dataset(2, side, seed=HELD_OUT_SEED)[0]), "photos": photo_tiles(tile=side)}
    config = RestorationConfig()
    classical = {name: compare_inpainting(InpaintingNet(config), cleans, "large_holes", np.random.default_rng([0, 1]))
                 for name, cleans in held.items()}
    train = RestorationTrainConfig(steps=100_000, batch_size=batch, patch=side, seed=0, checkpoint_every=every,
                                   sample_every=10**9, cosine_decay=False)
    started = time.monotonic()

    def stop_when_time_is_up() -> None:
        if time.monotonic() - started > seconds:
            raise TimeIsUp

    def score(state: dict[str, Any]) -> None:
        step, at = int(state["step"]), time.monotonic() - started
        inpainter = load_inpainter(state["inpainter"], config, device=dev)
        for name, cleans in held.items():
            learned = learned_pooled_hole_psnr(inpainter, cleans, 0, "large_holes", dev)
            best = classical[name]["best_classical"]
            report.rows.append(Row(f"restoration recipe {side} px, step {step} ({at:.0f} s): served fill, held-out "
                                   f"{name}", learned, classical[name][best]["pooled_hole_psnr"], "dB",
                                   f"best classical: {best}", dev,
                                   f"train_restoration, RestorationConfig() defaults, batch {batch} of {side} px "
                                   f"patches, constant lr; {len(images)} training images ({per_style} procedural "
                                   f"per style, {corpus}); pooled hole PSNR on 32-64 px holes, {len(cleans)} images"))

    with contextlib.suppress(TimeIsUp):
        train_restoration(images, config, train, save_checkpoint=score, check_cancel=stop_when_time_is_up,
                          device=dev)


# -- generation ---------------------------------------------------------------------------


def generator_on(device: str, resolution: int) -> Any:
    from workers.models.gan import GanConfig
    from workers.training.evaluation import build_generator

    torch.manual_seed(0)
    return devices.prepare_module(build_generator(GanConfig(n_classes=N_CLASSES, resolution=resolution), None),
                                  device)


def generating(g: Any, n: int, batch: int, seed: int) -> Callable[[], object]:
    """One call of the service's ``generate``: ``n`` images of random labels and attributes."""
    from workers.models.gan import generate

    rng = np.random.default_rng(seed)
    labels, attrs = rng.integers(0, N_CLASSES, n), rng.random((n, 3), dtype=np.float32)
    return lambda: generate(g, labels, attrs, seed=seed, batch_size=batch)


def generation(report: Report, sizes: dict[str, Any]) -> None:
    dev = report.device
    for resolution in sizes["gen_resolutions"]:
        g = generator_on(dev, resolution)
        images = dict(sizes["gen_batches"])  # batch -> images per call
        secs = alternate({str(batch): generating(g, n, batch, batch) for batch, n in images.items()}, dev,
                         sizes["warmup"], sizes["runs"])
        rate = {batch: images[batch] / secs[str(batch)] for batch in images}
        first = min(rate)
        for batch in sorted(rate)[1:]:
            report.rows.append(Row(f"generation {resolution} px, batch {batch} vs batch {first}", rate[batch],
                                   rate[first], "img/s", f"batch {first}", dev,
                                   f"workers.models.gan.generate, {images[batch]} images per call (uint8 on the "
                                   f"host included); batch {first}: {images[first]} images"))
        if devices.is_cuda(dev) and resolution == sizes["gen_resolutions"][0]:
            batch, n = sizes["gen_cpu"]
            secs = alternate({"gpu": generating(g, n, batch, 1), "cpu": generating(generator_on("cpu", resolution),
                                                                                  n, batch, 1)},
                             dev, 1, sizes["runs"])
            report.rows.append(Row(f"generation {resolution} px, batch {batch}: GPU vs CPU", n / secs["gpu"],
                                   n / secs["cpu"], "img/s", f"same call on the CPU, {torch.get_num_threads()} "
                                   "threads", f"{dev} vs cpu", f"{n} images per call"))
    forward_figures(report, sizes)


def forward_inputs(report: Report, sizes: dict[str, Any]) -> tuple[Any, tuple[torch.Tensor, ...], Any]:
    """(the generator prepared for the device, its inputs there, an eager call under
    ``devices.inference``) for the bare-forward figures."""
    dev = report.device
    resolution, batch = sizes["forward"]
    g = generator_on(dev, resolution)
    z = devices.to_device(torch.randn(batch, g.config.nz, generator=torch.Generator().manual_seed(0)), dev)
    y = devices.to_device(torch.arange(batch) % N_CLASSES, dev)
    a = devices.to_device(torch.rand(batch, 3, generator=torch.Generator().manual_seed(1)), dev)

    def eager() -> object:
        with devices.inference(dev):
            return g(z, y, a)

    return g, (z, y, a), eager


def forward_figures(report: Report, sizes: dict[str, Any]) -> None:
    """The bare generator forward: bf16 + channels_last (workers.devices) vs fp32 contiguous."""
    dev = report.device
    resolution, batch = sizes["forward"]
    _, (z, y, a), fast = forward_inputs(report, sizes)
    plain = generator_on("cpu", resolution).to(dev)  # the same weights (same seed), fp32, contiguous

    def fp32_forward() -> object:
        with torch.inference_mode():
            return plain(z, y, a)

    secs = alternate({"fast": fast, "plain": fp32_forward}, dev, sizes["warmup"], sizes["runs"])
    report.rows.append(Row(f"generator forward {resolution} px, batch {batch}: bf16 + channels_last", batch /
                           secs["fast"], batch / secs["plain"], "img/s", f"{fp32_label(dev)}; contiguous", dev,
                           "workers.devices.inference + prepare_module vs torch.inference_mode"))


def compiled(report: Report, sizes: dict[str, Any]) -> None:
    """``maybe_compile`` (ARTFORGE_TORCH_COMPILE=1) vs eager, both bf16 + channels_last. Last,
    since compiling can take a minute; skipped when less of the budget is left than that."""
    dev = report.device
    if sizes["compile"] is False:
        report.skipped.append("torch.compile figure: --no-compile")
        return
    if devices.is_cuda(dev) and sizes["budget"].left() < sizes["compile_needs_s"]:
        report.skipped.append(f"torch.compile figure: {sizes['budget'].left():.0f} s of the budget left, "
                              f"compiling may take {sizes['compile_needs_s']} s")
        return
    g, inputs, eager = forward_inputs(report, sizes)
    started = time.perf_counter()
    with env(devices.COMPILE_ENV, "1"), devices.inference(dev):
        forward = devices.maybe_compile(g, dev, example=inputs)
    compile_s = time.perf_counter() - started
    is_compiled = forward is not g and not getattr(forward, "failed", False)

    def run() -> object:
        with devices.inference(dev):
            return forward(*inputs)

    secs = alternate({"compiled": run, "eager": eager}, dev, sizes["warmup"], sizes["runs"])
    resolution, batch = sizes["forward"]
    note = (f"compiled in {compile_s:.1f} s (first call included)" if is_compiled else
            "not compiled: maybe_compile stays eager on the CPU" if not devices.is_cuda(dev) else
            "torch.compile failed, maybe_compile fell back to eager (see the log)")
    report.rows.append(Row(f"generator forward {resolution} px, batch {batch}: maybe_compile "
                           "(ARTFORGE_TORCH_COMPILE=1)", batch / secs["compiled"], batch / secs["eager"], "img/s",
                           "eager, bf16 + channels_last", dev, note))


# -- restoration --------------------------------------------------------------------------


def damaged_image(side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (side // 16 + 1, side // 16 + 1, 3), dtype=np.uint8)
    from PIL import Image

    image = np.array(Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC))
    mask = np.zeros((side, side), bool)
    for _ in range(12):  # holes covering ~10 % of the image
        h, w = rng.integers(side // 20, side // 7, 2)
        top, left = rng.integers(0, side - h), rng.integers(0, side - w)
        mask[top:top + h, left:left + w] = True
    return image, mask


def restoration(report: Report, sizes: dict[str, Any]) -> None:
    from workers.models.builders import load_detector, load_inpainter
    from workers.models.restoration import DamageDetector, InpaintingNet, RestorationConfig
    from workers.restoration.learned import detect_learned, inpaint_learned

    dev = report.device
    config = RestorationConfig()
    inpainter_state = with_weights(InpaintingNet(config), 0).state_dict()
    detector_state = with_weights(DamageDetector(config), 1).state_dict()
    inpainter, detector = load_inpainter(inpainter_state, config, dev), load_detector(detector_state, config, dev)
    cpu_nets = load_inpainter(inpainter_state, config), load_detector(detector_state, config)
    for side in sizes["restore_sides"]:
        if sizes["budget"].left() < 20:
            report.skipped.append(f"restoration {side} px: the time budget is spent")
            continue
        image, mask = damaged_image(side, side)
        inpaint = functools.partial(inpaint_learned, inpainter, image, mask, dev)
        detect = functools.partial(detect_learned, detector, image, dev)
        calls: dict[str, Callable[[], object]] = {"inpaint": inpaint, "inpaint fp32": fp32(inpaint),
                                                  "detect": detect, "detect fp32": fp32(detect)}
        secs = alternate(calls, dev, sizes["warmup"], sizes["runs"])
        for op in ("inpaint", "detect"):
            report.rows.append(Row(f"restoration {op} {side} px: bf16 autocast", 1e3 * secs[op],
                                   1e3 * secs[f"{op} fp32"], "ms", fp32_label(dev), dev,
                                   f"workers.restoration.learned.{op}_learned, random RestorationConfig() weights; "
                                   "uint8 in and out"))
        if devices.is_cuda(dev) and side in sizes["restore_cpu_sides"]:
            cpu = alternate({"cpu": functools.partial(inpaint_learned, cpu_nets[0], image, mask, "cpu")},
                            "cpu", 1, sizes["cpu_runs"])["cpu"]
            report.rows.append(Row(f"restoration inpaint {side} px: GPU vs CPU", 1e3 * secs["inpaint"], 1e3 * cpu,
                                   "ms", f"same call on the CPU, {torch.get_num_threads()} threads", f"{dev} vs cpu",
                                   f"median of {sizes['cpu_runs']} CPU runs"))
    channels_last_figure(report, sizes, inpainter_state, config)


def channels_last_figure(report: Report, sizes: dict[str, Any], state: dict[str, torch.Tensor], config: Any) -> None:
    """The inpainter's forward, both under devices.inference: channels_last vs contiguous."""
    from workers.models.restoration import InpaintingNet

    dev = report.device
    side = sizes["channels_last_side"]
    image, mask = damaged_image(side, 7)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    m = torch.from_numpy(mask)[None, None].float()
    net_cl = devices.prepare_module(InpaintingNet(config), dev)
    net_cl.load_state_dict(state)
    net_plain = InpaintingNet(config).to(dev).eval()
    net_plain.load_state_dict(state)
    x_cl, x_plain, m_dev = devices.image_batch(x, dev), x.to(dev).contiguous(), m.to(dev)

    def run(net: torch.nn.Module, batch: torch.Tensor) -> Callable[[], object]:
        def call() -> object:
            with devices.inference(dev):
                return net(batch, m_dev)
        return call

    secs = alternate({"cl": run(net_cl, x_cl), "plain": run(net_plain, x_plain)}, dev, sizes["warmup"],
                     sizes["runs"])
    report.rows.append(Row(f"inpainter forward {side} px: channels_last", 1e3 * secs["cl"], 1e3 * secs["plain"], "ms",
                           "contiguous (NCHW), same precision", dev,
                           "both under workers.devices.inference; on the CPU both are contiguous"))


# -- style transfer -----------------------------------------------------------------------


def style(report: Report, sizes: dict[str, Any]) -> None:
    import onnxruntime
    from PIL import Image

    from shared.styles import NAMED_STYLES
    from workers.models.style_networks import CUDA_PROVIDER, engine

    dev = report.device
    providers = onnxruntime.get_available_providers()
    report.facts.append(f"onnxruntime {onnxruntime.__version__}, providers: {', '.join(providers)}")
    index = NAMED_STYLES[0].index
    eng, cpu_eng = engine(dev), engine("cpu")
    rng = np.random.default_rng(0)
    try:  # the CUDA provider can be listed and still fail to start (CUDA or cuDNN libraries missing)
        eng.stylize(Image.new("RGB", (64, 64)), style=index, max_size=None)
    except Exception as exc:
        report.skipped.append(f"style transfer on {eng.device}: {type(exc).__name__}: {exc}; the CPU figures follow")
        eng = cpu_eng
    for side in sizes["style_sides"]:
        small = rng.integers(0, 256, (side // 16, side // 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)
        on_cpu = eng is cpu_eng
        if devices.is_cuda(dev) and on_cpu and side > sizes["style_cpu_max"]:
            report.skipped.append(f"style transfer {side} px: onnxruntime here has no {CUDA_PROVIDER} "
                                  f"(providers: {', '.join(providers)}), and {side} px on the CPU is slow")
            continue
        if sizes["budget"].left() < 15:
            report.skipped.append(f"style transfer {side} px: the time budget is spent")
            continue
        calls: dict[str, Callable[[], object]] = {
            "engine": functools.partial(eng.stylize, image, style=index, max_size=None)}
        if not on_cpu:
            calls["cpu"] = functools.partial(cpu_eng.stylize, image, style=index, max_size=None)
        runs = sizes["runs"] if side <= sizes["style_cpu_max"] else sizes["cpu_runs"]
        secs = alternate(calls, dev, 1, runs)
        baseline = secs.get("cpu", secs["engine"])
        where = f"onnxruntime {eng.device}" + ("" if eng.device != "cpu" or not devices.is_cuda(dev) else
                                               f" (no {CUDA_PROVIDER})")
        report.rows.append(Row(f"style transfer {side} px (multistyle26)", 1e3 * secs["engine"], 1e3 * baseline, "ms",
                               'engine("cpu"), same call', where,
                               'the same engine and call as the baseline: ratio 1 by construction' if on_cpu else
                               f"engine({dev!r}).stylize vs engine('cpu').stylize"))


# -- the report ---------------------------------------------------------------------------


def sizes_for(args: argparse.Namespace) -> dict[str, Any]:
    budget = Budget(args.budget_s)
    if args.quick:
        return {"budget": budget, "compile": args.compile, "compile_needs_s": 120, "warmup": 1, "runs": 2,
                "cpu_runs": 1, "train_steps": 3, "train_warm": 1, "train_rounds": 1, "cpu_train_steps": 3,
                "gan": [(32, 8)], "restoration_train": (2, 32),
                "gen_resolutions": [32], "gen_batches": [(1, 4), (8, 32), (32, 64)], "gen_cpu": (8, 32),
                "forward": (32, 16), "restore_sides": [64, 96], "restore_cpu_sides": [64],
                "channels_last_side": 64, "style_sides": [64, 96], "style_cpu_max": 96,
                "curve": (64, 1, 2, 2, 3), "gan_curve": (32, 2, 4, 1, 8, 2)}
    return {"budget": budget, "compile": args.compile, "compile_needs_s": 150, "warmup": 3, "runs": 7,
            "cpu_runs": 3, "train_steps": 30, "train_warm": 5, "train_rounds": 2, "cpu_train_steps": 10,
            "gan": [(32, 32), (128, 128)], "restoration_train": (16, 64),
            "gen_resolutions": [32, 128], "gen_batches": [(1, 64), (64, 1024), (1024, 4096)], "gen_cpu": (64, 1024),
            "forward": (128, 1024), "restore_sides": [512, 1024, 2048], "restore_cpu_sides": [512, 1024],
            "channels_last_side": 1024, "style_sides": [512, 1024, 2048], "style_cpu_max": 1024,
            # side, paintings per style, batch, seconds, checkpoint every
            "curve": (256, 40, 16, 120, 500),
            # resolution, paintings per style, batch, seconds, checkpoint every, held out per style
            "gan_curve": (256, 40, 64, 120, 300, 24)}


SECTIONS: dict[str, Callable[[Report, dict[str, Any]], None]] = {
    "training": training, "generation": generation, "restoration": restoration, "style": style,
    "compile": compiled, "creation_recipe": creation_curve, "restoration_recipe": restoration_curve,
}


def machine_facts(device: str) -> list[str]:
    facts = [f"torch {torch.__version__}", f"Python {platform.python_version()}", f"{os.cpu_count()} CPU cores, "
             f"{torch.get_num_threads()} torch threads"]
    if devices.is_cuda(device):
        props = torch.cuda.get_device_properties(device)
        facts[:0] = [f"**{torch.cuda.get_device_name(device)}** ({props.total_memory / 2**30:.0f} GiB, "
                     f"{props.multi_processor_count} SMs, compute capability {props.major}.{props.minor})",
                     f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
                     f"bf16 autocast {'on' if devices.bf16_wanted(device) else 'off'}"]
    else:
        facts.insert(0, f"CPU only ({platform.processor() or platform.machine()})")
    return facts


def fmt(value: float, unit: str) -> str:
    digits = 3 if value < 10 else 1 if value < 1000 else 0
    return f"{value:,.{digits}f} {unit}"


def markdown(report: Report, command: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [HEADING, "",
             f"Measured {when} by `{command}`{' (--quick: smoke sizes, not figures)' if report.quick else ''} on "
             + "; ".join(report.facts) + ".",
             "In-process calls of the service's own code (no queue or storage). Each ratio is value / baseline from "
             "the same run: higher is better for img/s, lower for ms. Medians after warm-ups, with "
             "`torch.cuda.synchronize()` around every timed call; \"fp32 (TF32)\" is the same call with "
             "`ARTFORGE_CUDA_BF16=0` (or `mixed_precision=False`), TF32 being what `configure_backends` sets for fp32.",
             "",
             "| figure | value | baseline | ratio | device | command |",
             "|---|---|---|---|---|---|"]
    for row in report.rows:
        better = "higher is better" if row.higher_is_better else "lower is better"
        lines.append(f"| {row.figure} | {fmt(row.value, row.unit)} | {fmt(row.baseline, row.unit)} "
                     f"({row.baseline_label}) | **{row.ratio:.2f}** ({better}) | {row.device} | `{command}` |")
    notes = [f"- **{row.figure}**: {row.note}" for row in report.rows if row.note]
    if notes:
        lines += ["", "Notes:", "", *notes]
    if report.skipped:
        lines += ["", "Skipped:", "", *(f"- {reason}" for reason in report.skipped)]
    if report.failed:
        lines += ["", "Failed (traceback in the run's log):", "", *(f"- {reason}" for reason in report.failed)]
    return "\n".join(lines) + "\n"


def replace_section(text: str, section: str, marker: str = KEPT_MARKER, heading: str = HEADING) -> str:
    """``text`` with ``section`` (which starts with ``heading``) in place of the part below
    ``marker`` that starts with the line ``heading`` and runs to the next "## " heading or the
    end; appended at the end when there is none (with the marker first, when that is missing).
    Every other byte of ``text`` stays as it was."""
    section = section.rstrip("\n") + "\n"
    head, found, tail = text.partition(marker)
    if not found:
        base = text if not text or text.endswith("\n") else text + "\n"
        return base + ("\n" if base else "") + marker + "\n\n" + section
    lines = tail.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == heading]
    if not starts:
        tail = tail if tail.endswith("\n") else tail + "\n"
        gap = "" if not tail.strip() or tail.endswith("\n\n") else "\n"
        return head + marker + tail + gap + section
    start = starts[0]
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    if end < len(lines):
        section += "\n"
    return head + marker + "".join(lines[:start]) + section + "".join(lines[end:])


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    path.write_text(replace_section(text, section))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="smoke sizes (a CPU run takes seconds)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the results file to write the section into")
    parser.add_argument("--section-out", type=Path, help="also write the section alone to this file")
    parser.add_argument("--from-section", type=Path, help="measure nothing: write this section file into --out")
    parser.add_argument("--only", action="append", choices=sorted(SECTIONS), help="run only these sections")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile figure")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="wall-clock budget; sections that would overrun it are skipped and listed")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, argv: list[str], after_each: Callable[[Report], None] = lambda r: None) -> Report:
    """Every section in turn; ``after_each`` gets the report after each (so a run killed by a
    timeout has still written what it measured)."""
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run_sections(args, argv, after_each)
    finally:
        torch.set_num_threads(threads)


def run_sections(args: argparse.Namespace, argv: list[str], after_each: Callable[[Report], None]) -> Report:
    device = devices.torch_device(args.device)
    devices.configure_backends()  # as a worker process does
    report = Report(device, args.quick, argv, facts=machine_facts(device))
    sizes = sizes_for(args)
    for name in args.only or list(SECTIONS):
        if sizes["budget"].left() <= 0:
            report.skipped.append(f"{name}: the time budget ({args.budget_s:.0f} s) is spent")
            continue
        started = time.perf_counter()
        try:
            SECTIONS[name](report, sizes)
        except Exception as exc:  # one broken section must not cost the others' figures
            traceback.print_exc()
            report.failed.append(f"{name}: {type(exc).__name__}: {exc}")
        print(f"[{MODULE}] {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        after_each(report)
    for row in report.rows:
        if not (math.isfinite(row.ratio) and row.value > 0 and row.baseline > 0):
            report.failed.append(f"{row.figure}: value {row.value}, baseline {row.baseline}")
    return report


def shown_command(argv: list[str]) -> str:
    """The command as the table shows it: without the output paths."""
    shown, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--out", "--section-out"):
            skip = True
        elif not arg.startswith(("--out=", "--section-out=")):
            shown.append(arg)
    return " ".join(["python -m", MODULE, *shown])


def main(argv: list[str] | None = None) -> int:
    """0 when every section ran (some may have been skipped, with the reason written); 1 when a
    section failed (its traceback is printed, the other sections' figures are still written)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.from_section is not None:
        section = args.from_section.read_text()
        if not section.startswith(HEADING):
            raise SystemExit(f"{args.from_section} does not start with {HEADING!r}")
        write_section(args.out, section)
        print(f"wrote {args.from_section} into {args.out}")
        return 0
    command = shown_command(argv)

    def write(report: Report) -> None:
        section = markdown(report, command)
        write_section(args.out, section)
        if args.section_out is not None:
            args.section_out.write_text(section)

    report = run(args, argv, after_each=write)
    write(report)
    print(markdown(report, command))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
