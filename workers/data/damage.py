"""A seeded simulator of damage to artwork: training pairs and evaluation sets for restoration.

``simulate_damage(image, rng, config)`` returns the damaged image, a mask of the pixels whose
original content is lost or covered, and the kinds of damage applied, in order.

Invariants (tests check them):

- The same image, the same ``rng`` state and the same config give identical output.
- Local damage (stains, craquelure, scratches, holes, tears) changes pixels only inside
  ``mask``; with no global kind applied, ``damaged.image != image`` implies ``mask``.
- Global degradations (fade, noise, JPEG) change pixels everywhere and are never in the mask.
- A hole's longest bounding-box side lies in ``config.hole_size`` (8..96 px by default),
  clamped to half the image's shorter side so that a hole never swallows a small image.
- Counts are given per ``REFERENCE_AREA`` pixels and scale with the image's area, so the
  damaged share of the picture is about the same from 32x32 to 2048 px; a kind that is
  applied draws at least one instance.

Kinds are applied in a fixed order that follows an artwork's life: it fades, is stained,
cracks, is scratched and torn, and is finally scanned (noise) and compressed (JPEG).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

# Counts in the config are per this many pixels (a 256x256 picture) and scale with area.
REFERENCE_AREA = 256 * 256
# A hole is at most this share of the image's shorter side: a 96 px hole would cover most of a 128 px crop.
HOLE_MAX_SHARE_OF_SIDE = 0.5

LOCAL_KINDS = ("stains", "craquelure", "scratches", "holes", "tears")
GLOBAL_KINDS = ("fade", "noise", "jpeg")
# The order in which kinds are applied (and listed in ``Damaged.applied``).
DAMAGE_ORDER = ("fade", "stains", "craquelure", "scratches", "holes", "tears", "noise", "jpeg")

# Backing seen through a hole or tear: paper white, aged beige, a dark mount or stretcher.
BACKING_COLOURS = np.array([(240, 236, 226), (214, 196, 160), (34, 30, 28)], dtype=np.float32)
# Brown of foxing and water stains, before a per-stain variation.
STAIN_COLOUR = np.array((165, 112, 52), dtype=np.float32)
# The warm paper tone a faded picture drifts towards (yellowing).
FADE_TONE = np.array((214, 198, 160), dtype=np.float32)
# How far a crack bends, as a share of the cell size; more looks like dried mud rather than paint.
CRACK_WOBBLE = 0.2
# Antialiased crack pixels fainter than this (of 255) are left out, which hardly changes the picture
# but keeps a 1 px crack about 1.5 px wide in the mask rather than 3.
CRACK_FRINGE = 64
# Stain alpha below this share of the blurred blob is cut to zero, so the stain has a finite
# support that the mask covers exactly.
STAIN_SUPPORT = 0.15


@dataclass(frozen=True)
class DamageConfig:
    """What damage to draw. Every kind has a probability of being applied; 0 switches it off.

    Ranges are inclusive ``(low, high)``; sizes in px; counts per ``REFERENCE_AREA`` pixels.
    """

    scratches_probability: float = 0.6
    scratch_count: tuple[int, int] = (1, 5)
    scratch_width: tuple[int, int] = (1, 3)

    craquelure_probability: float = 0.3
    crack_cell_size: tuple[int, int] = (8, 20)  # the mean side of a crack-network cell
    crack_region_share: tuple[float, float] = (0.25, 0.6)  # of the image side, the cracked patch's size

    holes_probability: float = 0.5
    hole_count: tuple[int, int] = (1, 3)
    hole_size: tuple[int, int] = (8, 96)  # longest side of the hole's bounding box

    tears_probability: float = 0.2
    tear_count: tuple[int, int] = (1, 1)
    tear_size: tuple[int, int] = (16, 96)

    stains_probability: float = 0.3
    stain_count: tuple[int, int] = (1, 2)
    stain_size: tuple[int, int] = (12, 64)
    stain_opacity: tuple[float, float] = (0.35, 0.75)

    fade_probability: float = 0.4
    fade_strength: tuple[float, float] = (0.2, 0.6)  # 0: unchanged, 1: a flat paper tone

    noise_probability: float = 0.4
    noise_sigma: tuple[float, float] = (3.0, 15.0)  # on the 0..255 scale

    jpeg_probability: float = 0.3
    jpeg_quality: tuple[int, int] = (20, 70)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_probability") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{field.name} must be in [0, 1], got {value}")
            if isinstance(value, tuple) and not 0 <= value[0] <= value[1]:
                raise ValueError(f"{field.name} must be a range (low, high) with 0 <= low <= high, got {value}")
        if self.hole_size[0] < 1 or self.tear_size[0] < 1 or self.scratch_width[0] < 1:
            raise ValueError("hole_size, tear_size and scratch_width must start at 1 px or more")
        if self.crack_cell_size[0] < 3:
            raise ValueError("crack_cell_size must start at 3 px or more")

    @classmethod
    def only(cls, kind: str, **overrides: object) -> DamageConfig:
        """A config that always applies ``kind`` and nothing else (for evaluating one operation)."""
        if kind not in DAMAGE_ORDER:
            raise ValueError(f"unknown damage kind {kind!r}; known: {DAMAGE_ORDER}")
        probabilities = {f"{k}_probability": float(k == kind) for k in DAMAGE_ORDER}
        return cls(**{**probabilities, **overrides})  # type: ignore[arg-type]

    @classmethod
    def holes_only(cls) -> DamageConfig:
        return cls.only("holes")

    @classmethod
    def scratches_only(cls) -> DamageConfig:
        return cls.only("scratches")

    @classmethod
    def fade_only(cls) -> DamageConfig:
        return cls.only("fade")

    @classmethod
    def noise_only(cls) -> DamageConfig:
        return cls.only("noise")


@dataclass(frozen=True)
class Damaged:
    image: np.ndarray  # uint8 [H, W, 3], the damaged image
    mask: np.ndarray  # bool [H, W], True where the original pixels are lost or covered
    applied: tuple[str, ...]  # which damage kinds were applied, in order


def simulate_damage(image: np.ndarray, rng: np.random.Generator, config: DamageConfig = DamageConfig()) -> Damaged:  # noqa: B008
    """Damage ``image`` (uint8 [H, W, 3]) at random, drawing every random number from ``rng``."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if min(height, width) < 8:
        raise ValueError(f"image must be at least 8x8 px, got {width}x{height}")
    area_scale = height * width / REFERENCE_AREA
    canvas = image.astype(np.float32)
    mask = np.zeros((height, width), dtype=bool)
    applied: list[str] = []

    def count(bounds: tuple[int, int]) -> int:
        """A count drawn from ``bounds``, scaled by area with unbiased random rounding, at least 1."""
        scaled = rng.integers(bounds[0], bounds[1] + 1) * area_scale
        return max(1, int(scaled) + int(rng.random() < scaled - int(scaled)))

    for kind in DAMAGE_ORDER:
        if rng.random() >= getattr(config, f"{kind}_probability"):
            continue
        applied.append(kind)
        if kind == "fade":
            canvas = _fade(canvas, rng, config)
        elif kind == "noise":
            sigma = rng.uniform(*config.noise_sigma)
            canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(sigma)
        elif kind == "jpeg":
            canvas = _jpeg(canvas, int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)))
        else:
            draw = {"stains": _stain, "craquelure": _craquelure, "scratches": _scratch,
                    "holes": _hole, "tears": _tear}[kind]
            for _ in range(1 if kind == "craquelure" else count(getattr(config, _COUNT_FIELD[kind]))):
                draw(canvas, mask, rng, config)
    return Damaged(image=_to_uint8(canvas), mask=mask, applied=tuple(applied))


_COUNT_FIELD = {"stains": "stain_count", "scratches": "scratch_count", "holes": "hole_count", "tears": "tear_count"}


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def _blend(canvas: np.ndarray, mask: np.ndarray, alpha: np.ndarray, colour: np.ndarray, box: tuple[int, int]) -> None:
    """Composite ``colour`` over ``canvas`` with ``alpha`` (float [h, w]) at top-left ``box``, in place.

    ``colour`` is [3] or [h, w, 3]; every pixel with alpha > 0 joins the mask.
    """
    y, x = box
    h, w = alpha.shape
    region = canvas[y:y + h, x:x + w]
    a = alpha[:, :, None]
    region[:] = region * (1.0 - a) + colour * a
    mask[y:y + h, x:x + w] |= alpha > 0


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Smooth random field in about [-1, 1] with features about ``cell`` px across."""
    coarse = (max(2, math.ceil(shape[0] / cell) + 1), max(2, math.ceil(shape[1] / cell) + 1))
    field = rng.uniform(-1.0, 1.0, coarse).astype(np.float32)
    return cv2.resize(field, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _fade(canvas: np.ndarray, rng: np.random.Generator, config: DamageConfig) -> np.ndarray:
    """Lost saturation, then contrast pulled towards a warm paper tone (which also yellows).

    Both steps are affine in RGB, so they run as one ``cv2.transform`` (one pass even at 2048 px).
    """
    strength = rng.uniform(*config.fade_strength)
    saturation_loss = rng.uniform(0.5, 1.0) * strength
    luma = np.array([0.299, 0.587, 0.114])
    desaturate = (1 - saturation_loss) * np.eye(3) + saturation_loss * np.outer(np.ones(3), luma)
    tone = FADE_TONE * rng.uniform(0.85, 1.05)
    affine = np.column_stack([(1 - strength) * desaturate, strength * tone]).astype(np.float32)
    return cv2.transform(canvas, affine)


def _jpeg(canvas: np.ndarray, quality: int) -> np.ndarray:
    bgr = np.ascontiguousarray(_to_uint8(canvas)[:, :, ::-1])  # OpenCV's JPEG expects BGR for its chroma
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        raise RuntimeError("JPEG round trip failed")
    return decoded[:, :, ::-1].astype(np.float32)


def _ragged_outline(rng: np.random.Generator, size: float, shape: str) -> np.ndarray:
    """Corners of a closed outline centred on 0 whose bounding box's longest side is ``size``."""
    if shape == "rectangle":
        ratio = rng.uniform(0.4, 1.0)
        corners = np.array([(-1, -ratio), (1, -ratio), (1, ratio), (-1, ratio)], dtype=np.float64)
        # Ragged edges: points along each side, nudged across it.
        t = np.linspace(0, 1, 6, endpoint=False)[:, None]
        points = np.concatenate([a + (b - a) * t for a, b in zip(corners, np.roll(corners, -1, axis=0), strict=True)])
        points += rng.normal(0, 0.06, points.shape)
    else:
        count = 24
        angles = np.sort(rng.uniform(0, 2 * math.pi, count))
        if shape == "ellipse":
            radii = 1.0 + rng.normal(0, 0.03, count)
        else:  # "blob": lobes from a few low harmonics, then jitter
            harmonics, amplitudes, phases = np.array([2, 3, 5]), rng.uniform(0, 0.25, 3), rng.uniform(0, 2 * math.pi, 3)
            radii = 1.0 + (amplitudes * np.cos(np.outer(angles, harmonics) + phases)).sum(axis=1)
            radii = np.maximum(radii + rng.normal(0, 0.08, count), 0.25)
        stretch = rng.uniform(0.45, 1.0)
        points = np.column_stack([radii * np.cos(angles), radii * stretch * np.sin(angles)])
    turn = rng.uniform(0, math.pi)
    rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    points = points @ rotation.T
    extent = (points.max(axis=0) - points.min(axis=0)).max()
    points = (points - (points.max(axis=0) + points.min(axis=0)) / 2) * (size - 1) / extent
    return points


def _backing(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """What shows through a hole: a backing colour with a faint fibrous texture."""
    colour = BACKING_COLOURS[rng.integers(len(BACKING_COLOURS))] + rng.uniform(-10, 10, 3).astype(np.float32)
    texture = _smooth_noise(rng, shape, 3.0) * 4.0
    return colour + texture[:, :, None]


def _clamped_size(bounds: tuple[int, int], height: int, width: int, rng: np.random.Generator) -> int:
    limit = max(1, int(min(height, width) * HOLE_MAX_SHARE_OF_SIDE))
    return int(rng.integers(min(bounds[0], limit), min(bounds[1], limit) + 1))


def _hole(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: DamageConfig) -> None:
    height, width = mask.shape
    size = _clamped_size(config.hole_size, height, width, rng)
    outline = _ragged_outline(rng, size, ("blob", "ellipse", "rectangle")[rng.integers(3)])
    low = outline.min(axis=0)
    span = np.ceil(outline.max(axis=0) - low).astype(int) + 1  # (w, h) of the hole's box
    x = int(rng.integers(0, width - span[0] + 1))
    y = int(rng.integers(0, height - span[1] + 1))
    alpha = np.zeros((span[1], span[0]), dtype=np.uint8)
    cv2.fillPoly(alpha, [np.rint(outline - low).astype(np.int32)], 1, lineType=cv2.LINE_8)
    _blend(canvas, mask, alpha.astype(np.float32), _backing(rng, alpha.shape), (y, x))


def _tear(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: DamageConfig) -> None:
    """A piece torn from an edge: a jagged bite whose mouth lies on one side of the image."""
    height, width = mask.shape
    size = _clamped_size(config.tear_size, height, width, rng)
    depth = size * rng.uniform(0.3, 0.7)
    t = np.linspace(0.0, 1.0, 14)
    along = t * size
    inward = np.sin(math.pi * t) * depth * (1 + rng.normal(0, 0.2, t.size)).clip(0.3, 1.6)
    inward[[0, -1]] = 0
    side = int(rng.integers(4))
    long_side = width if side in (0, 1) else height
    start = rng.uniform(0, long_side - size)
    if side == 0:  # top
        points = np.column_stack([start + along, inward])
    elif side == 1:  # bottom
        points = np.column_stack([start + along, height - 1 - inward])
    elif side == 2:  # left
        points = np.column_stack([inward, start + along])
    else:  # right
        points = np.column_stack([width - 1 - inward, start + along])
    points = points.clip(0, (width - 1, height - 1))
    corner = np.floor(points.min(axis=0)).astype(int)
    span = np.ceil(points.max(axis=0)).astype(int) + 1 - corner
    alpha = np.zeros((span[1], span[0]), dtype=np.uint8)
    cv2.fillPoly(alpha, [np.rint(points - corner).astype(np.int32)], 1, lineType=cv2.LINE_8)
    _blend(canvas, mask, alpha.astype(np.float32), _backing(rng, alpha.shape), (int(corner[1]), int(corner[0])))


def _scratch(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: DamageConfig) -> None:
    """A thin bright or dark line or gentle curve (a quadratic Bézier), 1-3 px wide."""
    height, width = mask.shape
    # Lengths follow the reference size, not the image, so scratch coverage stays flat as counts scale with area.
    length = min(math.hypot(height, width), math.sqrt(2 * REFERENCE_AREA)) * rng.uniform(0.15, 0.9)
    start = rng.uniform((0, 0), (width, height))
    heading = rng.uniform(0, 2 * math.pi)
    end = start + length * np.array([math.cos(heading), math.sin(heading)])
    bend = rng.normal(0, 0.15) * length  # how far the control point leaves the straight line
    control = (start + end) / 2 + bend * np.array([-math.sin(heading), math.cos(heading)])
    t = np.linspace(0, 1, 24)[:, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    thickness = int(rng.integers(config.scratch_width[0], config.scratch_width[1] + 1))
    opacity = rng.uniform(0.7, 1.0)
    bright = rng.random() < 0.6  # scratches through varnish mostly show light
    colour = np.full(3, rng.uniform(215, 255) if bright else rng.uniform(10, 60), dtype=np.float32)
    # A 1 px centre line, widened by its distance transform: cv2's own thick antialiased lines come out
    # about twice as wide as asked, and the scratch must stay 1-3 px.
    centre, (y0, x0) = _draw_local(curve, height, width)
    if centre is None:
        return
    distance = cv2.distanceTransform(np.where(centre > 0, 0, 255).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    alpha = np.clip(thickness / 2 + 0.5 - distance, 0, 1) * opacity
    _blend(canvas, mask, alpha, colour, (y0, x0))


def _draw_local(points: np.ndarray, height: int, width: int) -> tuple[np.ndarray | None, tuple[int, int]]:
    """A 1 px open polyline drawn only over its bounding box clipped to the image: (layer, (y, x)).

    Drawing over the box, not the whole image, keeps many strokes cheap on large images.
    """
    pad = 3  # room for the widest scratch around its centre line
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + pad
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return None, (0, 0)
    layer = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    # Fixed-point coordinates (shift 2: quarter pixels) keep sub-pixel curves smooth.
    cv2.polylines(layer, [np.rint((points - (x0, y0)) * 4).astype(np.int32)], False, 255, 1, cv2.LINE_8, shift=2)
    if not layer.any():
        return None, (0, 0)
    return layer, (int(y0), int(x0))


def _craquelure(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: DamageConfig) -> None:
    """A connected network of dark hairline cracks over a patch: the edges of a wobbly Voronoi tiling."""
    height, width = mask.shape
    share = rng.uniform(*config.crack_region_share)
    box_h, box_w = max(8, int(height * share)), max(8, int(width * share))
    y, x = int(rng.integers(0, height - box_h + 1)), int(rng.integers(0, width - box_w + 1))
    cell = rng.uniform(*config.crack_cell_size)
    sites = rng.uniform((0, 0), (box_w, box_h), (max(2, round(box_h * box_w / cell**2)), 2)).astype(np.float32)
    subdivision = cv2.Subdiv2D((0, 0, box_w, box_h))
    subdivision.insert(sites)  # type: ignore[call-overload]
    facets, _ = subdivision.getVoronoiFacetList([])
    # Bend every cell edge: split it in thirds and move all points through one smooth displacement
    # field, so the two cells that share an edge draw the same crack.
    shift_x = _smooth_noise(rng, (box_h, box_w), cell) * cell * CRACK_WOBBLE
    shift_y = _smooth_noise(rng, (box_h, box_w), cell) * cell * CRACK_WOBBLE
    thirds = np.array([0.0, 1 / 3, 2 / 3], dtype=np.float32)[None, :, None]
    # All facets at once: corner i of a facet goes to corner i + 1, the last back to the first.
    sizes = np.array([len(facet) for facet in facets])
    corners = np.concatenate(facets)
    following = np.arange(len(corners)) + 1
    ends = np.cumsum(sizes)
    following[ends - 1] = ends - sizes
    points = (corners[:, None, :] + (corners[following] - corners)[:, None, :] * thirds).reshape(-1, 2)
    row = np.clip(np.rint(points[:, 1]), 0, box_h - 1).astype(int)
    column = np.clip(np.rint(points[:, 0]), 0, box_w - 1).astype(int)
    points = points + np.column_stack([shift_x[row, column], shift_y[row, column]])
    # Outer cells reach far outside the box; clip them so the fixed-point coordinates stay small.
    points = np.rint(points.clip(-box_w - box_h, 2 * (box_w + box_h)) * 4).astype(np.int32)
    polygons = np.split(points, 3 * ends[:-1])
    layer = np.zeros((box_h, box_w), dtype=np.uint8)
    cv2.polylines(layer, polygons, True, 255, 1, cv2.LINE_AA, shift=2)  # shift 2: quarter-pixel corners
    # The patch ends at a ragged ellipse, so the network has no square border.
    grid_y, grid_x = np.mgrid[0:box_h, 0:box_w].astype(np.float32)
    ellipse = ((grid_y - box_h / 2) / (box_h / 2)) ** 2 + ((grid_x - box_w / 2) / (box_w / 2)) ** 2
    inside = ellipse + _smooth_noise(rng, (box_h, box_w), cell * 2) * 0.3 < 1.0
    darkness = (0.8 + 0.2 * _smooth_noise(rng, (box_h, box_w), cell * 3)).clip(0.5, 1.0)
    # Drop the faintest antialiasing fringe, which hardly changes a pixel but would widen the mask.
    layer[layer < CRACK_FRINGE] = 0
    alpha = layer.astype(np.float32) / 255 * darkness * inside
    colour = canvas[y:y + box_h, x:x + box_w] * 0.2  # a crack shows the dark ground beneath the paint
    _blend(canvas, mask, alpha, colour, (y, x))


def _stain(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: DamageConfig) -> None:
    """A semi-opaque brownish blob with soft edges and a darker tide line at its rim."""
    height, width = mask.shape
    size = int(rng.integers(config.stain_size[0], config.stain_size[1] + 1))
    size = max(4, min(size, int(min(height, width) * HOLE_MAX_SHARE_OF_SIDE)))
    pad = max(2, size // 4)  # room for the blur to spread
    box = size + 2 * pad
    blob = np.zeros((box, box), dtype=np.float32)
    outline = _ragged_outline(rng, size, "blob") + box / 2
    cv2.fillPoly(blob, [np.rint(outline).astype(np.int32)], 1.0, lineType=cv2.LINE_AA)
    soaked = cv2.GaussianBlur(blob, (0, 0), size / 10)
    support = np.clip((soaked - STAIN_SUPPORT) / (1 - STAIN_SUPPORT), 0, 1)
    tide = np.exp(-(((support - 0.1) / 0.08) ** 2)) * rng.uniform(0.0, 0.5)
    # The body saturates quickly inside the rim (a soaked patch), the tide line adds at the rim.
    alpha = np.clip(np.sqrt(support) * 0.8 + tide, 0, 1) * (support > 0) * rng.uniform(*config.stain_opacity)
    # Place it anywhere, even partly outside the image; crop to the overlap.
    top, left = int(rng.integers(-box // 2, height - box // 2)), int(rng.integers(-box // 2, width - box // 2))
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + box, height), min(left + box, width)
    alpha = alpha[y0 - top:y1 - top, x0 - left:x1 - left]
    colour = STAIN_COLOUR * rng.uniform(0.7, 1.15) + rng.uniform(-12, 12, 3).astype(np.float32)
    # A stain tints what is beneath it rather than hiding it: multiply, then lean towards the brown.
    region = canvas[y0:y1, x0:x1]
    tinted = region * (colour / 255) * 0.5 + colour * 0.5
    _blend(canvas, mask, alpha.astype(np.float32), tinted, (y0, x0))
