"""Safe ingestion of a user's dataset zip (``POST /v1/datasets``) and the dataset manifest.

The zip is read in memory and never extracted to disk. The whole zip is refused when any
member name could escape a folder, when the declared or actual sizes look like a zip bomb,
or when a member is neither an accepted image nor ignorable clutter (folders, ``__MACOSX/``,
dotfiles). Each image is normalised (RGB, metadata dropped, re-encoded as PNG) and named by
the sha256 of that PNG, so identical images are stored once.

Labels come from folders: ``label/image.png``. Deeper paths use their first folder as the
label; a single folder wrapping everything (as zipping a folder produces) is looked through.
Images at the top level are unlabeled, and a zip must be either all labeled or all unlabeled.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class _Normalised:
    source_name: str
    png: bytes
    width: int
    height: int


def _normalise_members(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], max_pixels: int) -> list[_Normalised]:
    """Every member decoded and re-encoded as an RGB PNG; refused whole if any member is not an accepted image."""
    normalised: list[_Normalised] = []
    rejected: list[str] = []
    for info in members:
        content = _read_member(archive, info)
        try:
            image = decode_image(content, max_pixels).image  # RGB, metadata dropped
        except ImageTooLarge as exc:
            raise DatasetRejected(413, "image_too_large", f"{info.filename}: {exc}",
                                  {"member": info.filename}) from None
        except ImageRejected:
            rejected.append(info.filename)
            if len(rejected) == MAX_NAMED_MEMBERS:
                break  # enough to tell the user what is wrong
            continue
        normalised.append(_Normalised(info.filename, encode_png(image), image.width, image.height))
    if rejected:
        raise DatasetRejected(422, "not_an_image", "these members are not accepted images (PNG, JPEG, WEBP, TIFF)",
                              {"members": rejected})
    return normalised


def ingest_zip(
    data: bytes,
    *,
    max_pixels: int,
    max_images: int = 5000,
    max_total_uncompressed: int = 512 * MiB,
    max_ratio: float = 200,
    min_images: int = 8,
) -> IngestedDataset:
    """Every distinct image of the zip, normalised to PNG and labeled by folder; refuses unsafe zips whole."""
    with _open_zip(data) as archive:
        infos = archive.infolist()
        _check_names(infos)
        members = [info for info in infos if not is_ignored_member(info)]
        if not members:
            raise DatasetRejected(422, "empty_dataset", "the zip holds no images")
        _check_before_reading(members, max_images, max_total_uncompressed, max_ratio)
        normalised = _normalise_members(archive, members, max_pixels)
    labels = _labels_by_member([item.source_name for item in normalised])
    images: dict[str, IngestedImage] = {}
    for item in normalised:
        digest = hashlib.sha256(item.png).hexdigest()
        if digest not in images:  # duplicates keep the first copy and its label
            images[digest] = IngestedImage(labels[item.source_name], item.png, digest, item.width, item.height,
                                           item.source_name)
    if len(images) < min_images:
        raise DatasetRejected(422, "too_few_images", f"a dataset needs at least {min_images} distinct images",
                              {"images": len(images), "min_images": min_images})
    return IngestedDataset(list(images.values()))


def build_manifest(
    dataset_id: str,
    tenant: str,
    licence: str,
    images: list[IngestedImage],
    created_at: float,
    name: str | None = None,
) -> dict[str, Any]:
    """The dataset manifest; ``files`` is sorted by sha256, so it does not depend on the zip's order."""
    label_counts: dict[str, int] = {}
    for image in images:
        if image.label is not None:
            label_counts[image.label] = label_counts.get(image.label, 0) + 1
    files = [{"key": f"images/{image.sha256}.png", "sha256": image.sha256, "label": image.label,
              "width": image.width, "height": image.height}
             for image in sorted(images, key=lambda image: image.sha256)]
    return {
        "schema": MANIFEST_SCHEMA,
        "id": dataset_id,
        "tenant": tenant,
        "name": name,
        "licence": licence,
        "created_at": created_at,
        "counts": {"images": len(images), "labels": dict(sorted(label_counts.items()))},
        "labeled": bool(label_counts),
        "files": files,
    }


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
