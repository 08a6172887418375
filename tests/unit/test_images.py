"""Safe decoding: odd modes become plain RGB, hostile files are refused before decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shared.images import (
    FAST_TO_DECODE,
    SMALLEST_FILE,
    CorruptImage,
    ImageTooLarge,
    NotAnImage,
    decode_image,
    encode_png,
    to_rgb,
)

CAP = 10_000_000


def encoded(image: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "1", "I;16", "I", "F"])
def test_every_mode_decodes_to_rgb(mode: str) -> None:
    image = Image.new("RGB", (20, 10), (200, 100, 50)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode in ("F", "I") else "PNG"
    decoded = decode_image(encoded(image, fmt), CAP)
    assert decoded.image.mode == "RGB" and decoded.image.size == (20, 10)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    decoded = decode_image(encoded(Image.new("I;16", (4, 4), 32768)), CAP)
    assert decoded.image.getpixel((0, 0)) == (128, 128, 128)


def test_transparency_is_composed_over_white() -> None:
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert decode_image(encoded(clear), CAP).image.getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert decode_image(encoded(palette, transparency=0), CAP).image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied_and_metadata_dropped() -> None:
    image = Image.new("RGB", (30, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "SecretCam"
    decoded = decode_image(encoded(image, "JPEG", exif=exif), CAP)
    assert decoded.image.size == (10, 30)
    assert not decoded.image.info and not decoded.image.getexif()
    assert b"SecretCam" not in encode_png(decoded.image)


def test_animated_image_uses_its_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
    assert decode_image(buffer.getvalue(), CAP).image.getpixel((0, 0)) == (255, 0, 0)


@pytest.mark.parametrize("data", [b"", b"GIF89a" + b"\0" * 40, b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                                  b"%PDF-1.7\n", b"SIMPLE  =                    T" + b" " * 50])
def test_unaccepted_formats_are_refused(data: bytes) -> None:
    with pytest.raises(NotAnImage):
        decode_image(data, CAP)


def test_gif_is_not_an_accepted_format() -> None:
    with pytest.raises(NotAnImage):
        decode_image(encoded(Image.new("RGB", (8, 8)), "GIF"), CAP)


def test_pixel_cap_is_checked_from_the_header() -> None:
    big = encoded(Image.new("L", (4000, 3000)))
    with pytest.raises(ImageTooLarge):
        decode_image(big, 10_000_000)
    assert decode_image(big, 12_000_000).width == 4000


def test_truncated_file_is_corrupt() -> None:
    data = encoded(Image.effect_noise((64, 64), 50).convert("RGB"))
    with pytest.raises(CorruptImage):
        decode_image(data[: len(data) // 2], CAP)


def test_to_rgb_returns_a_fresh_image_without_info() -> None:
    image = Image.new("RGB", (2, 2))
    image.info["comment"] = b"hello"
    assert to_rgb(image).info == {}


@pytest.mark.parametrize("row_filter", [SMALLEST_FILE, FAST_TO_DECODE])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "LA", "1"])
def test_encoded_png_decodes_to_the_same_pixels(mode: str, row_filter: int) -> None:
    # encode_png writes L, RGB and RGBA through OpenCV (channel order swapped for it) and other modes
    # through Pillow, both with zlib's run-length strategy: lossless, and the mode kept, in each.
    pixels = np.random.default_rng(3).integers(0, 256, (37, 53, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    decoded = Image.open(io.BytesIO(encode_png(image, row_filter)))
    assert decoded.mode == image.mode
    assert np.array_equal(np.asarray(decoded), np.asarray(image))
