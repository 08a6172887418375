"""Which torch device a job runs on, and how a model runs well there.

The device comes from the worker's ``ARTFORGE_DEVICE`` setting (``torch_device``). On a CUDA
device inference runs in bf16 autocast with channels_last activations, cuDNN picks its fastest
kernels (``configure_backends``), host tensors travel through pinned memory, and
``torch.compile`` is tried where it is asked for and falls back to eager on any failure. On the
CPU every helper here is a plain pass-through, so the CPU path computes exactly what it always
did (fp32, eager, contiguous).

GAN training is the one exception on the CPU: where the CPU multiplies bf16 natively
(AVX512-BF16 or AMX), its forward passes run in bf16 autocast too (``autocast(..., cpu=True)``),
1.5x the steps a second at 64 px on 2 cores (bench/RESULTS.md). Inference on the CPU stays fp32.

Three switches, read from the environment at each call:
- ``ARTFORGE_CUDA_BF16=0`` turns bf16 autocast off on CUDA (inference and training then run in
  fp32, with TF32 matrix units): for a numerics check, or a GPU without bf16 (before Ampere,
  where bf16 is also off without it).
- ``ARTFORGE_CPU_BF16=0`` turns the CPU's bf16 training autocast off (fp32, as on a CPU without
  bf16 units).
- ``ARTFORGE_TORCH_COMPILE=1`` lets ``maybe_compile`` compile models for CUDA (compilation costs
  seconds to minutes per shape, so it pays only for long-lived workers with steady shapes).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

COMPILE_ENV = "ARTFORGE_TORCH_COMPILE"
BF16_ENV = "ARTFORGE_CUDA_BF16"
CPU_BF16_ENV = "ARTFORGE_CPU_BF16"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def torch_device(requested: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; "cuda" without a GPU is an error
    (a worker configured for a GPU should fail loudly, not crawl on the CPU)."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("ARTFORGE_DEVICE asks for cuda but no GPU is visible")
    return requested


def is_cuda(device: str | torch.device) -> bool:
    return str(device).startswith("cuda")


def configure_backends() -> None:
    """Once per worker process: cuDNN autotuning and TF32 matmuls/convolutions when a GPU is
    visible; nothing at all on a machine without one."""
    import torch

    if not torch.cuda.is_available():
        return
    torch.backends.cudnn.benchmark = True
    matmul, conv = torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        # torch >= 2.9: the per-backend precision settings (the allow_tf32 flags are deprecated,
        # and mixing the two APIs is refused)
        matmul.fp32_precision = "tf32"
        conv.fp32_precision = "tf32"
    else:
        matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return value in _TRUE if default is False else value not in _FALSE


@functools.cache
def _cuda_has_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and bool(torch.cuda.is_bf16_supported(including_emulation=False))


def bf16_wanted(device: str | torch.device) -> bool:
    """bf16 autocast applies: a CUDA device with native bf16, and ``ARTFORGE_CUDA_BF16`` not off."""
    return is_cuda(device) and _env_flag(BF16_ENV, True) and _cuda_has_bf16()


@functools.cache
def _cpu_has_bf16() -> bool:
    import torch

    # torch.cpu's own feature probes (underscored, but what torch's CPU autocast tests use)
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def cpu_bf16_wanted(device: str | torch.device) -> bool:
    """bf16 training autocast applies on this CPU: native bf16 units, and ``ARTFORGE_CPU_BF16``
    not off. Without the units autocast would emulate bf16, slower than fp32."""
    return not is_cuda(device) and _env_flag(CPU_BF16_ENV, True) and _cpu_has_bf16()


@contextlib.contextmanager
def inference(device: str | torch.device) -> Iterator[None]:
    """``torch.inference_mode``, plus bf16 autocast on CUDA (outputs can come back in bf16:
    callers cast them to float before thresholds or pixels, as ``to_uint8`` does)."""
    import torch

    with torch.inference_mode():
        if bf16_wanted(device):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
        else:
            yield


def autocast(device: str | torch.device, enabled: bool = True,
             cpu: bool = False) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for a training step's forward passes on CUDA (``bf16_wanted``), and with
    ``cpu`` on a CPU with bf16 units (``cpu_bf16_wanted``); a no-op context elsewhere or when
    ``enabled`` is false. Call it anew for each ``with`` block. Run ``backward`` outside it, and
    compute losses on ``.float()`` outputs."""
    import torch

    if autocast_precision(device, enabled, cpu) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda" if is_cuda(device) else "cpu", dtype=torch.bfloat16)


def autocast_precision(device: str | torch.device, enabled: bool = True, cpu: bool = False) -> str:
    """What ``autocast`` with the same arguments runs forward passes in: "bf16 autocast" or "fp32"
    (a model card records it)."""
    wanted = bf16_wanted(device) or (cpu and cpu_bf16_wanted(device))
    return "bf16 autocast" if enabled and wanted else "fp32"


def to_device(tensor: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """A host tensor on ``device``: through pinned memory and a non-blocking copy on CUDA (the
    copy is ordered on the current stream, so later work on that stream sees it)."""
    if not is_cuda(device):
        return tensor.to(device)
    if tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def image_batch(tensor: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """An NCHW batch on ``device``, channels_last on CUDA (where cuDNN's convolutions prefer it)."""
    import torch

    moved = to_device(tensor, device)
    return moved.contiguous(memory_format=torch.channels_last) if is_cuda(device) else moved


def prepare_module(module: torch.nn.Module, device: str | torch.device) -> torch.nn.Module:
    """``module`` on ``device`` in eval mode, channels_last on CUDA."""
    import torch

    module = module.to(device).eval()
    if is_cuda(device):
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module


def compile_wanted() -> bool:
    return _env_flag(COMPILE_ENV, False)


class _EagerFallback:
    """Calls the compiled function; on its first failure (compilation happens at the first call
    of each new shape, so errors surface there) logs it and calls ``eager`` from then on."""

    def __init__(self, compiled: Any, eager: Any):
        self.compiled, self.eager, self.failed = compiled, eager, False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            try:
                return self.compiled(*args, **kwargs)
            except Exception:  # no Triton, an unsupported op, a backend bug: eager it is
                log.warning("torch.compile failed; running eagerly from now on", exc_info=True)
                self.failed = True
        return self.eager(*args, **kwargs)


def maybe_compile(fn: Any, device: str | torch.device, example: tuple[Any, ...] | None = None) -> Any:
    """``torch.compile(fn)`` on CUDA when ``ARTFORGE_TORCH_COMPILE`` asks for it; ``fn`` itself
    otherwise. Compiling, a first call on ``example``, or any later compiled call that fails
    falls back to ``fn``: a model that cannot be compiled still serves, eagerly."""
    if not (compile_wanted() and is_cuda(device)):
        return fn
    import torch

    try:
        wrapped = _EagerFallback(torch.compile(fn), fn)
    except Exception:
        log.warning("torch.compile failed; running eagerly", exc_info=True)
        return fn
    if example is not None:
        wrapped(*example)
        if wrapped.failed:
            return fn
    return wrapped
