"""PNG encoding of results: the service's encoder against Pillow's default, same pixels.

Measured: ``shared.images.encode_png`` (OpenCV's libpng: the Paeth filter, deflate level 1 with
zlib's run-length strategy) of a photo and of a procedural painting at 512 and 1024 px, in this process.
Baseline: Pillow's default PNG encoder (level 6, default strategy) on the same image. Both are
lossless (checked: the pixels decode back identical); the note gives the file sizes, since a
faster encoder that wrote much larger files would only move the cost to S3 and downloads.
The two alternate, run by run, after a warm-up; medians of ``--runs`` are reported.

    python -m bench.png_encode [--runs 9]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from bench.common import Figure, command, median, photo, print_figures

MODULE = "bench.png_encode"
SIDES = (512, 1024)
WARMUP_RUNS = 2


def pillow_default(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def procedural(side: int) -> Image.Image:
    from workers.data.procedural import make_dataset

    images, _ = make_dataset(1, side, seed=3)
    return Image.fromarray(images[0])


def lossless(image: Image.Image, png: bytes) -> bool:
    return bool(np.array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), np.asarray(image)))


def timed(encode: Callable[[Image.Image], bytes], image: Image.Image) -> tuple[float, bytes]:
    started = time.perf_counter()
    data = encode(image)
    return time.perf_counter() - started, data


def measure(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    from shared.images import encode_png

    figures = []
    for side in SIDES:
        for what, image in (("photo", photo(side)), ("procedural painting", procedural(side))):
            times: dict[str, list[float]] = {"service": [], "default": []}
            sizes: dict[str, int] = {}
            for run in range(WARMUP_RUNS + args.runs):
                for name, encode in (("service", encode_png), ("default", pillow_default)):
                    seconds, data = timed(encode, image)
                    sizes[name] = len(data)
                    if run >= WARMUP_RUNS:
                        times[name].append(seconds)
                    if run == 0 and not lossless(image, data):
                        raise AssertionError(f"{name} encoder changed the pixels of the {what}")
            figures.append(Figure(
                f"PNG encode, {side} px {what}", median(times["service"]) * 1000, median(times["default"]) * 1000,
                "ms", "Pillow's default PNG encoder", higher_is_better=False, command=command(MODULE, argv),
                note=f"median of {args.runs}; {sizes['service'] / 1024:.0f} KiB vs {sizes['default'] / 1024:.0f} KiB "
                     f"(size ratio {sizes['service'] / sizes['default']:.3f}); both lossless"))
    return figures


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    return measure(parse_args(argv), argv)


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
