"""The gallery: one page at ``/`` that drives the /v1 API from a browser.

Plain HTML, ES modules and CSS from ``api/static/``: no build step, nothing from a CDN. The
page and its files are public (they hold no data); the page asks for an API key and sends it
as a Bearer header on every /v1 call, so images are fetched by script and shown as blob: URLs.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

STATIC = Path(__file__).resolve().parent.parent / "static"

# Everything the page loads is its own: no inline script or style, no other origin.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])

blp = Blueprint("gallery", __name__, static_folder=STATIC, static_url_path="/static")


@blp.route("/", methods=["GET"])
def index() -> Response:
    return send_from_directory(STATIC, "index.html")


@blp.after_request
def _page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    # Revalidated on every load (ETag), so a deploy shows at once.
    response.headers["Cache-Control"] = "no-cache"
    return response
