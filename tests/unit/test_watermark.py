"""The invisible watermark: payload round trip, robustness to JPEG q75 and 0.5x resizing, image
quality (PSNR), and how often unrelated images are claimed (false positives).

Run with ``-s`` to see the measured figures; the assertions hold them to the stated floors.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from shared.marks import watermark
from shared.marks.perceptual import PHASH_MATCH_DISTANCE, perceptual_hashes
from shared.provenance import hamming
from workers.data.procedural import make_dataset
from workers.metrics.restoration import psnr

PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "brick", "grass", "gravel", "immunohistochemistry",
          "moon", "hubble_deep_field", "retina", "coins", "clock", "cell", "page", "text", "colorwheel")


def photo(name: str) -> Image.Image:
    pixels = getattr(skdata, name)()
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]))


def photo_crops(size: int, per_photo: int, seed: int) -> list[Image.Image]:
    """Square crops at random places and scales, resized to ``size``: many photographs from few."""
    rng = np.random.default_rng(seed)
    crops = []
    for name in PHOTOS:
        img = photo(name)
        for _ in range(per_photo):
            side = int(min(img.size) * rng.uniform(0.45, 1.0))
            x, y = int(rng.integers(0, img.width - side + 1)), int(rng.integers(0, img.height - side + 1))
            crops.append(img.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.LANCZOS))
    return crops


def procedural(per_style: int, size: int, seed: int) -> list[Image.Image]:
    return [Image.fromarray(pixels) for pixels in make_dataset(per_style, size, seed)[0]]


def jpeg(img: Image.Image, quality: int = 75) -> Image.Image:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def half(img: Image.Image, resample: Image.Resampling = Image.Resampling.BICUBIC) -> Image.Image:
    return img.resize((img.width // 2, img.height // 2), resample)


ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "none": lambda img: img,
    "jpeg75": jpeg,
    "half_bicubic": half,
    "half_bilinear": lambda img: half(img, Image.Resampling.BILINEAR),
    "half_lanczos": lambda img: half(img, Image.Resampling.LANCZOS),
    "half_then_jpeg75": lambda img: jpeg(half(img)),
    "jpeg75_then_half": lambda img: half(jpeg(img)),
}


@pytest.fixture(scope="module")
def corpus() -> list[Image.Image]:
    """Photographs and every procedural style at the smallest supported size and at 512 px."""
    return (photo_crops(256, 1, seed=1)[:10] + procedural(1, 256, seed=11)
            + photo_crops(512, 1, seed=2)[10:16] + procedural(1, 512, seed=12))


@pytest.fixture(scope="module")
def marked(corpus: list[Image.Image]) -> list[tuple[Image.Image, Image.Image, int]]:
    rng = np.random.default_rng(5)
    out = []
    for img in corpus:
        payload = int(rng.integers(0, 1 << watermark.PAYLOAD_BITS))
        out.append((img, watermark.embed(img, payload), payload))
    return out


def test_payload_round_trips_on_the_marked_image(marked: list[tuple[Image.Image, Image.Image, int]]) -> None:
    for _, img, payload in marked:
        assert watermark.detect(img) == (payload, pytest.approx(watermark.read(img).confidence))
        assert watermark.read(img).payload == payload


def test_marking_keeps_psnr_near_or_above_38_db(marked: list[tuple[Image.Image, Image.Image, int]]) -> None:
    scores = np.array([psnr(np.asarray(original), np.asarray(img)) for original, img, _ in marked])
    print(f"\nwatermark PSNR over {len(scores)} images: mean {scores.mean():.1f} dB, min {scores.min():.1f}, "
          f"share >= 38 dB {np.mean(scores >= 38):.2f}")
    assert scores.mean() >= 41.0
    assert scores.min() >= 37.0
    assert np.mean(scores >= 38) >= 0.9


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_payload_survives_jpeg_q75_and_half_size(marked: list[tuple[Image.Image, Image.Image, int]],
                                                 attack: str) -> None:
    accuracies, found = [], []
    for _, img, _ in marked:
        reference = watermark.codeword(img)
        attacked = ATTACKS[attack](img)
        accuracies.append(np.mean(np.sign(watermark.soft_bits(attacked)) == reference))
    for _, img, payload in marked:
        found.append(watermark.detect(ATTACKS[attack](img))[0] == payload)
    acc = np.array(accuracies)
    print(f"\n{attack}: payload recovered {np.mean(found):.3f} of {len(found)}; raw coded-bit accuracy "
          f"mean {acc.mean():.4f} min {acc.min():.4f} (the code corrects the rest)")
    assert all(found)
    assert acc.min() >= 0.9


def test_a_mark_whose_costliest_bits_fall_together_still_reads_back() -> None:
    """The embedder leaves the few coded bits that are costliest to impose for the code to repair.
    Taken wherever they fell, they could bunch up where the code cannot repair them: this painting's
    mark for this payload (found by a search, about 1 in 4,000 at 256 px; 1 in 200 on a 512 px
    style transfer) did not read back even as stored."""
    image, payload = procedural(1, 256, seed=12)[6], 4215704086
    marked = watermark.embed(image, payload)
    assert watermark.detect(marked)[0] == payload
    assert watermark.detect(jpeg(half(marked)))[0] == payload


def test_perceptual_hash_of_a_copy_stays_within_the_match_distance(
        marked: list[tuple[Image.Image, Image.Image, int]]) -> None:
    distances = []
    for _, img, _ in marked:
        stored = perceptual_hashes(img)["phash"]
        for attack in ("jpeg75", "half_bicubic", "half_then_jpeg75"):
            distances.append(hamming(stored, perceptual_hashes(ATTACKS[attack](img))["phash"]))
    within = np.mean(np.array(distances) <= PHASH_MATCH_DISTANCE)
    print(f"\npHash distance of attacked copies: median {np.median(distances):.0f}, max {max(distances)}, "
          f"share within {PHASH_MATCH_DISTANCE}: {within:.3f}")
    # Flat or striped pictures have almost no energy in pHash's 8x8 DCT block: its bits are then
    # the signs of near-zero coefficients and flip under any change. The watermark covers those.
    assert within >= 0.9


def test_unrelated_images_are_not_claimed() -> None:
    """>= 200 images never marked (procedural art and photographs), each read with 3 keys."""
    unrelated = procedural(26, 256, seed=99) + photo_crops(256, 4, seed=98)
    assert len(unrelated) >= 200
    keys = (watermark.DEFAULT_KEY, 7, 2024)
    claims, confidences = 0, []
    for img in unrelated:
        for key in keys:
            found = watermark.read(img, key=key)
            claims += found.payload is not None
            confidences.append(found.confidence)
    trials = len(unrelated) * len(keys)
    print(f"\nfalse positives: {claims} of {trials} reads of {len(unrelated)} unrelated images "
          f"(rate {claims / trials:.4f}; designed 2**-24 = 6e-8); confidence max {max(confidences):.3f}")
    assert claims == 0


def test_unrelated_images_sit_far_apart_in_phash() -> None:
    images = procedural(8, 256, seed=3) + photo_crops(256, 1, seed=4)
    hashes = [perceptual_hashes(img)["phash"] for img in images]
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]]
    print(f"\npHash distance between unrelated images: min {min(distances)}, "
          f"share <= {PHASH_MATCH_DISTANCE}: {np.mean(np.array(distances) <= PHASH_MATCH_DISTANCE):.4f}")
    # Procedural images of one style can be near twins; the verify route checks the watermark first.
    assert np.mean(np.array(distances) <= PHASH_MATCH_DISTANCE) < 0.01


def test_a_different_key_does_not_read_the_payload(marked: list[tuple[Image.Image, Image.Image, int]]) -> None:
    for _, img, _ in marked[:6]:
        assert watermark.detect(img, key=12345)[0] is None


def test_marking_again_replaces_the_payload(marked: list[tuple[Image.Image, Image.Image, int]]) -> None:
    _, img, payload = marked[0]
    again = watermark.embed(img, payload ^ 0xFFFF)
    assert watermark.detect(again)[0] == payload ^ 0xFFFF


def test_payload_must_fit_in_32_bits() -> None:
    img = Image.new("RGB", (256, 256), (128, 128, 128))
    for bad in (-1, 1 << watermark.PAYLOAD_BITS):
        with pytest.raises(ValueError, match="32 bits"):
            watermark.embed(img, bad)
    for edge in (0, (1 << watermark.PAYLOAD_BITS) - 1):
        assert watermark.detect(watermark.embed(procedural(1, 256, seed=0)[1], edge))[0] == edge


def test_images_too_small_to_hold_the_mark_come_back_unchanged() -> None:
    tiny = procedural(1, 48, seed=2)[0]
    assert np.array_equal(np.asarray(watermark.embed(tiny, 5)), np.asarray(tiny))
    assert watermark.detect(watermark.embed(tiny, 5))[0] is None


def test_any_mode_and_shape_is_accepted() -> None:
    rgba = procedural(1, 320, seed=4)[5].convert("RGBA").resize((320, 256))
    out = watermark.embed(rgba, 77)
    assert out.mode == "RGB" and out.size == (320, 256)
    assert watermark.detect(half(out))[0] == 77
    grey = watermark.embed(photo("camera").convert("L"), 78)
    assert watermark.detect(jpeg(grey))[0] == 78


@pytest.mark.parametrize("size", [(64, 300), (266, 200), (520, 300), (1000, 300)])
def test_non_square_and_odd_sized_pictures_read_back(size: tuple[int, int]) -> None:
    """Sample grids and other odd shapes: the change is worked out on a smaller copy of such a
    picture, which must keep enough of each side to hold the band."""
    tiles = procedural(3, 64, seed=6)
    grid = Image.new("RGB", (6 * 64, 3 * 64))
    for i, tile in enumerate(tiles):
        grid.paste(tile, ((i % 6) * 64, (i // 6) * 64))
    for payload in (3, 2**32 - 5):
        picture = grid.resize(size, Image.Resampling.BILINEAR)
        assert watermark.detect(watermark.embed(picture, payload))[0] == payload
