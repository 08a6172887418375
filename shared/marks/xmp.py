"""XMP in PNG results: the IPTC digital source type, creator, rights, usage terms and our record id.

Written as the iTXt chunk ``XML:com.adobe.xmp`` (uncompressed, before the first IDAT) into PNG
bytes, so the pixels are not re-encoded; read back from PNG, or from JPEG/WebP/TIFF through
Pillow when a re-encoding tool kept the packet. Write it before C2PA signing: the C2PA hash
binds every byte of the file, this chunk included.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET  # noqa: S405 - untrusted packets are refused if they declare a DTD
from xml.sax.saxutils import escape, quoteattr

from PIL import Image

from shared.provenance import digital_source_type_uri

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = b"XML:com.adobe.xmp"
# Not a resolvable URL: an XMP namespace only has to be a stable URI.
ARTFORGE_NS = "https://ns.artforge.example/provenance/1.0/"
NAMESPACES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "artforge": ARTFORGE_NS,
}
# PLUS "Data Mining" values; IPTC recommends this property for a text-and-data-mining reservation.
DATA_MINING_PROHIBITED = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED"
MAX_PACKET_BYTES = 256 * 1024


class NotAPng(ValueError):
    pass


@dataclass(frozen=True)
class XmpFacts:
    digital_source_type: str  # the IPTC code, e.g. "trainedAlgorithmicMedia"
    creator: str
    rights: str  # dc:rights, e.g. "(c) 2026 alice"
    usage_terms: str
    record_id: str
    job_id: str = ""
    ai_system: str = ""  # Iptc4xmpExt:AISystemUsed, e.g. the model name
    ai_system_version: str = ""
    data_mining: str = DATA_MINING_PROHIBITED
    extra: dict[str, str] = field(default_factory=dict)  # more artforge:* attributes


def xmp_packet(facts: XmpFacts) -> str:
    ns = NAMESPACES
    attributes = {
        "Iptc4xmpExt:DigitalSourceType": digital_source_type_uri(facts.digital_source_type),
        "xmpRights:Marked": "True",
        "plus:DataMining": facts.data_mining,
        "artforge:RecordId": facts.record_id,
        "artforge:JobId": facts.job_id,
        "Iptc4xmpExt:AISystemUsed": facts.ai_system,
        "Iptc4xmpExt:AISystemVersionUsed": facts.ai_system_version,
        **{f"artforge:{name}": value for name, value in facts.extra.items()},
    }
    declarations = "".join(f"\n    xmlns:{prefix}={quoteattr(uri)}" for prefix, uri in ns.items() if prefix != "x")
    attrs = "".join(f"\n    {name}={quoteattr(value)}" for name, value in attributes.items() if value)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="{ns["x"]}">\n'
        f" <rdf:RDF xmlns:rdf=\"{ns['rdf']}\">\n"
        f'  <rdf:Description rdf:about=""{declarations}{attrs}>\n'
        f"   <dc:creator><rdf:Seq><rdf:li>{escape(facts.creator)}</rdf:li></rdf:Seq></dc:creator>\n"
        f'   <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{escape(facts.rights)}</rdf:li></rdf:Alt></dc:rights>\n'
        "   <xmpRights:UsageTerms><rdf:Alt>"
        f'<rdf:li xml:lang="x-default">{escape(facts.usage_terms)}</rdf:li>'
        "</rdf:Alt></xmpRights:UsageTerms>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )


def embed_xmp(png: bytes, facts: XmpFacts) -> bytes:
    """``png`` with its XMP packet replaced by one describing ``facts``; pixels untouched."""
    chunks = list(_chunks(png))
    data = XMP_KEYWORD + b"\x00\x00\x00" + b"\x00" + b"\x00" + xmp_packet(facts).encode("utf-8")
    out = io.BytesIO()
    out.write(PNG_SIGNATURE)
    written = False
    for kind, body in chunks:
        if kind == b"iTXt" and body.startswith(XMP_KEYWORD + b"\x00"):
            continue  # an older packet: replaced
        if kind == b"IDAT" and not written:
            out.write(_chunk(b"iTXt", data))
            written = True
        out.write(_chunk(kind, body))
    return out.getvalue()


def read_xmp(image_bytes: bytes) -> dict[str, object] | None:
    """The facts in an image's XMP packet, or None when it has none (or one we cannot read)."""
    packet = _png_packet(image_bytes) if image_bytes.startswith(PNG_SIGNATURE) else _pillow_packet(image_bytes)
    if packet is None or len(packet) > MAX_PACKET_BYTES or b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return None
    try:
        root = ET.fromstring(packet.decode("utf-8").lstrip("\ufeff"))  # noqa: S314 - no DTD, size-capped
    except (ET.ParseError, UnicodeDecodeError):
        return None
    description = root.find(".//rdf:Description", NAMESPACES)
    if description is None:
        return None

    def attribute(prefix: str, name: str) -> str | None:
        return description.get(f"{{{NAMESPACES[prefix]}}}{name}")

    def items(path: str) -> list[str]:
        return [li.text or "" for li in description.findall(path, NAMESPACES)]

    rights = items("dc:rights/rdf:Alt/rdf:li")
    usage = items("xmpRights:UsageTerms/rdf:Alt/rdf:li")
    return {
        "digital_source_type": attribute("Iptc4xmpExt", "DigitalSourceType"),
        "creator": items("dc:creator/rdf:Seq/rdf:li"),
        "rights": rights[0] if rights else None,
        "usage_terms": usage[0] if usage else None,
        "data_mining": attribute("plus", "DataMining"),
        "ai_system": attribute("Iptc4xmpExt", "AISystemUsed"),
        "record_id": attribute("artforge", "RecordId"),
        "job_id": attribute("artforge", "JobId"),
    }


def _chunks(png: bytes) -> Iterator[tuple[bytes, bytes]]:
    if not png.startswith(PNG_SIGNATURE):
        raise NotAPng("not a PNG file")
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind = png[pos + 4:pos + 8]
        body = png[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise NotAPng("truncated PNG chunk")
        yield kind, body
        pos += 12 + length
        if kind == b"IEND":
            return
    raise NotAPng("PNG without IEND")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_packet(png: bytes) -> bytes | None:
    try:
        for kind, body in _chunks(png):
            if kind == b"iTXt" and body.startswith(XMP_KEYWORD + b"\x00"):
                rest = body[len(XMP_KEYWORD) + 1:]
                compressed = rest[0] == 1
                # Skip compression method, language tag and translated keyword (both NUL-terminated).
                text = rest[2:].split(b"\x00", 2)[-1]
                # A packet bigger than the cap comes back truncated and then fails to parse.
                return zlib.decompressobj().decompress(text, MAX_PACKET_BYTES + 1) if compressed else text
    except (NotAPng, zlib.error, IndexError):
        return None
    return None


def _pillow_packet(data: bytes) -> bytes | None:
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only, never the pixels
            packet = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    except Exception:  # any file Pillow cannot open simply has no XMP we can use
        return None
    if isinstance(packet, str):
        return packet.encode("utf-8")
    return packet if isinstance(packet, bytes) else None
