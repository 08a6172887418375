"""The ``debian-images`` corpus (shared.debian_images): find the images that installed Debian
packages carry, read each one's licence, and write the manifest; then read the images back.

Which files belong to a package comes from dpkg's own list (``/var/lib/dpkg/info/PKG.list``),
its version from dpkg's status file, and each file's licence from the package's machine-readable
copyright file (``/usr/share/doc/PKG/copyright``, DEP-5) as parsed by python-debian: the last
stanza whose ``Files:`` globs match the file wins, as DEP-5 says. The globs name paths in the
source tree, which are not the installed paths, so a glob is matched against every trailing
part of the installed path (``nature/Aqua.jpg`` matches ``/usr/share/backgrounds/mate/nature/
Aqua.jpg``); a file installed under another folder than its source's falls back to the stanza of
``Files: *``. A copyright file that is not machine-readable gives every file of its package the
licence ``see /usr/share/doc/PKG/copyright``, marked ``licence_machine_readable: false``.

Kept: JPEG, PNG and WebP files (SVGs are skipped) at least MIN_SIDE px on both sides and opaque
(logos, glows and icons on transparent backgrounds are not pictures to restore), and no theme
previews or screenshots. The same picture at several sizes or crops (a wallpaper at 1920x1080 and
5120x2880) is one picture: images whose perceptual hashes of the centre square are within
SAME_PICTURE_DISTANCE bits, and the renditions of one KDE wallpaper, are grouped and the largest
is kept. About HELD_OUT_FRACTION of the pictures are held out, by the sha256 of the kept
file, so an image's split stays put when the corpus grows.

    python -m workers.data.debian_images [--manifest PATH]   (make datasets runs it)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, cast

import imagehash
import numpy as np
from debian.copyright import Copyright, License
from debian.copyright import Error as CopyrightError
from debian.deb822 import Deb822
from PIL import Image, UnidentifiedImageError

from shared.datasets import manifest_sha256
from shared.debian_images import (
    DEBIAN_IMAGE_PACKAGES,
    DEBIAN_IMAGES,
    INSTALL_HINT,
    MANIFEST_SCHEMA,
    DatasetNotInstalled,
    licence_summary,
    manifest_path,
    read_manifest,
)
from workers.data.photos import (
    HELD_OUT_PHOTOS,
    PHOTO_SIDE,
    PHOTO_TILE,
    centre_square,
    centre_square_tiles,
    photo_tiles,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MIN_SIDE = 256  # px: thumbnails, icons and previews are smaller
HELD_OUT_FRACTION = 0.125
# Bits (of 64) between the pHashes of two centre squares that make them the same picture. On the
# three packages, a picture's sizes and colour variants lie within 12 bits (MATE's Elephants at
# three sizes 0, its Ubuntu-MATE colourways 2-4, a theme's artwork with and without logo 10-12);
# the nearest distinct pictures are 16-18 apart, and so are some crops of one artwork (4:3 and
# 16:9), which are kept as two images.
SAME_PICTURE_DISTANCE = 12
# Theme previews and screenshots show a desktop or login screen around the picture.
UI_CAPTURE_WORDS = ("preview", "screenshot")
# An image with more than this share of pixels not fully opaque is a cut-out, not a picture.
MAX_TRANSPARENT_SHARE = 0.01
HASH_SIDE = 256  # px: the centre square is shrunk to this before hashing (pHash uses 32x32)


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    files: tuple[Path, ...]  # as they lie on this filesystem (under ``root``)
    copyright: Path


@dataclass(frozen=True)
class FileLicence:
    licence: str  # the DEP-5 short name, e.g. GPL-2+ or "GPL-3+ or CC-BY-SA-3.0"
    copyright: tuple[str, ...]  # the holders' lines, as the stanza gives them
    machine_readable: bool


@dataclass(frozen=True)
class Candidate:
    path: Path
    package: InstalledPackage
    licence: FileLicence
    sha256: str
    size_bytes: int
    width: int
    height: int
    phash: imagehash.ImageHash


def installed_version(status: Path, name: str) -> str | None:
    """The version dpkg's status file gives the installed package ``name``; None when not installed."""
    if not status.exists():
        return None
    with status.open(encoding="utf-8", errors="replace") as lines:
        for paragraph in Deb822.iter_paragraphs(lines):
            if paragraph.get("Package") == name and paragraph.get("Status", "").endswith(" installed"):
                return str(paragraph["Version"])
    return None


def installed_package(name: str, root: Path = Path("/")) -> InstalledPackage | None:
    """The package as dpkg installed it under ``root``; None when it is not installed."""
    version = installed_version(root / "var/lib/dpkg/status", name)
    info = root / "var/lib/dpkg/info"
    lists = [info / f"{name}.list", *sorted(info.glob(f"{name}:*.list"))]  # name:arch for Multi-Arch packages
    listed = [line.strip() for path in lists if path.exists() for line in path.read_text().splitlines()]
    if version is None or not listed:
        return None
    files = tuple(root / line.lstrip("/") for line in listed if line.strip("/"))
    return InstalledPackage(name, version, files, root / "usr/share/doc" / name / "copyright")


class PackageLicences:
    """Each file's licence, from its package's copyright file."""

    def __init__(self, package: InstalledPackage):
        self.fallback = FileLicence(f"see /usr/share/doc/{package.name}/copyright", (), machine_readable=False)
        try:
            with package.copyright.open(encoding="utf-8") as text:
                self.copyright: Copyright | None = Copyright(text, strict=False)
        except (OSError, UnicodeDecodeError, CopyrightError, ValueError):
            self.copyright = None  # missing or not machine-readable

    def of(self, path: PurePosixPath) -> FileLicence:
        """The licence of the installed file ``path`` (absolute, as dpkg lists it)."""
        if self.copyright is None:
            return self.fallback
        parts = path.parts[1:]
        tails = ["/".join(parts[start:]) for start in range(len(parts))]
        chosen = None
        for paragraph in self.copyright.all_files_paragraphs():
            if any(paragraph.matches(tail) for tail in tails):
                chosen = paragraph  # the last matching stanza wins
        if chosen is None:
            return self.fallback
        # python-debian types its paragraph fields as descriptors; these are what they return
        licence, holders = cast(License | None, chosen.license), cast(str | None, chosen.copyright) or ""
        if licence is None:
            return self.fallback
        return FileLicence(licence.synopsis, tuple(line.strip() for line in holders.splitlines() if line.strip()),
                           machine_readable=True)


def _is_cut_out(image: Image.Image) -> bool:
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return False
    alpha = np.asarray(image.convert("RGBA").getchannel("A"))
    return float(np.mean(alpha < 255)) > MAX_TRANSPARENT_SHARE


def examine(path: Path, package: InstalledPackage, licences: PackageLicences, installed_as: PurePosixPath
            ) -> Candidate | None:
    """The image at ``path`` as a candidate for the corpus; None for what is not a picture to keep."""
    # symlinks (KDE's 1280x1024.jpg -> 2560x1600.jpg) are skipped: dpkg lists their targets too
    if path.suffix.lower() not in IMAGE_SUFFIXES or path.is_symlink() or not path.is_file() \
            or any(word in path.name.lower() for word in UI_CAPTURE_WORDS):
        return None
    content = path.read_bytes()
    try:
        with Image.open(path) as image:
            if min(image.size) < MIN_SIDE:
                return None
            image.load()
            if _is_cut_out(image):
                return None
            square = centre_square(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None
    square.thumbnail((HASH_SIDE, HASH_SIDE), Image.Resampling.BILINEAR)
    return Candidate(path, package, licences.of(installed_as), hashlib.sha256(content).hexdigest(), len(content),
                     image.width, image.height, imagehash.phash(square))


def wallpaper_folder(path: Path) -> Path | None:
    """The wallpaper a file renders when it lies in a KDE wallpaper package
    (``NAME/contents/images/1920x1080.jpg``, ``NAME/contents/images_dark/...``): ``NAME``'s folder."""
    parts = path.parts
    return Path(*parts[:parts.index("contents")]) if "contents" in parts[1:] else None


def same_pictures(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """The candidates grouped into pictures: within SAME_PICTURE_DISTANCE pHash bits of another
    member (identical files are at 0), or renditions of one KDE wallpaper (its sizes, portrait
    crops and dark variant hash far apart); each group largest first."""
    parent = list(range(len(candidates)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for i, first in enumerate(candidates):
        for j in range(i + 1, len(candidates)):
            folder = wallpaper_folder(first.path)
            if first.phash - candidates[j].phash <= SAME_PICTURE_DISTANCE or \
                    (folder is not None and folder == wallpaper_folder(candidates[j].path)):
                parent[root(j)] = root(i)
    groups: dict[int, list[Candidate]] = {}
    for index, candidate in enumerate(candidates):
        groups.setdefault(root(index), []).append(candidate)
    return [sorted(group, key=lambda c: (-c.width * c.height, -c.size_bytes, str(c.path)))
            for group in groups.values()]


def held_out(sha256: str) -> bool:
    """Whether the file with this sha256 is held out: its hash, read as a number in [0, 1), falls
    below HELD_OUT_FRACTION (as workers.data.datasets.split_held_out decides)."""
    return int(sha256[:16], 16) / 2.0**64 < HELD_OUT_FRACTION


def _entry(picture: list[Candidate]) -> dict[str, Any]:
    kept = picture[0]
    return {"path": str(kept.path), "package": kept.package.name, "package_version": kept.package.version,
            "licence": kept.licence.licence, "licence_machine_readable": kept.licence.machine_readable,
            "copyright": list(kept.licence.copyright) or None, "sha256": kept.sha256, "bytes": kept.size_bytes,
            "width": kept.width, "height": kept.height, "split": "held_out" if held_out(kept.sha256) else "train",
            "variants": sorted(str(other.path) for other in picture[1:])}


def build_manifest(packages: Iterable[InstalledPackage], root: Path = Path("/")) -> dict[str, Any]:
    """The manifest of every picture ``packages`` install, sorted by sha256. It holds nothing that
    changes between builds of the same packages, so its sha256 fingerprints what was installed."""
    packages = list(packages)
    candidates = []
    for package in packages:
        licences = PackageLicences(package)
        for path in package.files:
            installed_as = PurePosixPath("/") / path.relative_to(root)
            if (candidate := examine(path, package, licences, installed_as)) is not None:
                candidates.append(candidate)
    files = sorted((_entry(picture) for picture in same_pictures(candidates)), key=lambda entry: entry["sha256"])
    splits = Counter(entry["split"] for entry in files)
    return {"schema": MANIFEST_SCHEMA, "id": DEBIAN_IMAGES,
            "packages": {package.name: package.version for package in packages},
            "licence": licence_summary(files) if files else "no images",
            "counts": {"images": len(files), "train": splits["train"], "held_out": splits["held_out"],
                       "by_package": dict(sorted(Counter(entry["package"] for entry in files).items())),
                       "by_licence": dict(sorted(Counter(entry["licence"] for entry in files).items())),
                       "bytes": sum(entry["bytes"] for entry in files)},
            "files": files}


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)  # a reader never sees half a manifest


def files_of_split(manifest: dict[str, Any], split: str) -> list[dict[str, Any]]:
    return [entry for entry in manifest["files"] if entry["split"] == split]


def open_image(entry: dict[str, Any]) -> Image.Image:
    """The manifest entry's image as RGB, checked against its sha256; DatasetNotInstalled when the
    file is gone or changed since the manifest was built (a package removed or upgraded)."""
    try:
        content = Path(entry["path"]).read_bytes()
    except OSError:
        raise DatasetNotInstalled(f"{entry['path']} of the {DEBIAN_IMAGES} corpus is missing "
                                  f"(package {entry['package']} removed?): {INSTALL_HINT}") from None
    if hashlib.sha256(content).hexdigest() != entry["sha256"]:
        raise DatasetNotInstalled(f"{entry['path']} changed since the {DEBIAN_IMAGES} manifest was built "
                                  f"(package {entry['package']} upgraded?): {INSTALL_HINT}")
    with Image.open(Path(entry["path"])) as image:
        return image.convert("RGB")


def tiles_of_split(manifest: dict[str, Any], split: str, tile: int = PHOTO_TILE,
                   side: int = PHOTO_SIDE) -> list[np.ndarray]:
    """uint8 [tile, tile, 3] tiles of the pictures of ``split``, as ``workers.data.photos.photo_tiles``
    cuts them: each centre square at ``side`` px cut into a grid (four 128 px tiles by default),
    in the manifest's order."""
    tiles: list[np.ndarray] = []
    for entry in files_of_split(manifest, split):
        tiles += centre_square_tiles(np.asarray(open_image(entry)), side, tile)
    return tiles


def held_out_tiles(manifest: dict[str, Any], tile: int = PHOTO_TILE, side: int = PHOTO_SIDE) -> list[np.ndarray]:
    """The held-out pictures' tiles, for scoring restoration (``tiles_of_split``)."""
    return tiles_of_split(manifest, "held_out", tile, side)


def restoration_photos(path: Path) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The photos restoration models are scored on, and the model card's account of them:
    scikit-image's held-out four, and the corpus's held-out pictures where it is installed."""
    tiles = photo_tiles()
    facts: dict[str, Any] = {"source": "scikit-image sample data", "names": list(HELD_OUT_PHOTOS),
                             "resized_to": PHOTO_SIDE, "tile": PHOTO_TILE, "tiles": len(tiles)}
    try:
        manifest = read_manifest(path)
        held = held_out_tiles(manifest)
    except DatasetNotInstalled:
        return tiles, facts
    corpus = {"manifest_sha256": manifest_sha256(manifest), "pictures": len(files_of_split(manifest, "held_out")),
              "tiles": len(held)}
    return tiles + held, {**facts, "source": f"scikit-image sample data and the held-out pictures of {DEBIAN_IMAGES}",
                          "tiles": len(tiles) + len(held), DEBIAN_IMAGES: corpus}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=f"Build the {DEBIAN_IMAGES} manifest from installed packages.")
    parser.add_argument("--manifest", default="", help="where to write it (default: ARTFORGE_DEBIAN_IMAGES_MANIFEST "
                                                       "or .artforge/datasets/debian-images.json)")
    parser.add_argument("--packages", nargs="+", default=list(DEBIAN_IMAGE_PACKAGES))
    args = parser.parse_args(argv)
    from shared.settings import Settings

    path = manifest_path(args.manifest or Settings().debian_images_manifest)
    started = time.monotonic()
    packages = []
    for name in args.packages:
        package = installed_package(name)
        if package is None:
            raise SystemExit(f"package {name} is not installed: run `make datasets`")
        packages.append(package)
    manifest = build_manifest(packages)
    write_manifest(manifest, path)
    counts = manifest["counts"]
    print(f"{path}: {counts['images']} images ({counts['train']} train, {counts['held_out']} held out, "
          f"{counts['bytes'] / 2**20:.0f} MiB) in {time.monotonic() - started:.1f} s")
    print(f"by package: {counts['by_package']}")
    print(f"by licence: {counts['by_licence']}")


if __name__ == "__main__":
    main()
