"""Safe image decoding and encoding.

Decoding accepts only allow-listed formats, checks the pixel count from the header before
any pixel is decoded, honours EXIF orientation, converts every mode to RGB explicitly and
drops all incoming metadata. Encoding always writes a fresh file.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import warnings
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")
# glibc's mallopt parameter (malloc.h) and the size from which allocations are mmapped once set.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1024 * 1024


class ImageRejected(Exception):
    """Base for input images we refuse; carries the HTTP status and error code."""

    status = 415
    code = "unsupported_image"


class NotAnImage(ImageRejected):
    status = 415
    code = "unsupported_image"


class CorruptImage(ImageRejected):
    status = 415
    code = "corrupt_image"


class ImageTooLarge(ImageRejected):
    status = 413
    code = "image_too_large"


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, orientation applied, no metadata
    format: str  # the container format the bytes were in
    width: int
    height: int
    sha256: str  # of the bytes as received


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    if not data:
        raise NotAnImage("the file is empty")
    digest = hashlib.sha256(data).hexdigest()
    with warnings.catch_warnings():
        # Pillow only warns between its own limit and twice that; treat it as refusal.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except UnidentifiedImageError:
            raise NotAnImage(f"not an accepted image; send one of {', '.join(ALLOWED_FORMATS)}") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge(f"the image has more than {max_pixels} pixels") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptImage(f"the image header cannot be read: {exc}") from None
        fmt = img.format or "unknown"
        width, height = img.size
        if width < 1 or height < 1:
            raise CorruptImage("the image has no pixels")
        if width * height > max_pixels:
            raise ImageTooLarge(f"{width}x{height} is more than the {max_pixels} pixels accepted")
        try:
            img.seek(0)  # animated files: the first frame is the image
            img.load()
            # In place: a copy of every pixel would double the peak memory of a near-cap image.
            ImageOps.exif_transpose(img, in_place=True)
            rgb = to_rgb(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge(f"the image has more than {max_pixels} pixels") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptImage(f"the image data is truncated or corrupt: {exc}") from None
    return DecodedImage(rgb, fmt, rgb.width, rgb.height, digest)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composed over white.

    The result is a new image without any of the input's metadata, and the only full-size RGB
    copy made: a small file that decodes to nearly ``max_pixels`` costs the input plus one copy.
    """
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit greyscale: scale the range down instead of clipping it at 255.
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif mode == "F":
        # Float images come as 0..1 or as 0..255; scale the former up.
        high = float(img.getextrema()[1])  # type: ignore[arg-type]
        img = (img.point(lambda v: v * 255) if high <= 1.0 else img).convert("L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        # Pasting through the alpha channel onto white gives alpha_composite's pixels over an
        # opaque white image, without its two extra RGBA copies.
        rgb = Image.new("RGB", img.size, (255, 255, 255))
        rgb.paste(img, mask=img.getchannel("A"))
    else:
        rgb = img.convert("RGB")  # a new image; a copy when img is RGB already
    # New images copy nothing of the input but ``info``: emptied, the result carries none of its
    # metadata (EXIF, ICC, XMP, text chunks).
    rgb.info = {}
    return rgb


def return_freed_pixels_to_the_os() -> bool:
    """Make this process hand the memory of freed image buffers back to the OS at once. For
    servers that decode untrusted images in threads (the API); not for the workers, whose torch
    allocates large tensors all the time. False where the C library has no ``mallopt`` (not glibc).

    By default glibc raises its mmap threshold to the largest block freed so far (up to 32 MB);
    from then on Pillow's image blocks come from per-thread heaps, which keep them when freed, so
    a gthread worker's resident memory grows towards threads x its largest decode and stays
    there (measured: 113 MB -> 1.5 GB after 24 uploads of a 46 KB, 36 M pixel PNG, 4 at a time).
    A fixed threshold maps every allocation of 1 MB and more on its own and unmaps it when freed
    (the same uploads: about 120 MB afterwards), for a page fault per 4 KB touched.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


# PNGs are written by OpenCV's libpng encoder: one row filter on every row, then deflate at level 1
# with zlib's run-length strategy. With the Paeth filter, on photos and procedural paintings at
# 256-1024 px, it wrote files within 2 % of Pillow's adaptive filters with the same strategy, 1.6x
# faster (80 ms -> 50 ms for a 1024 px photo); bench.png_encode measures it against Pillow's default
# in every ``make bench``. Lossless either way. Modes OpenCV cannot take as they are go through Pillow.
PNG_PARAMS = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE)
_TO_OPENCV_ORDER = {"L": None, "RGB": cv2.COLOR_RGB2BGR, "RGBA": cv2.COLOR_RGBA2BGRA}
# The row filters: Paeth writes the smallest files (results, which people download); Up writes a
# 1024 px photo 14 % larger (procedural paintings 7 %) that decodes in 28 ms instead of 48 (uploads:
# written once, decoded by every job that reads them).
SMALLEST_FILE = cv2.IMWRITE_PNG_FILTER_PAETH
FAST_TO_DECODE = cv2.IMWRITE_PNG_FILTER_UP


def encode_png(img: Image.Image, row_filter: int = SMALLEST_FILE) -> bytes:
    """A fresh PNG of ``img``, without metadata; ``row_filter`` applies to L, RGB and RGBA images."""
    if img.mode not in _TO_OPENCV_ORDER:
        buffer = io.BytesIO()
        img.save(buffer, format="PNG", compress_level=4, compress_type=zlib.Z_RLE)
        return buffer.getvalue()
    pixels = np.asarray(img)
    conversion = _TO_OPENCV_ORDER[img.mode]
    if conversion is not None:
        pixels = cv2.cvtColor(pixels, conversion)
    encoded, data = cv2.imencode(".png", pixels, (*PNG_PARAMS, cv2.IMWRITE_PNG_FILTER, row_filter))
    if not encoded:
        raise ValueError(f"OpenCV could not encode a {img.mode} image of {img.size} as PNG")
    return data.tobytes()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
