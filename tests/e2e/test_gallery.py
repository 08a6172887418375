"""The gallery page at ``/`` in headless Chromium, against the real stack: log in with a key,
upload a photo, paint it in a named style, see the result beside the photo, open its provenance;
and follow a job by polling when there is no event stream.

Debian's chromium (``make browser`` installs it), driven by Python playwright; playwright's own
browser downloads are never used."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from deploy.devstack import Stack
from tests.conftest import ApiClient, image_bytes

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run `make browser`")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Tests run as root, where Chromium's sandbox cannot start.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    """A fresh page (its own sessionStorage) and the script errors and CSP violations it reports.
    Chromium also logs every 4xx the page's fetches meet ("Failed to load resource"); the page
    meets some on purpose (the admin probe, the events stream it falls back from), so those pass."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.set_default_timeout(15_000)
    yield page, problems
    context.close()


def base_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.api_port}"


def test_the_page_and_its_files_are_public_with_a_strict_content_security_policy(stack: Stack) -> None:
    page = requests.get(base_url(stack) + "/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                      "frame-ancestors 'none'"):
        assert directive in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    script = requests.get(base_url(stack) + "/static/js/main.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert script.headers["Content-Security-Policy"] == policy
    assert requests.get(base_url(stack) + "/static/nothing.js", timeout=10).status_code == 404
    # Everything else still needs a key.
    assert requests.get(base_url(stack) + "/v1/styles", timeout=10).status_code == 401


def test_a_bad_key_shows_the_apis_error_message(stack: Stack, page: tuple[Any, list[str]]) -> None:
    tab, problems = page
    tab.goto(base_url(stack) + "/")
    tab.fill("#api-key", "af_0123456789abcdef_not-a-real-secret")
    tab.click("#login button[type=submit]")
    notice = tab.locator("#notice")
    notice.wait_for(state="visible")
    assert notice.inner_text() == "the API key is not valid"
    assert tab.locator("#app").is_hidden()
    assert tab.evaluate("sessionStorage.getItem('artforge.apiKey')") is None
    assert problems == []


def test_a_named_style_result_shows_beside_its_photo_with_its_provenance(
        stack: Stack, client: ApiClient, photo: Image.Image, page: tuple[Any, list[str]], tmp_path: Path) -> None:
    tab, problems = page
    log_in(tab, stack, client)

    tab.set_input_files("#upload-form input[type=file]", files=[
        {"name": "astronaut.jpg", "mimeType": "image/jpeg", "buffer": image_bytes(photo, "JPEG")}])
    tab.check("#upload-form input[name=requester_holds_rights]")
    tab.click("#upload-form button[type=submit]")
    tab.locator("#uploads li").first.wait_for()
    assert "astronaut.jpg · 512×512 · rights declared" in tab.locator("#uploads li").first.inner_text()

    tab.click("label.style-choice:has(input[value=starry-swirl])")
    assert tab.is_checked("input[name=style][value=starry-swirl]")
    tab.fill("#form-style_transfer input[name=max_side]", "384")
    listed = job_ids(tab, "style_transfer")
    tab.click("#form-style_transfer button[type=submit]")

    card = new_card(tab, "style_transfer", listed)
    result = card.locator(".results img.result-image:not(.pending)")
    result.wait_for(timeout=90_000)
    assert card.get_attribute("data-status") == "succeeded"
    job_id = card.get_attribute("data-job-id")
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["params"]["style"] == "starry-swirl" and job["results"][0]["width"] == 384

    photo_shown = card.locator("figure.input img")
    assert result.evaluate("img => img.naturalWidth") == 384
    assert photo_shown.evaluate("img => img.naturalWidth") > 0
    photo_box, result_box = photo_shown.bounding_box(), result.bounding_box()
    assert photo_box and result_box
    assert photo_box["x"] + photo_box["width"] <= result_box["x"]  # side by side: photo left of result
    assert abs(photo_box["y"] - result_box["y"]) < 40
    assert card.locator(".summary").inner_text().count("starry-swirl") == 1

    screenshot = tmp_path / "gallery.png"
    tab.screenshot(path=str(screenshot), full_page=True)
    shot = Image.open(io.BytesIO(screenshot.read_bytes()))
    assert shot.format == "PNG" and shot.width == 1400 and shot.height >= 1000
    pixels = np.asarray(shot.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 20  # not a blank page
    # The result image as the browser renders it (an element screenshot: with the tenant's earlier
    # jobs listed, it may sit below the first screen, where viewport boxes and page pixels differ).
    painted = np.asarray(Image.open(io.BytesIO(result.screenshot())).convert("RGB"), dtype=np.float32)
    assert painted.size and painted.std() > 20  # the result image is rendered, not blank

    card.locator("button.provenance").first.click()
    dialog = tab.locator("dialog#provenance")
    dialog.wait_for(state="visible")
    tab.locator("#provenance-summary dt").first.wait_for()
    summary = tab.locator("#provenance-summary").inner_text()
    assert "style_transfer" in summary and job_id in summary and "AI-generated" in summary
    record = json.loads(tab.locator("#provenance-json").text_content())
    assert record["job_id"] == job_id and record["operation"] == "style_transfer"
    tab.screenshot(path=str(tmp_path / "gallery-provenance.png"))
    tab.click("#provenance-close")
    dialog.wait_for(state="hidden")

    # Without the event stream (an API that lacks it, or a proxy that refuses it) the page polls.
    tab.route("**/v1/jobs/*/events", lambda route: route.fulfill(
        status=404, content_type="application/json",
        body=json.dumps({"error": {"code": "not_found", "message": "no events here", "details": {}}})))
    asked: list[str] = []
    answers: list[Any] = []  # the API's answers to the page's GETs of jobs
    tab.on("request", lambda request: asked.append(request.url))
    tab.on("response", lambda response: answers.append(response) if "/v1/jobs/" in response.url else None)
    tab.click("label.style-choice:has(input[value=rust-oil])")
    tab.fill("#form-style_transfer input[name=max_side]", "128")
    listed = job_ids(tab, "style_transfer")
    tab.click("#form-style_transfer button[type=submit]")
    polled = new_card(tab, "style_transfer", listed)
    polled_id = polled.get_attribute("data-job-id")
    polled.locator(".results img.result-image:not(.pending)").wait_for(timeout=60_000)
    assert polled.get_attribute("data-status") == "succeeded"
    assert any(url.endswith(f"/v1/jobs/{polled_id}/events") for url in asked)
    # The stream was refused, so the end came from polling GET /v1/jobs/{id}: once if the job was
    # done by the first answer (a 128 px job can be), more often otherwise.
    polls = [answer.json()["status"] for answer in answers
             if answer.url.endswith(f"/v1/jobs/{polled_id}") and answer.request.method == "GET"]
    assert "succeeded" in polls, polls

    assert problems == []
    print(f"screenshots: {screenshot} and {tmp_path / 'gallery-provenance.png'}")


def job_ids(tab: Any, kind: str) -> list[str]:
    """The ids of the job cards of ``kind`` on the page (the tenant's earlier jobs among them)."""
    return [card.get_attribute("data-job-id") for card in tab.locator(f"li.job.kind-{kind}").all()]


def new_card(tab: Any, kind: str, listed: list[str]) -> Any:
    """The card of the one job of ``kind`` that is on the page now and was not in ``listed``."""
    tab.locator(f"li.job.kind-{kind}").nth(len(listed)).wait_for()
    (new,) = set(job_ids(tab, kind)) - set(listed)
    return tab.locator(f"li.job[data-job-id='{new}']")


def log_in(tab: Any, stack: Stack, client: ApiClient) -> None:
    tab.goto(base_url(stack) + "/")
    tab.fill("#api-key", client.key)
    tab.click("#login button[type=submit]")
    tab.locator("#app:not([hidden]), #notice:not([hidden])").first.wait_for()
    assert tab.locator("#notice").is_hidden(), f"the page refused the key: {tab.locator('#notice').inner_text()}"


def test_an_input_uploaded_elsewhere_shows_as_its_thumbnail(stack: Stack, client: ApiClient, photo: Image.Image,
                                                            page: tuple[Any, list[str]]) -> None:
    # Uploaded and submitted over the API (as the CLI does): this page never saw the file.
    upload = client.upload_image(photo.resize((300, 200)))
    submitted = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                               "params": {"style": "bold-ink", "max_side": 64}})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    thumbnail = client.get(f"/v1/uploads/{upload['id']}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumbnail.content)).size == (256, 171)

    tab, problems = page
    log_in(tab, stack, client)
    shown = tab.locator(f"li.job[data-job-id='{job_id}'] figure.input img.input-thumbnail")
    shown.wait_for()
    assert shown.evaluate("img => img.decode().then(() => img.naturalWidth)") == 256
    assert tab.locator(f"li.job[data-job-id='{job_id}'] figure.input .no-preview").count() == 0
    # The photo's pixels, not a grey box.
    pixels = np.asarray(Image.open(io.BytesIO(shown.screenshot())).convert("RGB"), dtype=np.float32)
    assert pixels.std() > 20
    assert problems == []


def test_an_analysis_report_shows_beside_the_work(stack: Stack, client: ApiClient, photo: Image.Image,
                                                page: tuple[Any, list[str]]) -> None:
    upload = client.upload_image(photo.resize((256, 256)))
    submitted = client.submit({"kind": "analysis", "inputs": {"image": upload["id"]}, "params": {"similar": 3}})
    assert submitted.status_code == 202, submitted.text
    job = client.wait(submitted.json()["id"], timeout=120)
    assert job["status"] == "succeeded", job
    report = client.get(job["results"][0]["url"]).json()

    tab, problems = page
    log_in(tab, stack, client)
    card = tab.locator(f"li.job[data-job-id='{job['id']}']")
    shown = card.locator("figure.report-result .report:not(.pending)")
    shown.wait_for(timeout=30_000)
    # Its words in both languages, a swatch per palette colour, its nearest styles; the work beside it.
    assert card.locator("p.description").all_inner_texts() == [report["description"]["en"],
                                                              report["description"]["zh"]]
    assert card.locator(".palette-strip .swatch").count() == len(report["palette"])
    assert report["style"]["top"][0]["name"] in card.locator("p.styles").inner_text()
    assert card.locator("figure.input img").first.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    assert problems == []


# Tofu: a font-less character drawn as the same empty box, whatever the character.
CJK_NAME = "星空下的宇航员"


def glyph_ink(tab: Any, text: str) -> np.ndarray:
    """``text`` rendered large in the page's own font stack (a span beside the uploads list), as a
    boolean ink mask cropped to the ink's bounding box."""
    handle = tab.evaluate_handle("""text => {
        const span = document.createElement("span");
        span.textContent = text;
        span.style.cssText = "font-size: 64px; line-height: 1; padding: 4px; background: #fff; color: #000";
        document.querySelector("#uploads").after(span);
        return span;
    }""", text)
    shot = np.asarray(Image.open(io.BytesIO(handle.as_element().screenshot())).convert("L"))
    handle.evaluate("span => span.remove()")
    ink = shot < 128
    rows, cols = np.nonzero(ink)
    assert rows.size, f"{text!r} drew nothing"
    return ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def unlike(a: np.ndarray, b: np.ndarray) -> float:
    """The share of ink pixels two masks do not share, on a common canvas (0: the same shape)."""
    h, w = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
    pa, pb = np.zeros((h, w), bool), np.zeros((h, w), bool)
    pa[:a.shape[0], :a.shape[1]], pb[:b.shape[0], :b.shape[1]] = a, b
    return float((pa ^ pb).sum() / max((pa | pb).sum(), 1))


def test_chinese_text_is_drawn_in_real_glyphs_not_tofu(stack: Stack, client: ApiClient, photo: Image.Image,
                                                      page: tuple[Any, list[str]], tmp_path: Path) -> None:
    tab, problems = page
    log_in(tab, stack, client)
    tab.set_input_files("#upload-form input[type=file]", files=[
        {"name": f"{CJK_NAME}.jpg", "mimeType": "image/jpeg", "buffer": image_bytes(photo.resize((64, 64)), "JPEG")}])
    tab.click("#upload-form button[type=submit]")
    label = tab.locator("#uploads li", has_text=CJK_NAME).first
    label.wait_for()
    assert f"{CJK_NAME}.jpg · 64×64" in label.inner_text()
    label.screenshot(path=str(tmp_path / "cjk-label.png"))

    glyphs = {char: glyph_ink(tab, char) for char in CJK_NAME[:4]}
    tofu = glyph_ink(tab, "\u0378")  # unassigned: no font has it, so it is drawn as the missing-glyph box
    for char, ink in glyphs.items():
        assert unlike(ink, tofu) > 0.3, f"{char} is drawn as the missing-glyph box"
    chars = list(glyphs)
    for i, first in enumerate(chars):
        for second in chars[i + 1:]:
            assert unlike(glyphs[first], glyphs[second]) > 0.3, f"{first} and {second} look the same: tofu"
    assert problems == []
    print(f"screenshot of the label: {tmp_path / 'cjk-label.png'}")
