"""The main jobs end to end, through the real queue.

Run ``python -m client.demo`` (``make demo`` starts the stack first). Steps:
1. the astronaut photo in the named style "starry-swirl";
2. the cat photo in the style of any painting: here the stylized astronaut from step 1;
3. train a small conditional GAN of your own ("my-abstract", 32 px) on the built-in procedural
   dataset through the training queue (about two minutes on 2 cores; skipped when the stack
   already has it), and print how its model card measures it;
4. create new works with the model that ships with the service ("abstract", 64 px, enlarged to
   256 px by the learned upscaler): four styles and one Chinese prompt, each as a grid;
5. restore an old, damaged copy of the cat photo (faded, torn and scratched here, with a
   mask of the damage): inpainting and de-fading.
Results and their provenance land in ``demo-output/``. Exit code 0 only if every job succeeds.
"""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from client.cli import wait_with_progress
from client.config import ConfigError, load_config
from client.sdk import ApiError, ArtForgeClient, ArtForgeError, Job, ServiceUnreachable

if TYPE_CHECKING:
    import numpy as np

OUTPUT_DIR = Path("demo-output")
NAMED_STYLE = "starry-swirl"
READY_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 900.0
SHIPPED_MODEL = "abstract"  # ships with the service: every tenant can create from it
MODEL = "my-abstract"  # the demo's own short training
# Sized for about two minutes of training on 2 CPU cores: a glimpse of the queue, not the quality.
TRAINING = {"target": "gan", "model": MODEL, "dataset": "procedural", "resolution": 32, "steps": 400,
            "per_style": 60, "batch_size": 16, "checkpoint_every": 200, "sample_every": 200, "eval_per_label": 8}
CREATIONS = [("circles", {"style": "circles"}), ("grid", {"style": "grid"}),
             ("ink_landscape", {"style": "ink_landscape"}), ("skyline", {"style": "skyline"}),
             ("prompt", {"prompt": "抽象画，色彩鲜艳，有现代感"})]


def image_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode an RGB pixel array as PNG."""
    return image_png(Image.fromarray(pixels))


def sample_photos() -> tuple[bytes, bytes]:
    """The astronaut and the cat from scikit-image's bundled sample data, as PNG bytes."""
    from skimage import data  # imported here: scikit-image is a dev extra, slow to import

    return png_bytes(data.astronaut()), png_bytes(data.chelsea())


def damaged_copy(photo_png: bytes) -> tuple[bytes, bytes]:
    """The photo faded towards yellowed paper, with torn-out patches and scratches, and the
    mask of that damage (white = damaged). Seeded, so every demo shows the same damage."""
    import random

    from PIL import ImageDraw

    photo = Image.open(io.BytesIO(photo_png)).convert("RGB")
    faded = Image.blend(photo, Image.new("RGB", photo.size, (222, 205, 160)), 0.45)
    mask = Image.new("L", photo.size, 0)
    for canvas, colour in ((ImageDraw.Draw(faded), (245, 240, 225)), (ImageDraw.Draw(mask), 255)):
        shapes = random.Random(5)  # the same shapes on the photo and on the mask
        for _ in range(4):  # torn-out patches
            x, y, r = shapes.randrange(photo.width), shapes.randrange(photo.height), shapes.randint(8, 24)
            canvas.ellipse((x - r, y - r * 0.7, x + r, y + r * 0.7), fill=colour)
        for _ in range(6):  # scratches
            x, y = shapes.randrange(photo.width), shapes.randrange(photo.height)
            canvas.line((x, y, x + shapes.randint(-120, 120), y + shapes.randint(-40, 40)), fill=colour, width=2)
    return image_png(faded), image_png(mask)


def wait_until_ready(client: ArtForgeClient, timeout: float = READY_TIMEOUT_S) -> None:
    """Return once ``/readyz`` answers 2xx; re-raise the last error after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ready()
            return
        except (ApiError, ServiceUnreachable):
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


@dataclass(frozen=True)
class Outcome:
    """A finished job and the files downloaded for it (none unless it succeeded)."""

    job: Job
    files: list[Path]

    @property
    def succeeded(self) -> bool:
        return self.job.get("status") == "succeeded"

    @property
    def images(self) -> list[Path]:
        return [path for path in self.files if path.name.endswith(".png")]

    @property
    def provenance(self) -> list[Path]:
        return [path for path in self.files if path.name.endswith(".provenance.json")]


def run_job(client: ArtForgeClient, title: str, params: dict[str, Any], inputs: dict[str, str],
            kind: str = "style_transfer") -> Outcome:
    """Submit a job, show its progress, and download what it made."""
    job = client.submit(kind, params=params, inputs=inputs)
    print(f"\n{title}\n  job {job['id']} submitted")
    final = wait_with_progress(client, job["id"], timeout=JOB_TIMEOUT_S)
    print(f"  job {final['id']} {final['status']}")
    if final.get("status") != "succeeded":
        error = final.get("error") or {}
        print(f"  error {error.get('code')}: {error.get('message')}", file=sys.stderr)
        return Outcome(final, [])
    return Outcome(final, client.download(final, OUTPUT_DIR))


def run_demo(client: ArtForgeClient) -> int:
    """Both jobs in order; 1 as soon as one does not succeed."""
    astronaut_png, cat_png = sample_photos()

    astronaut = client.upload(astronaut_png, filename="astronaut.png")
    print(f"uploaded the astronaut photo: {astronaut['id']}")
    named = run_job(
        client,
        f'1/5  The astronaut in the named style "{NAMED_STYLE}"',
        params={"style": NAMED_STYLE, "max_side": 768},
        inputs={"content": astronaut["id"]},
    )
    if not named.succeeded or not named.images:
        return 1

    cat = client.upload(cat_png, filename="chelsea.png")
    # A style reference needs a rights declaration: this painting is the demo's own result.
    painting = client.upload(named.images[0], requester_holds_rights=True)
    print(f"uploaded the cat photo: {cat['id']}; the painting from job 1 as the style: {painting['id']}")
    arbitrary = run_job(
        client,
        "2/5  The cat in the style of the painting from job 1 (any painting works as a style)",
        params={"strength": 0.9},
        inputs={"content": cat["id"], "style": painting["id"]},
    )
    if not arbitrary.succeeded:
        return 1

    outcomes = [("astronaut, starry-swirl", named), ("cat, styled by the astronaut painting", arbitrary)]
    if not train_model(client):
        return 1
    for title, params in CREATIONS:
        outcome = run_job(client, f"4/5  New works from the shipped model {SHIPPED_MODEL!r}: {title}",
                          params={"model": SHIPPED_MODEL, "count": 16, "seed": 2026, "upscale": 256, **params},
                          inputs={}, kind="creation")
        if not outcome.succeeded:
            return 1
        if "prompt" in params and outcome.provenance:
            reading = json.loads(outcome.provenance[0].read_text())["output"]["details"]["prompt"]
            print(f"  the prompt {params['prompt']!r}: understood {reading['understood']}, styles "
                  f"{sorted(reading['label_weights'])}, colours {reading['attributes']}")
        grid = OUTPUT_DIR / f"creation-{title}.png"
        save_grid(outcome.images, grid)
        outcomes.append((f"creation, {title} (grid: {grid})", outcome))

    damaged, mask = damaged_copy(cat_png)
    restored = run_job(client, "5/5  Restoring a faded, torn and scratched copy of the cat photo",
                       params={"operations": ["defade", "inpaint"]},
                       # An image to restore needs a rights declaration: scikit-image's cat photo,
                       # "Chelsea", is released by its photographer, Stefan van der Walt, as CC0.
                       inputs={"image": client.upload(damaged, filename="damaged-cat.png", licence="CC0-1.0",
                                                      rights_holder="Stefan van der Walt")["id"],
                               "mask": client.upload(mask, filename="damage-mask.png")["id"]},
                       kind="restoration")
    if not restored.succeeded:
        return 1
    outcomes.append(("restoration: results[0] restored, results[1] the mask used", restored))
    print_summary(outcomes)
    return 0


def train_model(client: ArtForgeClient) -> bool:
    """Train the demo's GAN unless this stack already has it."""
    if any(m["name"] == MODEL and not m["public"] for m in client.models()["items"]):
        print(f"\n3/5  The model {MODEL!r} is already trained on this stack; using it")
        return True
    outcome = run_job(client, f"3/5  Training {MODEL!r}: a conditional GAN on the procedural dataset (~2 min)",
                      params=TRAINING, inputs={}, kind="training")
    if outcome.succeeded:
        print_measures(MODEL, client.model(MODEL)["cards"][-1]["metrics"])
        shipped = client.model(SHIPPED_MODEL)["cards"][-1]["metrics"]
        print_measures(f"{SHIPPED_MODEL} (shipped, trained for hours)", shipped)
    return outcome.succeeded


def print_measures(name: str, metrics: dict[str, Any]) -> None:
    """A model card's measures, each beside its real-vs-real floor and the untrained network's."""
    fd, accuracy = metrics["frechet_distance"], metrics["conditional_accuracy"]
    swd = {key: metrics[key]["average"] for key in ("swd", "swd_real_floor", "swd_untrained")}
    print(f"  {name}: Fréchet distance {fd['generated']:.0f} (real-vs-real {fd['real_floor']:.0f}, untrained "
          f"{fd['untrained']:.0f}); SWD {swd['swd']:.0f} (real {swd['swd_real_floor']:.0f}, "
          f"untrained {swd['swd_untrained']:.0f}); in their style: {accuracy['cnn']:.0%} and "
          f"{accuracy['features']:.0%} by two classifiers (real works: {accuracy['cnn_real']:.0%}, "
          f"{accuracy['features_real']:.0%}); variety within a style {metrics['diversity']['generated']['mean']:.2f} "
          "of real")


def save_grid(images: list[Path], path: Path, columns: int = 4) -> None:
    tiles = [Image.open(p).convert("RGB") for p in images]
    width, height = tiles[0].size
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * width, rows * height), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * width, (i // columns) * height))
    sheet.save(path)


def print_summary(outcomes: list[tuple[str, Outcome]]) -> None:
    print("\nDone. Your results:")
    for title, outcome in outcomes:
        print(f"  {title} (job {outcome.job['id']})")
        for path in outcome.images:
            print(f"    image:      {path}")
        for path in outcome.provenance:
            print(f"    provenance: {path}")
    print("\nEach provenance JSON describes how its image was made.")
    print("Try the CLI next: `artforge styles`, `artforge list`. `make down` stops the stack.")


def main() -> int:
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"demo: {exc}\nStart the stack with `make up` (or run `make demo`).", file=sys.stderr)
        return 2
    print(f"ArtForge demo against {config.url}")
    with ArtForgeClient.from_config(config) as client:
        try:
            wait_until_ready(client)
            return run_demo(client)
        except ServiceUnreachable as exc:
            print(f"demo: {exc}\nIs the stack up? `make up` starts it.", file=sys.stderr)
            return 1
        except ArtForgeError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
