"""The procedural dataset: deterministic from its seed, varied inside a style, distinct between styles."""

from __future__ import annotations

import numpy as np
import pytest

from workers.data.attributes import colour_attributes
from workers.data.procedural import STYLE_NAMES, STYLES, make_dataset, render

SIZE = 32


def style_index(name: str) -> int:
    return STYLE_NAMES.index(name)


def features(images: np.ndarray) -> np.ndarray:
    """Colour attributes plus cheap texture statistics: contrast, edge density, share of dark pixels."""
    luma = images.astype(np.float32).mean(axis=-1) / 255
    edges = np.abs(np.diff(luma, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(luma, axis=2)).mean(axis=(1, 2))
    return np.column_stack([colour_attributes(images), luma.std(axis=(1, 2)), edges, (luma < 0.15).mean(axis=(1, 2))])


def test_the_nine_styles_in_order() -> None:
    assert STYLE_NAMES == ["grid", "color_field", "circles", "drips", "stripes", "shapes",
                           "ink_landscape", "skyline", "still_life"]
    assert all(style.description for style in STYLES)


@pytest.mark.parametrize("index", range(len(STYLES)))
def test_render_is_deterministic_and_seed_dependent(index: int) -> None:
    first = render(index, seed=11, size=SIZE)
    assert first.dtype == np.uint8 and first.shape == (SIZE, SIZE, 3)
    assert render(index, seed=11, size=SIZE).tobytes() == first.tobytes()
    assert render(index, seed=12, size=SIZE).tobytes() != first.tobytes()


def test_render_refuses_an_unknown_style() -> None:
    with pytest.raises(ValueError):
        render(len(STYLES), seed=0)


def test_make_dataset_shapes_labels_and_determinism() -> None:
    images, labels = make_dataset(per_style=3, size=SIZE, seed=5)
    assert images.shape == (27, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [s for s in range(9) for _ in range(3)]
    again, _ = make_dataset(per_style=3, size=SIZE, seed=5)
    assert np.array_equal(images, again)
    other, _ = make_dataset(per_style=3, size=SIZE, seed=6)
    assert not np.array_equal(images, other)


def test_first_items_do_not_depend_on_per_style() -> None:
    small, _ = make_dataset(per_style=2, size=SIZE, seed=3)
    large, _ = make_dataset(per_style=5, size=SIZE, seed=3)
    for style in range(len(STYLES)):
        assert np.array_equal(small[style * 2:style * 2 + 2], large[style * 5:style * 5 + 2])


def test_images_within_a_style_differ_clearly() -> None:
    images, labels = make_dataset(per_style=8, size=SIZE)
    for style in range(len(STYLES)):
        group = images[labels == style].astype(np.float32)
        for a in range(len(group)):
            for b in range(a + 1, len(group)):
                assert np.abs(group[a] - group[b]).mean() > 10, (STYLE_NAMES[style], a, b)


def test_styles_are_told_apart_by_a_nearest_centroid_classifier() -> None:
    train_images, train_labels = make_dataset(per_style=30, size=SIZE, seed=0)
    test_images, test_labels = make_dataset(per_style=30, size=SIZE, seed=1)
    train, test = features(train_images), features(test_images)
    mean, std = train.mean(axis=0), train.std(axis=0)
    train, test = (train - mean) / std, (test - mean) / std
    centroids = np.stack([train[train_labels == s].mean(axis=0) for s in range(len(STYLES))])
    predicted = np.argmin(((test[:, None] - centroids[None]) ** 2).sum(axis=-1), axis=1)
    assert (predicted == test_labels).mean() >= 0.6  # chance is 1/9


def test_palettes_follow_each_style() -> None:
    images, labels = make_dataset(per_style=30, size=SIZE)
    brightness, saturation, _ = colour_attributes(images).T
    mean_brightness = {name: brightness[labels == i].mean() for i, name in enumerate(STYLE_NAMES)}
    mean_saturation = {name: saturation[labels == i].mean() for i, name in enumerate(STYLE_NAMES)}
    assert mean_brightness["drips"] < mean_brightness["grid"] - 0.2
    assert mean_brightness["color_field"] < mean_brightness["shapes"] - 0.2
    assert mean_saturation["circles"] > mean_saturation["grid"] + 0.2
    assert mean_saturation["circles"] > mean_saturation["shapes"] + 0.2
    assert mean_brightness["shapes"] == max(mean_brightness.values())  # the pale ground


def test_palettes_vary_within_a_style() -> None:
    images, labels = make_dataset(per_style=30, size=SIZE)
    attributes = colour_attributes(images)
    for style in range(len(STYLES)):
        spread = attributes[labels == style].std(axis=0)
        assert spread.max() > 0.03, STYLE_NAMES[style]


def test_ink_landscape_is_ink_on_rice_paper_with_a_red_seal() -> None:
    """Near-neutral ink tones on a pale warm ground, dark ink at the bottom (the nearest
    mountains), the top mostly paper (sky and mist), and a small saturated red seal."""
    for seed in range(12):
        image = render(style_index("ink_landscape"), seed=seed, size=128).astype(np.float32) / 255
        luma = image.mean(axis=-1)
        assert luma[:16].mean() > 0.75, seed  # the upper band is mostly paper
        assert luma[-40:].min() < 0.3, seed  # the nearest ridge is dark ink
        red = (image[..., 0] > 0.5) & (image[..., 1] < 0.35) & (image[..., 2] < 0.35)
        assert 5 <= red.sum() <= 0.03 * red.size, seed  # a seal: present, and small
        rest = image[~red]
        assert (rest.max(axis=-1) - rest.min(axis=-1)).mean() < 0.15, seed  # ink and paper, no colour


def test_skyline_buildings_stand_on_a_horizon_under_a_sky() -> None:
    """The sky is a smooth gradient over the top; the city's silhouettes make the band above the
    horizon far busier (vertical edges of buildings) than the sky."""
    for seed in range(12):
        image = render(style_index("skyline"), seed=seed, size=128).astype(np.float32) / 255
        luma = image.mean(axis=-1)
        vertical_edges = np.abs(np.diff(luma, axis=1))
        assert vertical_edges[70:100].mean() > 3 * vertical_edges[:12].mean() + 0.005, seed


def test_still_life_has_objects_on_a_table_below_a_wall() -> None:
    """Wall above, table below: their colours differ across the table edge, and the objects make
    the lower half busier than the wall at the top."""
    for seed in range(12):
        image = render(style_index("still_life"), seed=seed, size=128).astype(np.float32) / 255
        top, bottom = image[:20].reshape(-1, 3).mean(axis=0), image[-12:].reshape(-1, 3).mean(axis=0)
        assert np.abs(top - bottom).sum() > 0.1, seed
        luma = image.mean(axis=-1)
        assert np.abs(np.diff(luma[64:], axis=1)).mean() > np.abs(np.diff(luma[:20], axis=1)).mean(), seed
