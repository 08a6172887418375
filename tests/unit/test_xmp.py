"""XMP in PNG: the IPTC digital source type and rights are written as an iTXt chunk and read back."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from shared.images import encode_png
from shared.marks.xmp import XmpFacts, embed_xmp, read_xmp, xmp_packet

FACTS = XmpFacts(digital_source_type="compositeWithTrainedAlgorithmicMedia", creator="ArtForge",
                 rights="© 2026 Alice & Co <studio>", usage_terms="No text and data mining.",
                 record_id="0123abcd", job_id="job-9", ai_system="restoration/unet", ai_system_version="3")


@pytest.fixture(scope="module")
def png() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    return encode_png(Image.fromarray(pixels))


def chunk_types(data: bytes) -> list[bytes]:
    types, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        types.append(data[pos + 4:pos + 8])
        pos += 12 + length
    return types


def test_xmp_round_trips_every_field(png: bytes) -> None:
    facts = read_xmp(embed_xmp(png, FACTS))
    assert facts == {
        "digital_source_type": "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia",
        "creator": ["ArtForge"],
        "rights": "© 2026 Alice & Co <studio>",
        "usage_terms": "No text and data mining.",
        "data_mining": "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED",
        "ai_system": "restoration/unet",
        "record_id": "0123abcd",
        "job_id": "job-9",
    }


def test_packet_is_an_itxt_chunk_before_the_pixels_and_pixels_are_untouched(png: bytes) -> None:
    marked = embed_xmp(png, FACTS)
    types = chunk_types(marked)
    assert types.index(b"iTXt") < types.index(b"IDAT")
    assert b"iTXt" + b"XML:com.adobe.xmp\x00\x00\x00" in marked
    with Image.open(io.BytesIO(marked)) as a, Image.open(io.BytesIO(png)) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert "Iptc4xmpExt:DigitalSourceType" in a.info["XML:com.adobe.xmp"]


def test_writing_again_replaces_the_packet(png: bytes) -> None:
    twice = embed_xmp(embed_xmp(png, FACTS), XmpFacts(**{**FACTS.__dict__, "record_id": "second"}))
    assert chunk_types(twice).count(b"iTXt") == 1
    assert read_xmp(twice)["record_id"] == "second"


def test_xmp_is_read_from_a_jpeg_that_kept_it(png: bytes) -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buffer, format="JPEG", quality=75, xmp=xmp_packet(FACTS).encode())
    assert read_xmp(buffer.getvalue())["record_id"] == "0123abcd"


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_files_without_a_readable_packet_have_none(png: bytes, data: bytes) -> None:
    assert read_xmp(data) is None
    assert read_xmp(png) is None
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buffer, format="JPEG")
    assert read_xmp(buffer.getvalue()) is None


def test_packets_declaring_entities_are_refused(png: bytes) -> None:
    hostile = XmpFacts(**{**FACTS.__dict__, "record_id": "x"})
    packet = xmp_packet(hostile).replace("<x:xmpmeta", '<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta', 1)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buffer, format="JPEG", xmp=packet.encode())
    assert read_xmp(buffer.getvalue()) is None


def test_non_png_bytes_are_refused_for_writing() -> None:
    with pytest.raises(ValueError, match="not a PNG"):
        embed_xmp(b"GIF89a", FACTS)
