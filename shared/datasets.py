"""Safe ingestion of a user's dataset zip (``POST /v1/datasets``) or of images added to a
dataset (``POST /v1/datasets/{id}/images``), and the dataset's versioned manifest.

The zip is read in memory and never extracted to disk. The whole zip is refused when any
member name could escape a folder, when the declared or actual sizes look like a zip bomb,
or when a member is neither an accepted image nor ignorable clutter (folders, ``__MACOSX/``,
dotfiles). Each image is normalised (RGB, metadata dropped, re-encoded as PNG) and named by
the sha256 of that PNG, so identical images are stored once.

Labels come from folders: ``label/image.png``. Deeper paths use their first folder as the
label; a single folder wrapping everything (as zipping a folder produces) is looked through.
Images at the top level are unlabeled, and a zip must be either all labeled or all unlabeled.

A dataset grows by versions: each change writes a new manifest (``version`` n+1, with the
sha256 of version n as ``parent_sha256``); a dataset is labeled or unlabeled for good.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from shared.images import ImageRejected, ImageTooLarge, decode_image, encode_png

MiB = 1024 * 1024
MANIFEST_SCHEMA = "artforge.dataset/1"
# An SPDX-like identifier (MIT, CC-BY-4.0, GPL-3.0+) or "proprietary" / "all-rights-reserved".
LICENCE_PATTERN = re.compile(r"^[A-Za-z0-9.+-]{2,64}$")
# Members smaller than this are not ratio-checked: a flat uncompressed TIFF compresses far
# better than 200:1, and the total-size cap already bounds what small members can expand to.
RATIO_CHECK_MIN_BYTES = 1 * MiB
MAX_NAMED_MEMBERS = 10
MAX_DATASET_IMAGES = 5000
# A label given with a single image must be one a zip could have made: a folder name.
LABEL_PATTERN = re.compile(r"^[^./\\\x00-\x1f][^/\\\x00-\x1f]{0,199}$")
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


class DatasetRejected(Exception):
    """A dataset zip or declaration we refuse; carries the HTTP status, error code and details."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True)
class IngestedImage:
    label: str | None
    png: bytes  # normalised RGB PNG
    sha256: str  # of ``png``
    width: int
    height: int
    source_name: str  # the member name in the zip


@dataclass(frozen=True)
class IngestedDataset:
    images: list[IngestedImage] = field(default_factory=list)
    duplicates: int = 0  # copies of an image inside the upload, dropped

    @property
    def labeled(self) -> bool:
        return any(image.label is not None for image in self.images)

    @property
    def labels(self) -> list[str]:
        return sorted({image.label for image in self.images if image.label is not None})


def validate_licence(text: str | None) -> str:
    """The declared licence, stripped; a missing or malformed one is refused with 422 licence_required."""
    licence = (text or "").strip()
    if not licence:
        raise DatasetRejected(422, "licence_required", "declare the dataset's licence, e.g. CC-BY-4.0 or proprietary")
    if not LICENCE_PATTERN.fullmatch(licence):
        raise DatasetRejected(422, "licence_required",
                              "the licence must be a short SPDX identifier (e.g. CC-BY-4.0, MIT) "
                              "or 'proprietary' / 'all-rights-reserved'", {"licence": licence[:80]})
    return licence


def validate_label(text: str | None) -> str | None:
    """The label given for a single image, stripped (None when blank); 422 invalid_label when a
    zip folder could not carry it (a path, a dotfile name, control characters, over 200 characters)."""
    label = (text or "").strip()
    if not label:
        return None
    if not LABEL_PATTERN.fullmatch(label) or label == "__MACOSX":
        raise DatasetRejected(422, "invalid_label", "a label is a folder name: no '/', '\\' or leading '.', "
                              "at most 200 characters", {"label": label[:80]})
    return label


def is_unsafe_name(name: str) -> bool:
    """True for member names that could escape a folder: absolute, drive-lettered, backslashed or with '..'."""
    return (name.startswith("/") or "\\" in name or bool(_DRIVE_LETTER.match(name))
            or any(part == ".." for part in name.split("/")))


def is_ignored_member(info: zipfile.ZipInfo) -> bool:
    """Folders, macOS resource forks (``__MACOSX/``) and dotfiles or anything inside dot-folders."""
    parts = _path_parts(info.filename)
    return info.is_dir() or not parts or parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts)


def _path_parts(name: str) -> list[str]:
    return [part for part in name.split("/") if part not in ("", ".")]


def _open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
        raise DatasetRejected(415, "not_a_zip", "the dataset must be a zip file") from None


def _check_names(infos: list[zipfile.ZipInfo]) -> None:
    unsafe = [info.filename for info in infos if is_unsafe_name(info.filename)]
    if unsafe:
        raise DatasetRejected(422, "unsafe_path", "member names must be relative paths without '..' or backslashes",
                              {"members": unsafe[:MAX_NAMED_MEMBERS]})


def _check_before_reading(members: list[zipfile.ZipInfo], max_images: int, max_total: int, max_ratio: float) -> None:
    """Refuse too many members, zip bombs and encrypted members from the central directory alone."""
    if len(members) > max_images:
        raise DatasetRejected(413, "too_many_images", f"a dataset holds at most {max_images} images",
                              {"members": len(members), "max_images": max_images})
    declared = sum(info.file_size for info in members)
    if declared > max_total:
        raise DatasetRejected(413, "zip_bomb", f"the zip expands to {declared} bytes, more than {max_total}",
                              {"declared_bytes": declared, "max_bytes": max_total})
    for info in members:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= RATIO_CHECK_MIN_BYTES and ratio > max_ratio:
            raise DatasetRejected(413, "zip_bomb",
                                  f"{info.filename} compresses {ratio:.0f}:1, more than {max_ratio:g}:1",
                                  {"member": info.filename})
        if info.flag_bits & 0x1:
            raise DatasetRejected(422, "encrypted_member", "encrypted zip members are not accepted",
                                  {"member": info.filename})


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The member's bytes, reading at most one byte past its declared size."""
    try:
        with archive.open(info) as member:
            content = member.read(info.file_size + 1)
    except NotImplementedError:
        raise DatasetRejected(422, "unsupported_zip", f"{info.filename} uses an unsupported compression method",
                              {"member": info.filename}) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as exc:
        raise DatasetRejected(422, "corrupt_zip", f"{info.filename} cannot be read: {exc}",
                              {"member": info.filename}) from None
    if len(content) > info.file_size:
        raise DatasetRejected(413, "zip_bomb", f"{info.filename} expands beyond its declared size",
                              {"member": info.filename})
    return content


def _labels_by_member(names: list[str]) -> dict[str, str | None]:
    """The label of each image member: its first folder, after looking through a common wrapper folder."""
    parts = {name: _path_parts(name) for name in names}
    while parts and all(len(p) >= 3 for p in parts.values()) and len({p[0] for p in parts.values()}) == 1:
        parts = {name: p[1:] for name, p in parts.items()}
    foldered = [len(p) >= 2 for p in parts.values()]
    if any(foldered) and not all(foldered):
        top_level = [name for name, p in parts.items() if len(p) < 2]
        raise DatasetRejected(422, "mixed_labels",
                              "put every image in a label folder (label/image.png), or none of them",
                              {"unlabeled_members": top_level[:MAX_NAMED_MEMBERS]})
    return {name: (p[0] if len(p) >= 2 else None) for name, p in parts.items()}


def _normalise(name: str, content: bytes, max_pixels: int, label: str | None = None) -> IngestedImage:
    """One image decoded and re-encoded as an RGB PNG, named by that PNG's sha256.

    Raises ImageRejected for what is not an accepted image, and 413 image_too_large above the pixel cap."""
    try:
        image = decode_image(content, max_pixels).image  # RGB, metadata dropped
    except ImageTooLarge as exc:
        raise DatasetRejected(413, "image_too_large", f"{name}: {exc}", {"member": name}) from None
    png = encode_png(image)
    return IngestedImage(label, png, hashlib.sha256(png).hexdigest(), image.width, image.height, name)


def _normalise_members(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo],
                       max_pixels: int) -> list[IngestedImage]:
    """Every member normalised (unlabeled as yet); refused whole if any member is not an accepted image."""
    normalised: list[IngestedImage] = []
    rejected: list[str] = []
    for info in members:
        content = _read_member(archive, info)
        try:
            normalised.append(_normalise(info.filename, content, max_pixels))
        except ImageRejected:
            rejected.append(info.filename)
            if len(rejected) == MAX_NAMED_MEMBERS:
                break  # enough to tell the user what is wrong
    if rejected:
        raise DatasetRejected(422, "not_an_image", "these members are not accepted images (PNG, JPEG, WEBP, TIFF)",
                              {"members": rejected})
    return normalised


def _distinct(images: list[IngestedImage], min_images: int) -> IngestedDataset:
    """The images without repeats (the first copy and its label are kept); 422 below ``min_images``."""
    distinct: dict[str, IngestedImage] = {}
    for image in images:
        distinct.setdefault(image.sha256, image)
    if len(distinct) < min_images:
        raise DatasetRejected(422, "too_few_images", f"a dataset needs at least {min_images} distinct images",
                              {"images": len(distinct), "min_images": min_images})
    return IngestedDataset(list(distinct.values()), duplicates=len(images) - len(distinct))


def ingest_zip(
    data: bytes,
    *,
    max_pixels: int,
    max_images: int = MAX_DATASET_IMAGES,
    max_total_uncompressed: int = 512 * MiB,
    max_ratio: float = 200,
    min_images: int = 8,
) -> IngestedDataset:
    """Every distinct image of the zip, normalised to PNG and labeled by folder; refuses unsafe zips whole.

    ``min_images``: 8 for a new dataset, 1 for images added to one."""
    with _open_zip(data) as archive:
        infos = archive.infolist()
        _check_names(infos)
        members = [info for info in infos if not is_ignored_member(info)]
        if not members:
            raise DatasetRejected(422, "empty_dataset", "the zip holds no images")
        _check_before_reading(members, max_images, max_total_uncompressed, max_ratio)
        images = _normalise_members(archive, members, max_pixels)
    labels = _labels_by_member([image.source_name for image in images])
    return _distinct([replace(image, label=labels[image.source_name]) for image in images], min_images)


def ingest_image(data: bytes, *, max_pixels: int, label: str | None = None, name: str = "image") -> IngestedDataset:
    """A single image file as a one-image upload; 415 when it is not an accepted image."""
    try:
        image = _normalise(name, data, max_pixels, label)
    except ImageRejected as exc:
        raise DatasetRejected(exc.status, exc.code, f"{name}: {exc}", {"member": name}) from None
    return IngestedDataset([image])


def is_zip(data: bytes) -> bool:
    """Whether an upload is meant as a zip: it starts with a zip signature (a local header,
    or the empty archive's end record). Images never do."""
    return data.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def ingest_addition(data: bytes, *, max_pixels: int, label: str | None = None,
                    name: str = "image") -> IngestedDataset:
    """Images to add to a dataset: a zip laid out like a new dataset's (at least one image),
    or one image file with an optional ``label``."""
    if not is_zip(data):
        return ingest_image(data, max_pixels=max_pixels, label=validate_label(label), name=name)
    if validate_label(label) is not None:
        raise DatasetRejected(422, "invalid_label", "a zip's labels come from its folders; "
                              "'label' goes with a single image")
    return ingest_zip(data, max_pixels=max_pixels, min_images=1)


def image_key(sha256: str) -> str:
    """Where an image lives, relative to its dataset's prefix: named by content, so stored once."""
    return f"images/{sha256}.png"


def _file_entry(image: IngestedImage) -> dict[str, Any]:
    return {"key": image_key(image.sha256), "sha256": image.sha256, "label": image.label,
            "width": image.width, "height": image.height}


def _with_files(manifest: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    """``manifest`` listing ``files`` sorted by sha256 (so not in upload order), with counts to match."""
    label_counts = Counter(entry["label"] for entry in files if entry["label"] is not None)
    return {**manifest,
            "counts": {"images": len(files), "labels": dict(sorted(label_counts.items()))},
            "labeled": bool(label_counts),
            "files": sorted(files, key=lambda entry: str(entry["sha256"]))}


def build_manifest(
    dataset_id: str,
    tenant: str,
    licence: str,
    images: list[IngestedImage],
    created_at: float,
    name: str | None = None,
) -> dict[str, Any]:
    """Version 1 of a dataset's manifest."""
    first = {"schema": MANIFEST_SCHEMA, "id": dataset_id, "tenant": tenant, "name": name, "licence": licence,
             "version": 1, "parent_sha256": None, "created_at": created_at}
    return _with_files(first, [_file_entry(image) for image in images])


def manifest_version(manifest: dict[str, Any]) -> int:
    """The manifest's version; manifests written before versioning are version 1."""
    return int(manifest.get("version", 1))


def grow_manifest(manifest: dict[str, Any], images: list[IngestedImage], created_at: float) -> dict[str, Any]:
    """The next version of ``manifest``: its files plus ``images``, pointing back at it by hash.
    ``created_at`` is this version's time."""
    child = {**manifest, "version": manifest_version(manifest) + 1, "parent_sha256": manifest_sha256(manifest),
             "created_at": created_at}
    return _with_files(child, [*manifest["files"], *(_file_entry(image) for image in images)])


def images_to_add(manifest: dict[str, Any], ingested: IngestedDataset,
                  max_images: int = MAX_DATASET_IMAGES) -> tuple[list[IngestedImage], int]:
    """The ingested images the dataset does not hold yet, and how many duplicates were skipped
    (already in the dataset, or repeated in the upload).

    A labeled dataset takes only labeled images and an unlabeled one only unlabeled images
    (422 mixed_labels); new labels are welcome. 413 too_many_images past ``max_images`` in all."""
    if ingested.labeled != manifest["labeled"]:
        wanted = "labeled (label/image.png, or a 'label')" if manifest["labeled"] else "unlabeled"
        raise DatasetRejected(422, "mixed_labels", f"this dataset takes only {wanted} images",
                              {"dataset_labeled": bool(manifest["labeled"])})
    held = {entry["sha256"] for entry in manifest["files"]}
    new = [image for image in ingested.images if image.sha256 not in held]
    if len(held) + len(new) > max_images:
        raise DatasetRejected(413, "too_many_images", f"a dataset holds at most {max_images} images",
                              {"images": len(held), "adding": len(new), "max_images": max_images})
    return new, ingested.duplicates + len(ingested.images) - len(new)


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
