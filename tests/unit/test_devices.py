"""workers.devices: every helper is a pass-through on the CPU (same tensors, fp32, no autocast,
no compile), and the callers (learned restoration, both training loops) compute bitwise what
they computed before the helpers existed; the one exception, GAN training on a CPU with bf16
units, autocasts its forward passes only there and only when asked. The tests marked ``cuda`` run only where a GPU is
visible and check the GPU path for real: bf16 autocast active, channels_last, results close
to fp32."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from workers import devices
from workers.models.builders import load_detector, load_fade_corrector, load_inpainter
from workers.models.gan import GanConfig, Generator
from workers.models.restoration import DamageDetector, FadeCorrector, InpaintingNet, RestorationConfig
from workers.restoration.learned import defade_learned, detect_learned, inpaint_learned
from workers.training.gan import TrainConfig, train_gan
from workers.training.restoration import RestorationTrainConfig, train_restoration

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TINY = RestorationConfig(width=8, depth=2, dilations=(2,), detector_width=4, detector_depth=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny networks gain nothing from a second thread (whose spin-waits slow a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(devices.COMPILE_ENV, raising=False)
    monkeypatch.delenv(devices.BF16_ENV, raising=False)
    monkeypatch.delenv(devices.CPU_BF16_ENV, raising=False)


def autocast_active() -> bool:
    return torch.is_autocast_enabled("cuda") or torch.is_autocast_enabled("cpu")


def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))


def with_weights(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-zero weights everywhere (the inpainter's last layer starts at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return net


def art(side: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (side, side + 3, 3), dtype=np.uint8)
    mask = np.zeros(image.shape[:2], bool)
    mask[side // 4:side // 2, side // 3:side // 2 + 5] = True
    return image, mask


# -- the CPU: pass-throughs ----------------------------------------------------------------


def test_torch_device_and_is_cuda() -> None:
    assert devices.torch_device("cpu") == "cpu"
    assert devices.torch_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert devices.is_cuda("cuda") and devices.is_cuda("cuda:1") and devices.is_cuda(torch.device("cuda", 0))
    assert not devices.is_cuda("cpu") and not devices.is_cuda(torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_cuda_without_a_gpu_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="no GPU"):
        devices.torch_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_configure_backends_changes_nothing_without_a_gpu() -> None:
    def state() -> tuple[Any, ...]:
        return (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.fp32_precision,
                torch.backends.cudnn.conv.fp32_precision)  # type: ignore[attr-defined]

    before = state()
    devices.configure_backends()
    assert state() == before


def test_configure_backends_with_a_gpu_sets_autotuning_and_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    conv = cudnn.conv  # type: ignore[attr-defined]
    before = (cudnn.benchmark, matmul.fp32_precision, conv.fp32_precision)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    try:
        devices.configure_backends()
        assert cudnn.benchmark is True
        assert matmul.fp32_precision == "tf32" and conv.fp32_precision == "tf32"
    finally:
        cudnn.benchmark, matmul.fp32_precision, conv.fp32_precision = before


def test_inference_on_cpu_is_inference_mode_in_fp32_without_autocast() -> None:
    net, x = conv_net().eval(), torch.rand(2, 3, 16, 16)
    with torch.inference_mode():
        expected = net(x)
    with devices.inference("cpu"):
        assert torch.is_inference_mode_enabled() and not autocast_active()
        out = net(x)
    assert out.dtype == torch.float32 and torch.equal(out, expected)
    assert not torch.is_inference_mode_enabled()


def test_autocast_is_a_null_context_on_cpu_when_disabled_or_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(devices.autocast("cpu"), contextlib.nullcontext)
    assert isinstance(devices.autocast("cuda", enabled=False), contextlib.nullcontext)
    monkeypatch.setattr(devices, "_cuda_has_bf16", lambda: True)  # a GPU with bf16, as far as it asks
    assert devices.bf16_wanted("cuda") and not devices.bf16_wanted("cpu")
    monkeypatch.setenv(devices.BF16_ENV, "0")
    assert not devices.bf16_wanted("cuda")
    assert isinstance(devices.autocast("cuda"), contextlib.nullcontext)
    with devices.autocast("cpu"):
        assert not autocast_active()


def test_bf16_needs_native_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_cuda_has_bf16", lambda: False)  # e.g. a T4 or V100
    assert not devices.bf16_wanted("cuda")
    monkeypatch.setattr(devices, "_cpu_has_bf16", lambda: False)  # e.g. a CPU before AVX512-BF16
    assert not devices.cpu_bf16_wanted("cpu")
    assert devices.autocast_precision("cpu", cpu=True) == "fp32"
    assert isinstance(devices.autocast("cpu", cpu=True), contextlib.nullcontext)


def test_cpu_bf16_autocast_only_for_callers_that_ask_and_not_when_switched_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_cpu_has_bf16", lambda: True)
    assert devices.cpu_bf16_wanted("cpu") and not devices.cpu_bf16_wanted("cuda")
    assert devices.autocast_precision("cpu") == "fp32"  # inference and restoration training do not ask
    assert devices.autocast_precision("cpu", enabled=False, cpu=True) == "fp32"
    assert devices.autocast_precision("cpu", cpu=True) == "bf16 autocast"
    with devices.autocast("cpu", cpu=True):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with devices.autocast("cpu"):
        assert not autocast_active()
    monkeypatch.setenv(devices.CPU_BF16_ENV, "0")
    assert devices.autocast_precision("cpu", cpu=True) == "fp32"
    with devices.autocast("cpu", cpu=True):
        assert not autocast_active()


def test_to_device_image_batch_and_prepare_module_are_identities_on_cpu() -> None:
    x = torch.rand(2, 3, 8, 8)
    assert devices.to_device(x, "cpu") is x
    assert devices.image_batch(x, "cpu") is x and x.is_contiguous()
    net = conv_net().train()
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    prepared = devices.prepare_module(net, "cpu")
    assert prepared is net and not net.training
    for name, value in net.state_dict().items():
        assert torch.equal(value, weights[name]) and value.is_contiguous() and value.dtype == torch.float32


def test_maybe_compile_returns_fn_on_cpu_and_when_not_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    def fn(x: Any) -> Any:
        return x

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("torch.compile must not be called")

    monkeypatch.setattr(torch, "compile", refuse)
    assert devices.maybe_compile(fn, "cuda") is fn  # not asked for
    monkeypatch.setenv(devices.COMPILE_ENV, "1")
    assert devices.maybe_compile(fn, "cpu") is fn  # asked for, but the CPU stays eager


def test_maybe_compile_falls_back_when_compiling_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(devices.COMPILE_ENV, "1")

    def fn(x: int) -> int:
        return x + 1

    def no_backend(*_: Any, **__: Any) -> Any:
        raise RuntimeError("no triton")

    monkeypatch.setattr(torch, "compile", no_backend)
    assert devices.maybe_compile(fn, "cuda") is fn

    calls = []

    def breaks_on_call(f: Any) -> Any:
        def compiled(*args: Any) -> Any:
            calls.append(args)
            raise RuntimeError("backend compiler failed")
        return compiled

    monkeypatch.setattr(torch, "compile", breaks_on_call)
    assert devices.maybe_compile(fn, "cuda", example=(1,)) is fn  # fails on the example: eager
    lazy = devices.maybe_compile(fn, "cuda")  # fails at its first real call: eager from then on
    assert lazy(1) == 2 and lazy(5) == 6
    assert len(calls) == 2, "after one failure the compiled function is not tried again"


def test_maybe_compile_uses_the_compiled_function_when_it_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(devices.COMPILE_ENV, "yes")
    used = []

    def compiles(f: Any) -> Any:
        def compiled(*args: Any) -> Any:
            used.append(args)
            return f(*args)
        return compiled

    monkeypatch.setattr(torch, "compile", compiles)
    fast = devices.maybe_compile(lambda x: x * 2, "cuda", example=(3,))
    assert fast(4) == 8 and used == [(3,), (4,)]


# -- the callers, on the CPU: bitwise what they computed before ------------------------------


def test_learned_restoration_on_cpu_is_bitwise_the_plain_fp32_computation() -> None:
    inpainter = load_inpainter(with_weights(InpaintingNet(TINY)).state_dict(), TINY)
    detector = load_detector(with_weights(DamageDetector(TINY), seed=1).state_dict(), TINY)
    image, mask = art()
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.inference_mode():  # the computation as written before workers.devices existed
        filled = ((inpainter(x, torch.from_numpy(mask)[None, None].float()) + 1) * 127.5).round().clamp(0, 255)
        expected_fill = np.where(mask[:, :, None], filled.to(torch.uint8)[0].permute(1, 2, 0).numpy(), image)
        expected_found = (detector(x)[0, 0] >= 0.0).numpy()
    assert np.array_equal(inpaint_learned(inpainter, image, mask, "cpu", share=1.0), expected_fill)
    assert np.array_equal(detect_learned(detector, image, "cpu"), expected_found)
    corrector = load_fade_corrector(with_weights(FadeCorrector(TINY), seed=2).state_dict(), TINY)
    with torch.inference_mode():
        expected_defade = ((corrector(x) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0)
    assert np.array_equal(defade_learned(corrector, image, "cpu"), expected_defade.numpy())
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in inpainter.parameters())


def gan_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), np.arange(16) % 2,
            rng.random((16, 3), dtype=np.float32))


def train_watching_autocast(device: str, mixed: bool) -> tuple[Any, list[bool]]:
    """A 3-step GAN training run, and whether each training forward of G ran under autocast."""
    config = GanConfig(n_classes=2, resolution=32, ngf=8, ndf=8)
    train = TrainConfig(steps=3, batch_size=8, checkpoint_every=100, sample_every=100, seed=2)
    original_forward = Generator.forward
    seen: list[bool] = []

    def spy(self: Generator, *args: Any) -> torch.Tensor:
        if torch.is_grad_enabled():  # training steps, not the sample grid or the standing statistics
            seen.append(torch.is_autocast_enabled(torch.device(device).type))
        return original_forward(self, *args)

    Generator.forward = spy  # type: ignore[method-assign, assignment]
    try:
        result = train_gan(*gan_data(), config, train, device=device, mixed_precision=mixed)
    finally:
        Generator.forward = original_forward  # type: ignore[method-assign]
    assert all(np.isfinite(v) for v in result.final_losses.values())
    assert all(v.dtype == torch.float32 for v in result.g_ema_state.values() if v.is_floating_point())
    return result, seen


def test_gan_training_on_cpu_without_bf16_units_is_the_same_with_or_without_mixed_precision(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_cpu_has_bf16", lambda: False)
    (mixed, seen_mixed), (plain, seen_plain) = (train_watching_autocast("cpu", flag) for flag in (True, False))
    assert seen_mixed and not any(seen_mixed + seen_plain)
    assert mixed.precision == plain.precision == "fp32"
    assert mixed.final_losses == plain.final_losses
    assert all(torch.equal(mixed.g_ema_state[k], plain.g_ema_state[k]) for k in plain.g_ema_state)


def test_gan_training_on_cpu_with_bf16_units_autocasts_the_forward_passes_only_when_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_cpu_has_bf16", lambda: True)  # emulated where the CPU lacks them: still bf16
    for mixed in (True, False):
        result, seen = train_watching_autocast("cpu", mixed)
        assert seen and all(active is mixed for active in seen)
        assert result.precision == ("bf16 autocast" if mixed else "fp32")


def test_restoration_training_on_cpu_is_the_same_with_or_without_mixed_precision() -> None:
    images = [np.random.default_rng(i).integers(0, 256, (36, 40, 3), dtype=np.uint8) for i in range(3)]
    train = RestorationTrainConfig(steps=2, batch_size=2, patch=32, checkpoint_every=100, sample_every=100,
                                   seed=1, adversarial=True)
    mixed = train_restoration(images, TINY, train, mixed_precision=True)
    plain = train_restoration(images, TINY, train, mixed_precision=False)
    assert mixed.final_losses == plain.final_losses
    for state, reference in ((mixed.inpainter_state, plain.inpainter_state),
                             (mixed.detector_state, plain.detector_state), (mixed.fade_state, plain.fade_state)):
        assert all(torch.equal(state[k], reference[k]) for k in reference)


# -- CUDA: the real GPU path ----------------------------------------------------------------


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.double().cpu(), reference.double().cpu()
    return float((value - reference).norm() / reference.norm())


@cuda
def test_cuda_inference_runs_in_bf16_autocast_close_to_fp32() -> None:
    net, x = devices.prepare_module(conv_net(), "cuda"), torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        reference = conv_net().eval()(x)
    with devices.inference("cuda"):
        assert torch.is_inference_mode_enabled() and torch.is_autocast_enabled("cuda")
        assert torch.get_autocast_dtype("cuda") == torch.bfloat16
        out = net(devices.image_batch(x, "cuda"))
    assert out.dtype == torch.bfloat16 and not torch.is_autocast_enabled("cuda")
    assert relative_error(out.float(), reference) < 2e-2


@cuda
def test_cuda_tensors_and_modules_go_channels_last() -> None:
    x = torch.rand(2, 3, 16, 16)
    moved = devices.to_device(x, "cuda")
    batch = devices.image_batch(x, "cuda")
    assert moved.is_cuda and torch.equal(moved.cpu(), x)
    assert batch.is_cuda and batch.is_contiguous(memory_format=torch.channels_last) and torch.equal(batch.cpu(), x)
    net = devices.prepare_module(conv_net().train(), "cuda")
    assert not net.training
    for p in net.parameters():
        assert p.is_cuda and (p.dim() != 4 or p.is_contiguous(memory_format=torch.channels_last))


@cuda
def test_cuda_bf16_switch_turns_autocast_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(devices.BF16_ENV, "0")
    with devices.inference("cuda"):
        assert not torch.is_autocast_enabled("cuda")
    with devices.autocast("cuda"):
        assert not torch.is_autocast_enabled("cuda")


@cuda
def test_cuda_learned_restoration_is_close_to_cpu() -> None:
    inpainter = with_weights(InpaintingNet(TINY))
    detector = with_weights(DamageDetector(TINY), seed=1)
    image, mask = art(96)
    on_cpu = load_inpainter(inpainter.state_dict(), TINY), load_detector(detector.state_dict(), TINY)
    on_gpu = load_inpainter(inpainter.state_dict(), TINY, "cuda"), load_detector(detector.state_dict(), TINY, "cuda")
    filled_cpu, filled_gpu = (inpaint_learned(net, image, mask, dev) for net, dev in ((on_cpu[0], "cpu"),
                                                                                       (on_gpu[0], "cuda")))
    assert np.array_equal(filled_gpu[~mask], image[~mask]), "pixels outside the mask come back exactly"
    assert np.abs(filled_gpu.astype(int) - filled_cpu.astype(int))[mask].mean() < 2.0
    found_cpu, found_gpu = detect_learned(on_cpu[1], image, "cpu"), detect_learned(on_gpu[1], image, "cuda")
    assert found_gpu.dtype == bool and (found_cpu == found_gpu).mean() > 0.97
    # the pipelines load on the CPU and the job's device string is "cuda": moved once, channels_last
    moved = load_inpainter(inpainter.state_dict(), TINY)
    assert np.abs(inpaint_learned(moved, image, mask, "cuda").astype(int) - filled_gpu).max() <= 1
    assert next(moved.parameters()).is_cuda
    assert moved.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    # the fade corrector: one colour map per image, its coefficients from a bf16 network
    corrector = with_weights(FadeCorrector(TINY), seed=2).state_dict()
    defaded_cpu = defade_learned(load_fade_corrector(corrector, TINY), image, "cpu")
    defaded_gpu = defade_learned(load_fade_corrector(corrector, TINY, "cuda"), image, "cuda")
    assert defaded_gpu.shape == image.shape and np.abs(defaded_gpu.astype(int) - defaded_cpu).mean() < 2.0


@cuda
def test_cuda_generator_forward_in_bf16_is_close_to_fp32() -> None:
    torch.manual_seed(0)
    g = Generator(GanConfig(n_classes=4, resolution=64)).eval()
    z, y, a = torch.randn(16, 128), torch.arange(16) % 4, torch.rand(16, 3)
    with torch.inference_mode():
        reference = g(z, y, a)
    fast = devices.prepare_module(g, "cuda")
    with devices.inference("cuda"):
        out = fast(*(devices.to_device(t, "cuda") for t in (z, y, a)))
    assert relative_error(out.float(), reference) < 3e-2


@cuda
def test_cuda_gan_training_autocasts_the_forward_passes_only_when_asked() -> None:
    for mixed in (True, False):
        result, seen = train_watching_autocast("cuda", mixed)
        assert seen and all(active is mixed for active in seen)
        assert result.precision == ("bf16 autocast" if mixed else "fp32")


@cuda
def test_cuda_restoration_training_runs_in_bf16_with_finite_fp32_losses() -> None:
    images = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(4)]
    train = RestorationTrainConfig(steps=3, batch_size=4, patch=32, checkpoint_every=100, sample_every=100,
                                   adversarial=True)
    result = train_restoration(images, TINY, train, device="cuda")
    assert all(np.isfinite(v) for v in result.final_losses.values())
    assert all(v.dtype == torch.float32 for v in result.inpainter_state.values() if v.is_floating_point())


# -- style transfer: the worker's device, as the ONNX package takes it --------------------------


def test_style_networks_map_cuda_to_what_onnxruntime_has(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    from workers.models import style_networks

    def providers(*names: str) -> None:
        monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(names))
        style_networks.onnx_device.cache_clear()

    try:
        providers("CPUExecutionProvider")
        assert [style_networks.onnx_device(d) for d in ("cuda", "cuda:0", "auto", "cpu")] == ["cpu", "cpu", "auto",
                                                                                              "cpu"]
        providers("CUDAExecutionProvider", "CPUExecutionProvider")
        assert [style_networks.onnx_device(d) for d in ("cuda", "cuda:1", "auto")] == ["cuda", "cuda", "auto"]
    finally:
        style_networks.onnx_device.cache_clear()
