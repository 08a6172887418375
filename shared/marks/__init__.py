"""Marks that travel with a result's pixels and bytes, and reading them back.

- ``watermark``: an invisible 32-bit payload that survives JPEG q75 and a 0.5x resize.
- ``xmp``: the IPTC digital source type, creator, rights and record id as XMP in the PNG.
- ``c2pa_manifest``: a signed C2PA manifest (ES256), embedded and as a sidecar; its verification.
- ``perceptual``: pHash/dHash for near-duplicate lookup, and how much an edit changed an image.
- ``evidence``: everything an image says about itself, for ``POST /v1/verify``.

Shared, not worker-only: the API reads these marks to answer a verify request and hashes
uploads for the protected-works check (numpy, scipy and imagehash; no torch). Writing them in
the right order is the store step's job (``workers.provenance.marking``). The record the marks
point to is built, chained and signed in ``shared.provenance``.
"""
