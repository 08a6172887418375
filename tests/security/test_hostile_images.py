"""Hostile images through POST /v1/uploads, on a stack of its own (one gunicorn worker, so the
memory measured is one process's): each gets its documented answer, and the API's memory stays
bounded across the whole set.

Documented answers: 413 ``image_too_large`` for more pixels than ``ARTFORGE_MAX_IMAGE_PIXELS``
(checked from the header, before any pixel is decoded: a bomb costs nothing); 415
``unsupported_image`` for anything but PNG, JPEG, WebP and TIFF (GIF, FITS, SVG, PDF... are
refused before a decoder parses them, whatever their file name says), 415 ``corrupt_image`` for
truncated files and for PNG text or ICC chunks that inflate past Pillow's chunk limit; accepted
odd images are stored as plain 8-bit RGB with EXIF orientation applied. Animated PNG and WebP:
the first frame is the image; animated GIF: refused like every GIF. Tiny and extreme sizes are
accepted as uploads; a job that cannot use them answers 422 ``image_too_small``.

Covered in tests/integration/test_bad_input.py and not repeated here: plain text, zero bytes, SVG
and PDF named .png and a PNG bomb (refused), a truncated PNG (415), a 1x1 content image (422 at
submit), CMYK JPEG, palette PNG with alpha, 16-bit grey PNG, WebP and TIFF (accepted). Its
refused files join the memory measurement below. Decoding itself is unit-tested in
tests/unit/test_images.py.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

import pytest
from PIL import Image

from deploy.devstack import Stack
from shared.objects import ObjectStore
from tests.conftest import ApiClient, image_bytes
from tests.integration.test_bad_input import BAD_UPLOADS, assert_error
from tests.security.conftest import stack_with
from tests.security.process_memory import api_workers_rss_mb

TENANT = "hostile"
# Retained growth of the API worker's resident memory allowed across the hostile set (the set
# holds one legitimate near-cap image, whose decoding needs a few hundred MB while it runs), and
# across a second pass of the same set (nothing may accumulate).
RSS_GROWTH_MB = 100
RSS_SECOND_PASS_MB = 40
RED, BLUE = (255, 0, 0), (0, 0, 255)


# -- hostile files, built byte by byte where Pillow would not write them --------------------------


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def grey_png(width: int, height: int, value: int = 128) -> bytes:
    """A real 8-bit grey PNG of any size, compressed row by row (a 6000x6000 one is 46 KB)."""
    deflate = zlib.compressobj(9)
    row = b"\x00" + bytes([value]) * width
    rows = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")


def rgb48_png(colour: tuple[int, int, int], size: int = 8) -> bytes:
    """16 bits per channel RGB, which Pillow reads but cannot write."""
    row = b"\x00" + struct.pack(">HHH", *colour) * size
    header = struct.pack(">IIBBBBB", size, size, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(row * size))
            + png_chunk(b"IEND", b""))


def png_with_inflating_chunk(tag: bytes) -> bytes:
    """A valid 8x8 PNG carrying a zTXt or iCCP chunk that inflates to 200 MB (from 200 KB)."""
    plain = image_bytes(Image.new("RGB", (8, 8)))
    bomb = zlib.compress(b"\0" * (200 * 1024 * 1024), 9)
    chunk = png_chunk(tag, (b"Comment\0\0" if tag == b"zTXt" else b"icc\0\0") + bomb)
    return plain[:33] + chunk + plain[33:]  # right after IHDR


def gif_bomb(width: int = 65535, height: int = 65535) -> bytes:
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b","
            + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00;")


def tiff_bomb(width: int, height: int) -> bytes:
    """A little-endian TIFF whose one deflated strip is a few bytes, declaring width x height."""
    strip = zlib.compress(b"\0" * 4096)
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1), (273, 4, 0),
               (277, 3, 1), (278, 4, height), (279, 4, len(strip))]
    strip_offset = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = strip_offset if tag == 273 else value
        ifd += struct.pack("<HHIHH", tag, kind, 1, value, 0) if kind == 3 else struct.pack("<HHII", tag, kind, 1, value)
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + strip


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(image_bytes(Image.new("RGB", (16, 16), (1, 2, 3)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    data = bytearray(image_bytes(Image.new("RGB", (16, 16), (1, 2, 3)), "WEBP", lossless=True))
    at = data.index(b"VP8L") + 9  # after the chunk header and the 0x2f signature: 14 bits each, minus one
    bits = int.from_bytes(data[at:at + 4], "little") & ~((1 << 28) - 1)
    data[at:at + 4] = (bits | (width - 1) | ((height - 1) << 14)).to_bytes(4, "little")
    return bytes(data)


def fits() -> bytes:
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    2",
             "NAXIS1  =                    4", "NAXIS2  =                    4", "END"]
    return b"".join(card.ljust(80).encode() for card in cards).ljust(2880, b" ") + b"\0" * 2880


def animated(fmt: str, **save: object) -> bytes:
    frames = [Image.new("RGB", (40, 40), RED), Image.new("RGB", (40, 40), BLUE)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=100, **save)
    return buffer.getvalue()


def truncated(fmt: str, **save: object) -> bytes:
    noise = Image.effect_noise((128, 128), 60).convert("RGB")
    data = image_bytes(noise, fmt, **save)
    return data[: len(data) * 2 // 3]


def exif_rotated_jpeg(orientation: int) -> bytes:
    """60x20 as stored: red left half, blue right half; displayed after ``orientation``."""
    image = Image.new("RGB", (60, 20), RED)
    image.paste(BLUE, (30, 0, 60, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return image_bytes(image, "JPEG", exif=exif.tobytes(), quality=95)


# name: (bytes, status, accepted error codes)
REFUSED: dict[str, tuple[bytes, int, tuple[str, ...]]] = {
    "gif_bomb": (gif_bomb(), 415, ("unsupported_image",)),  # GIF is not accepted at all
    "tiff_bomb": (tiff_bomb(100_000, 100_000), 413, ("image_too_large",)),
    "tiff_over_our_cap": (tiff_bomb(7000, 7000), 413, ("image_too_large",)),  # under Pillow's own limit
    "jpeg_bomb": (jpeg_claiming(65_000, 65_000), 413, ("image_too_large",)),
    "jpeg_over_our_cap": (jpeg_claiming(7000, 7000), 413, ("image_too_large",)),
    "webp_bomb": (webp_claiming(16_383, 16_383), 413, ("image_too_large",)),
    "png_over_our_cap": (grey_png(6400, 6400), 413, ("image_too_large",)),  # 40.96 M pixels, 52 KB
    "png_ztxt_bomb": (png_with_inflating_chunk(b"zTXt"), 415, ("corrupt_image",)),
    "png_iccp_bomb": (png_with_inflating_chunk(b"iCCP"), 415, ("corrupt_image",)),
    "fits_named_png": (fits(), 415, ("unsupported_image",)),
    "animated_gif": (animated("GIF"), 415, ("unsupported_image",)),
    "bmp_named_png": (image_bytes(Image.new("RGB", (8, 8)), "BMP"), 415, ("unsupported_image",)),
    # A truncated TIFF whose directory was written after its strips cannot even be identified.
    "truncated_jpeg": (truncated("JPEG"), 415, ("corrupt_image",)),
    "truncated_webp": (truncated("WEBP"), 415, ("corrupt_image",)),
    "truncated_tiff": (truncated("TIFF"), 415, ("corrupt_image",)),
    "truncated_deflate_tiff": (truncated("TIFF", compression="tiff_deflate"), 415,
                               ("corrupt_image", "unsupported_image")),
}

NEAR_CAP = (6000, 6000)  # 36 M pixels, under the 40 M cap, from a 46 KB file


@pytest.fixture(scope="module")
def hostile_stack(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack_with(servers, tmp_path_factory.mktemp("hostile"), {}) as stack:
        yield stack


@pytest.fixture(scope="module")
def uploader(hostile_stack: Stack) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{hostile_stack.api_port}", hostile_stack.create_key(TENANT))


def stored(stack: Stack, upload_id: str) -> Image.Image:
    """The normalised PNG the upload left in the uploads bucket."""
    settings = stack.settings()
    data = ObjectStore(settings).get_bytes(settings.bucket_uploads, f"{TENANT}/{upload_id}.png")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def accepted(client: ApiClient, data: bytes, name: str = "image.png") -> dict[str, object]:
    response = client.upload(data, name)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_file_gets_its_documented_refusal(uploader: ApiClient, name: str) -> None:
    data, status, codes = REFUSED[name]
    error = assert_error(uploader.upload(data, "picture.png"), status)
    assert error["code"] in codes, error


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_png_and_webp_keep_their_first_frame(hostile_stack: Stack, uploader: ApiClient, fmt: str) -> None:
    upload = accepted(uploader, animated(fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    assert (upload["format"], upload["width"], upload["height"]) == (fmt, 40, 40)
    image = stored(hostile_stack, str(upload["id"]))
    assert image.mode == "RGB" and image.getpixel((20, 20)) == RED
    assert getattr(image, "n_frames", 1) == 1


@pytest.mark.parametrize(("orientation", "size", "top_left", "bottom_right"), [
    (6, (20, 60), RED, BLUE),  # rotate 90 degrees clockwise to display: the left half goes on top
    (8, (20, 60), BLUE, RED),  # 90 degrees counter-clockwise: the right half goes on top
    (3, (60, 20), BLUE, RED),  # 180 degrees
])
def test_exif_orientation_is_honoured_in_the_stored_size_and_pixels(
        hostile_stack: Stack, uploader: ApiClient, orientation: int, size: tuple[int, int],
        top_left: tuple[int, int, int], bottom_right: tuple[int, int, int]) -> None:
    upload = accepted(uploader, exif_rotated_jpeg(orientation), "photo.jpg")
    assert (upload["width"], upload["height"]) == size
    image = stored(hostile_stack, str(upload["id"]))
    assert image.size == size
    assert not image.getexif(), "no EXIF (and no orientation to apply twice) in the stored image"

    def near(pixel: object, colour: tuple[int, int, int]) -> bool:
        return isinstance(pixel, tuple) and max(abs(a - b) for a, b in zip(pixel, colour, strict=True)) <= 12

    assert near(image.getpixel((2, 2)), top_left)
    assert near(image.getpixel((size[0] - 3, size[1] - 3)), bottom_right)


def test_odd_modes_are_stored_as_the_colours_they_show(hostile_stack: Stack, uploader: ApiClient) -> None:
    # 16-bit RGB: the high byte of each channel.
    image = stored(hostile_stack, str(accepted(uploader, rgb48_png((0x8000, 0x4000, 0xFFFF)))["id"]))
    assert image.getpixel((0, 0)) == (128, 64, 255)
    # CMYK JPEG: the colour survives the trip through CMYK (Adobe's inverted ink values included).
    cmyk = image_bytes(Image.new("RGB", (32, 32), (220, 30, 30)).convert("CMYK"), "JPEG", quality=95)
    upload = accepted(uploader, cmyk, "print.jpg")
    assert upload["format"] == "JPEG"
    pixel = stored(hostile_stack, str(upload["id"])).getpixel((16, 16))
    assert isinstance(pixel, tuple) and max(abs(a - b) for a, b in zip(pixel, (220, 30, 30), strict=True)) <= 6
    # Palette PNG with a tRNS chunk: the transparent entry becomes white, the opaque one keeps its colour.
    palette = Image.new("P", (4, 2), 0)
    palette.putpalette([255, 0, 0, 0, 200, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    image = stored(hostile_stack, str(accepted(uploader, image_bytes(palette, "PNG", transparency=0))["id"]))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((1, 0)) == (0, 200, 0)


@pytest.mark.parametrize("size", [(1, 1), (50_000, 1), (1, 50_000)])
def test_extreme_sizes_upload_and_a_job_refuses_them_with_422(uploader: ApiClient, size: tuple[int, int]) -> None:
    upload = accepted(uploader, grey_png(*size))
    assert (upload["width"], upload["height"]) == size
    response = uploader.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                                "params": {"style": "bold-ink"}})
    assert_error(response, 422, "image_too_small")


def test_a_near_cap_image_from_a_small_file_is_accepted(uploader: ApiClient) -> None:
    data = grey_png(*NEAR_CAP)
    assert len(data) < 64 * 1024
    upload = accepted(uploader, data)
    assert (upload["width"], upload["height"]) == NEAR_CAP


def hostile_set() -> list[tuple[str, bytes]]:
    """Everything above and test_bad_input's refused files, one pass's worth."""
    files = [(name, data) for name, (data, _, _) in REFUSED.items()]
    files += [(f"bad_input:{name}", data) for name, (data, _, _) in BAD_UPLOADS.items()]
    files += [("apng", animated("PNG")), ("animated_webp", animated("WEBP", lossless=True)),
              ("rgb48", rgb48_png((1, 2, 3))), ("exif_rotated", exif_rotated_jpeg(6)),
              ("1x1", grey_png(1, 1)), ("50000x1", grey_png(50_000, 1)), ("near_cap", grey_png(*NEAR_CAP))]
    return files


def test_api_memory_stays_bounded_across_the_hostile_set(hostile_stack: Stack, uploader: ApiClient) -> None:
    accepted(uploader, image_bytes(Image.new("RGB", (64, 64), RED)))  # warm: imports, connections
    before = api_workers_rss_mb(hostile_stack)
    files = hostile_set()

    def one_pass() -> None:
        for name, data in files:
            response = uploader.upload(data, "picture.png")
            assert response.status_code in (201, 413, 415), (name, response.status_code, response.text)

    one_pass()
    after_first = api_workers_rss_mb(hostile_stack)
    one_pass()
    after_second = api_workers_rss_mb(hostile_stack)
    peak = api_workers_rss_mb(hostile_stack, "VmHWM")
    print(f"\nAPI worker RSS MB over {len(files)} hostile files x2: before {before}, after one pass {after_first}, "
          f"after two {after_second}, peak {peak}")
    for pid, start in before.items():
        assert after_first[pid] - start <= RSS_GROWTH_MB, (pid, start, after_first[pid])
        assert after_second[pid] - after_first[pid] <= RSS_SECOND_PASS_MB, (pid, after_first[pid], after_second[pid])
