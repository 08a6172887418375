"""A non-neural style classifier on colour and gradient features, for conditional accuracy that a
generator cannot satisfy by fooling one network.

Each image (resized to ``SIDE``) becomes a fixed vector of hand-made statistics:
- colour: a joint HSV histogram (hue 8 x saturation 3 x value 3), and the mean colour of a 3x3
  grid of cells (where the dark ground or the bright sky is);
- gradients at two scales: a magnitude-weighted histogram of orientations (8 bins), the share of
  edge pixels, mean magnitude, and how concentrated the orientations are (stripes and grids
  have a few directions, drips and mountains many).

A standardised multinomial logistic regression (scikit-learn) reads them. Nothing here shares a
feature space with the networks a GAN trains against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SIDE = 64
HUE_BINS, SAT_BINS, VAL_BINS = 8, 3, 3
ORIENTATION_BINS = 8
EDGE_THRESHOLD = 0.1  # gradient magnitude (of [0, 1] images) that counts as an edge


def _resized(image: np.ndarray) -> np.ndarray:
    if image.shape[:2] != (SIDE, SIDE):
        image = np.asarray(Image.fromarray(image).resize((SIDE, SIDE), Image.Resampling.BILINEAR))
    return image.astype(np.float64) / 255.0


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    delta = high - low
    saturation = np.divide(delta, high, out=np.zeros_like(high), where=high > 0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.where(delta > 0, delta, 1.0)
    hue = np.where(high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    return np.where(delta > 0, hue, 0.0), saturation, high


def _gradient_statistics(grey: np.ndarray) -> list[float]:
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)  # orientation, not direction
    weights = magnitude.ravel()
    histogram = np.bincount(np.minimum((angle.ravel() / np.pi * ORIENTATION_BINS).astype(int), ORIENTATION_BINS - 1),
                            weights=weights, minlength=ORIENTATION_BINS)
    total = histogram.sum()
    histogram = histogram / total if total > 0 else histogram
    # Orientation coherence: length of the mean doubled-angle vector (1: one direction only).
    coherence = (np.abs(np.sum(weights * np.exp(2j * angle.ravel()))) / total) if total > 0 else 0.0
    return [*histogram, float((magnitude > EDGE_THRESHOLD).mean()), float(magnitude.mean()), float(coherence)]


def image_features(image: np.ndarray) -> np.ndarray:
    """The statistics of one uint8 image [H, W, 3] as float64 [D]."""
    rgb = _resized(image)
    hue, saturation, value = _hsv(rgb)
    joint = (np.minimum((hue * HUE_BINS).astype(int), HUE_BINS - 1) * SAT_BINS * VAL_BINS
             + np.minimum((saturation * SAT_BINS).astype(int), SAT_BINS - 1) * VAL_BINS
             + np.minimum((value * VAL_BINS).astype(int), VAL_BINS - 1))
    colour_histogram = np.bincount(joint.ravel(), minlength=HUE_BINS * SAT_BINS * VAL_BINS) / joint.size
    thirds = np.array_split(np.arange(SIDE), 3)
    layout = [rgb[np.ix_(rows, cols)].mean(axis=(0, 1)) for rows in thirds for cols in thirds]
    grey = rgb @ np.array([0.299, 0.587, 0.114])
    coarse = grey.reshape(SIDE // 2, 2, SIDE // 2, 2).mean(axis=(1, 3))
    return np.concatenate([colour_histogram, np.concatenate(layout), _gradient_statistics(grey),
                           _gradient_statistics(coarse)])


def features_of(images: np.ndarray) -> np.ndarray:
    return np.stack([image_features(image) for image in images])


@dataclass
class FeatureClassifier:
    """Logistic regression on ``image_features``; ``real_accuracy`` on held-out real images."""

    model: object
    real_accuracy: float

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(features_of(images)), dtype=np.int64)  # type: ignore[attr-defined]


def train_feature_classifier(images: np.ndarray, labels: np.ndarray, held_images: np.ndarray,
                             held_labels: np.ndarray) -> FeatureClassifier:
    """Fit on (images, labels); report accuracy on (held_images, held_labels)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    model.fit(features_of(images), np.asarray(labels, dtype=np.int64))
    classifier = FeatureClassifier(model, float("nan"))
    if len(held_images):
        classifier.real_accuracy = float(np.mean(classifier.predict(held_images) == held_labels))
    return classifier
