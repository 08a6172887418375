"""The built-in ``debian-images`` dataset: photographs and artworks that Debian's wallpaper and
theme packages install, listed with each image's licence in a manifest on the worker's disk.

``make datasets`` installs the packages (DEBIAN_IMAGE_PACKAGES) with apt and builds the manifest
(``python -m workers.data.debian_images``); the worker image does both at build time. The
manifest is a local file, never stored in S3 or committed: it describes what is installed on
this machine. Its images carry several free licences, one per image, taken from their package's
machine-readable copyright file; the record's licence says so and the manifest holds the details.

The API reads the manifest too, where it has one, to show the dataset's size and fingerprint; a
process without it still lists the dataset (with no images), and a training job that names it on
a worker without the corpus fails with ``dataset_not_installed``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

DEBIAN_IMAGES = "debian-images"
MANIFEST_SCHEMA = "artforge.debian-images/1"
# gnome-backgrounds and openclipart-png are left out: GNOME's copyright file is not machine-readable
# and names files the package no longer ships (no per-image licence can be read from it), and
# openclipart is line-art clip art on transparent backgrounds, 130 MB of it, little use to
# restoration, which learns from photographs and paintings.
DEBIAN_IMAGE_PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers", "desktop-base")
# Where ``make datasets`` writes the manifest when ARTFORGE_DEBIAN_IMAGES_MANIFEST is not set:
# the repository's .artforge/ folder (git-ignored).
DEFAULT_MANIFEST_PATH = Path(__file__).resolve().parents[1] / ".artforge" / "datasets" / "debian-images.json"
MIXED_LICENCE = "mixed free licences, one per image (see the manifest)"
INSTALL_HINT = "run `make datasets` on the worker (or use the worker image, which has it)"


class DatasetNotInstalled(Exception):
    """The corpus's manifest is missing or unreadable on this machine."""


def manifest_path(configured: str = "") -> Path:
    """The manifest's path: ``configured`` (ARTFORGE_DEBIAN_IMAGES_MANIFEST) or the default."""
    return Path(configured) if configured else DEFAULT_MANIFEST_PATH


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at ``path``; DatasetNotInstalled when it is missing or not one of ours."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetNotInstalled(f"the {DEBIAN_IMAGES} corpus is not installed here ({path} is missing): "
                                  f"{INSTALL_HINT}") from None
    except (OSError, ValueError) as exc:
        raise DatasetNotInstalled(f"the {DEBIAN_IMAGES} manifest {path} cannot be read ({exc}): {INSTALL_HINT}"
                                  ) from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise DatasetNotInstalled(f"{path} is not a {DEBIAN_IMAGES} manifest: {INSTALL_HINT}")
    return manifest


def licence_summary(files: list[dict[str, Any]]) -> str:
    """What a model card's dataset section says of the licences: each one with its image count,
    most common first, e.g. ``per image: GPL-2+ (61), CC-BY-SA-4.0 (4)``."""
    counts = Counter(str(entry["licence"]) for entry in files)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return "per image: " + ", ".join(f"{licence} ({count})" for licence, count in ranked)
