"""The debian-images corpus, on a fake package tree in tmp_path: dpkg's file lists and status,
DEP-5 copyright files and a few generated pictures. The real packages are never needed."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shared.dataset_store import DEBIAN_IMAGES_RECORD, DatasetStore
from shared.datasets import manifest_sha256
from shared.debian_images import (
    DEBIAN_IMAGE_PACKAGES,
    DEBIAN_IMAGES,
    MIXED_LICENCE,
    DatasetNotInstalled,
    read_manifest,
)
from shared.job_params import RestorationTrainingParams
from workers.data.datasets import UNLABELED, debian_training_data, load_training_images
from workers.data.debian_images import (
    HELD_OUT_FRACTION,
    build_manifest,
    held_out,
    held_out_tiles,
    installed_package,
    write_manifest,
)
from workers.job_context import InvalidJobInput, JobContext

DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fake-backgrounds

Files: *
Copyright: 2020 Photo Person <photo@example.org>
License: GPL-2+

Files: art/*
Copyright: 2021 Paint Person
           2022 Other Painter
License: CC-BY-SA-4.0

License: GPL-2+
 GNU GPL, version 2 or later.

License: CC-BY-SA-4.0
 Creative Commons Attribution-ShareAlike 4.0.
"""
FAKE, PLAIN = "fake-backgrounds", "plain-backgrounds"
BACKGROUNDS = "usr/share/backgrounds"


def picture(seed: int, size: tuple[int, int] = (640, 480), mode: str = "RGB") -> Image.Image:
    """A smooth picture of its own (random 6x6 colours, enlarged), so a smaller copy hashes alike."""
    cells = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize(size, Image.Resampling.BICUBIC).convert(mode)


def install(root: Path, package: str, version: str, files: dict[str, Image.Image | bytes], copyright_text: str
            ) -> None:
    """``package`` as dpkg leaves it under ``root``: its files, its file list, its status paragraph
    and its copyright file. ``files`` maps paths under BACKGROUNDS/package to images (or bytes)."""
    listed = ["/.", "/usr", "/usr/share", f"/{BACKGROUNDS}", f"/{BACKGROUNDS}/{package}"]
    for name, content in files.items():
        path = root / BACKGROUNDS / package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Image.Image):
            content.save(path)
        else:
            path.write_bytes(content)
        listed.append(f"/{BACKGROUNDS}/{package}/{name}")
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True, exist_ok=True)
    (info / f"{package}.list").write_text("\n".join(listed) + "\n")
    with (root / "var/lib/dpkg/status").open("a") as status:
        status.write(f"Package: {package}\nStatus: install ok installed\nVersion: {version}\n"
                     "Architecture: all\n\n")
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(copyright_text)


def fake_tree(root: Path) -> None:
    big = picture(1, (800, 600))
    install(root, FAKE, "1.2-3", {
        "photos/lake.jpg": picture(2),
        "photos/meadow.png": picture(3),
        "photos/dunes_800.png": big,
        "photos/dunes_400.png": big.resize((400, 300), Image.Resampling.LANCZOS),  # the same picture, smaller
        "photos/dunes_copy.png": _png_bytes(big),  # the same bytes as dunes_800.png
        "art/painting.png": picture(4, (500, 700)),
        "icons/icon.png": picture(5, (64, 64)),
        "icons/wide_thumbnail.png": picture(6, (600, 200)),
        "logos/cutout.png": _with_hole(picture(7, (400, 400), "RGBA")),
        "logos/logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg' width='512' height='512'/>",
        "photos/notes.txt": b"not an image",
    }, DEP5)
    install(root, PLAIN, "0.1", {"stones.png": picture(8)},
            "This package was debianized by someone.\n\nLicensed under the GPL.\n")


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _with_hole(image: Image.Image) -> Image.Image:
    alpha = np.full((image.height, image.width), 255, dtype=np.uint8)
    alpha[: image.height // 2] = 0
    image.putalpha(Image.fromarray(alpha))
    return image


def manifest_of(root: Path, names: tuple[str, ...] = (FAKE, PLAIN)) -> dict[str, Any]:
    packages = [installed_package(name, root) for name in names]
    assert all(packages)
    return build_manifest([p for p in packages if p is not None], root)


def by_name(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Path(entry["path"]).name: entry for entry in manifest["files"]}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    fake_tree(tmp_path)
    return tmp_path


def test_dpkg_lists_the_package_files_and_version(root: Path) -> None:
    package = installed_package(FAKE, root)
    assert package is not None and package.version == "1.2-3"
    assert root / BACKGROUNDS / FAKE / "art/painting.png" in package.files
    assert installed_package("not-installed", root) is None


def test_each_image_has_the_licence_of_the_last_matching_stanza(root: Path) -> None:
    files = by_name(manifest_of(root))
    assert files["painting.png"]["licence"] == "CC-BY-SA-4.0"
    assert files["painting.png"]["copyright"] == ["2021 Paint Person", "2022 Other Painter"]
    assert files["lake.jpg"]["licence"] == "GPL-2+"  # Files: *
    assert files["lake.jpg"]["copyright"] == ["2020 Photo Person <photo@example.org>"]
    assert files["lake.jpg"]["package"] == FAKE and files["lake.jpg"]["package_version"] == "1.2-3"
    assert all(entry["licence_machine_readable"] for name, entry in files.items() if name != "stones.png")


def test_a_copyright_file_that_is_not_machine_readable_points_at_itself(root: Path) -> None:
    stones = by_name(manifest_of(root))["stones.png"]
    assert stones["licence"] == f"see /usr/share/doc/{PLAIN}/copyright"
    assert stones["licence_machine_readable"] is False and stones["copyright"] is None


def test_small_images_cut_outs_svgs_and_other_files_are_skipped(root: Path) -> None:
    names = set(by_name(manifest_of(root)))
    assert names.isdisjoint({"icon.png", "wide_thumbnail.png", "cutout.png", "logo.svg", "notes.txt"})


def test_one_picture_at_several_sizes_is_kept_once_at_its_largest(root: Path) -> None:
    manifest = manifest_of(root)
    files = by_name(manifest)
    dunes = [name for name in files if name.startswith("dunes")]
    assert dunes in (["dunes_800.png"], ["dunes_copy.png"])  # the two 800 px files are the same bytes
    kept = files[dunes[0]]
    assert (kept["width"], kept["height"]) == (800, 600)
    assert {Path(p).name for p in kept["variants"]} == {"dunes_400.png", "dunes_800.png", "dunes_copy.png"} - {dunes[0]}
    assert set(files) - set(dunes) == {"lake.jpg", "meadow.png", "painting.png", "stones.png"}
    assert manifest["counts"]["images"] == 5 == manifest["counts"]["train"] + manifest["counts"]["held_out"]
    assert manifest["counts"]["by_package"] == {FAKE: 4, PLAIN: 1}


def test_the_split_is_decided_by_content_and_stays_put_as_the_corpus_grows(root: Path) -> None:
    before = {entry["sha256"]: entry["split"] for entry in manifest_of(root)["files"]}
    install(root, "more-backgrounds", "2", {f"new{i}.png": picture(100 + i) for i in range(6)},
            DEP5.replace("fake-backgrounds", "more-backgrounds"))
    after = {entry["sha256"]: entry["split"] for entry in manifest_of(root, (FAKE, PLAIN, "more-backgrounds"))["files"]}
    assert len(after) == len(before) + 6
    assert all(after[sha] == split for sha, split in before.items())
    assert all(split == ("held_out" if held_out(sha) else "train") for sha, split in after.items())
    # about HELD_OUT_FRACTION of many hashes
    shares = np.mean([held_out(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(2000)])
    assert abs(shares - HELD_OUT_FRACTION) < 0.05


def test_the_manifest_round_trips_and_fingerprints_the_corpus(root: Path, tmp_path: Path) -> None:
    manifest = manifest_of(root)
    path = tmp_path / "cache" / "debian-images.json"
    write_manifest(manifest, path)
    assert read_manifest(path) == manifest
    assert manifest_sha256(manifest_of(root)) == manifest_sha256(manifest)  # nothing that varies between builds
    record = DatasetStore(None, path).get_for_tenant(DEBIAN_IMAGES, "any-tenant")  # type: ignore[arg-type]
    assert record is not None and record.tenant == "*" and record.licence == MIXED_LICENCE
    assert record.images == 5 and record.manifest_sha256 == manifest_sha256(manifest)
    assert manifest["licence"] == f"per image: GPL-2+ (3), CC-BY-SA-4.0 (1), see /usr/share/doc/{PLAIN}/copyright (1)"


def test_without_the_corpus_the_dataset_is_listed_empty_and_training_fails_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.json"
    assert DatasetStore(None, missing).get_for_tenant(DEBIAN_IMAGES, "t") == DEBIAN_IMAGES_RECORD  # type: ignore[arg-type]
    with pytest.raises(DatasetNotInstalled, match="make datasets"):
        read_manifest(missing)
    ctx = JobContext.local(datasets=SimpleNamespace(debian_images_manifest=missing))
    params = RestorationTrainingParams(dataset=DEBIAN_IMAGES)
    with pytest.raises(InvalidJobInput, match="make datasets") as refused:
        load_training_images(params, ctx)
    assert refused.value.code == "dataset_not_installed"


def _with_splits(manifest: dict[str, Any], held: set[str]) -> dict[str, Any]:
    files = [{**entry, "split": "held_out" if Path(entry["path"]).name in held else "train"}
             for entry in manifest["files"]]
    return {**manifest, "files": files}


def test_training_gets_the_train_split_at_its_resolution_and_evaluation_the_held_out_tiles(
        root: Path, tmp_path: Path) -> None:
    manifest = _with_splits(manifest_of(root), {"painting.png"})
    path = tmp_path / "debian-images.json"
    write_manifest(manifest, path)
    data = debian_training_data(path, 32)
    assert data.images.shape == (4, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.label_names == [UNLABELED] and not data.labels.any()
    assert data.licence == manifest["licence"] and data.manifest_sha256 == manifest_sha256(manifest)
    tiles = held_out_tiles(manifest)
    assert len(tiles) == 4 and all(t.shape == (128, 128, 3) and t.dtype == np.uint8 for t in tiles)


def test_a_file_changed_since_the_manifest_was_built_asks_for_a_rebuild(root: Path, tmp_path: Path) -> None:
    manifest = manifest_of(root)
    path = tmp_path / "debian-images.json"
    write_manifest(manifest, path)
    lake = root / BACKGROUNDS / FAKE / "photos/lake.jpg"
    picture(99).save(lake)  # a package upgrade replaced it
    with pytest.raises(InvalidJobInput, match="changed since") as refused:
        debian_training_data(path, 32)
    assert refused.value.code == "dataset_not_installed"
    shutil.rmtree(root / BACKGROUNDS)  # the packages removed
    with pytest.raises(InvalidJobInput, match="missing"):
        debian_training_data(path, 32)


def test_make_datasets_and_the_worker_image_install_the_packages_the_corpus_is_built_from() -> None:
    repository = Path(__file__).resolve().parents[2]
    listed = re.search(r"^DEBIAN_IMAGE_PACKAGES := (.+)$", (repository / "Makefile").read_text(), re.MULTILINE)
    assert listed is not None and tuple(listed.group(1).split()) == DEBIAN_IMAGE_PACKAGES
    dockerfile = (repository / "deploy" / "Dockerfile.worker").read_text()
    assert all(re.search(rf"\b{re.escape(name)}\b", dockerfile) for name in DEBIAN_IMAGE_PACKAGES)
    assert "python -m workers.data.debian_images" in dockerfile
