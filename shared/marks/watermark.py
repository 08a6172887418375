"""An invisible watermark carrying a 32-bit payload through JPEG q75 re-encoding and 0.5x downscaling.

Method. The luma of the image is resampled to a canonical 128x128 grid, so a uniform resize of
the marked image changes little of what the detector sees. On that grid, a band of full-frame
DCT coefficients is split at random (keyed) into one group per coded bit; a coded bit is the
sign of its group's projection onto a keyed, frequency-weighted +/-1 vector. The message is the
payload, a CRC-24 and a few free bits; a rate-1/2 convolutional code (K=7, the 133/171 pair)
turns it into 152 coded bits, and the detector decodes them with a Viterbi decoder.

Embedding is informed: the free bits are chosen (by a Viterbi search over the image's own
projections) so the codeword already agrees with the image where that is cheap; each projection
is then moved only as far as needed to clear a margin on the right side; the few coded bits
that would cost most are left for the code to repair, kept apart so that it can. The change is
made on the canonical grid, resized to a working copy of the image (at most 256 px a side), scaled
a little by local contrast and added to R, G and B alike (luma only), a few times over so clipping
and resampling are accounted for; the summed change is then resized to the image and added once.

A payload is reported only when its CRC-24 matches (an unrelated image passes with probability
2**-24). Cropping, rotation, flips and strong colour changes are out of scope: they move or
reshape the canonical grid. The measured figures (PSNR, bit accuracy, false positives) are in
tests/unit/test_watermark.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image
from scipy.fft import dctn, idctn
from scipy.ndimage import uniform_filter

PAYLOAD_BITS = 32
CRC_BITS = 24  # an unrelated image passes the check with probability 2**-24
# After every FREE_EVERY payload/CRC bits the message has one free bit that the embedder picks
# to fit the image (informed coding); the detector decodes it like any other bit and drops it.
FREE_EVERY = 4
CANONICAL = 128
# DCT band on the canonical grid. Lower radii carry more image energy (costlier to overrule),
# higher ones fade under a 0.5x resize followed by JPEG q75. Coefficients within AXIS_GAP of an
# axis are left out: straight horizontal and vertical edges (grids, stripes) pile energy there.
BAND = (8.0, 64.0)
AXIS_GAP = 4
# Coefficient weights grow as radius**WEIGHT_EXPONENT: image energy falls with frequency, so
# the projections lean on the coefficients where the image interferes least.
WEIGHT_EXPONENT = 1.5
MARGIN = 10.0  # projection margin aimed for, in canonical luma units (unit-norm spreading vectors)
# Share of coded bits the embedder may leave to the code when overruling the image costs too much.
MAX_SKIPPED = 0.04
# ... and no two of them closer than this many coded bits: 2 x the code's constraint length.
SKIP_SPACING = 14
ITERATIONS = 5
# The change is scaled by (local contrast + MASK_FLOOR) ** MASK_EXPONENT: a little less on flat paint.
MASK_GRID = 256  # no side of the working copy, where the local contrast is measured, is longer
MASK_RADIUS = 2
MASK_FLOOR = 4.0
MASK_EXPONENT = 0.3
# Agreement of the soft bits with the decoded codeword needed besides the CRC; a sanity floor only.
MIN_AGREEMENT = 0.4
# Below this many pixels on a side the band cannot be held; such images are returned unmarked.
# 64-127 px: readable as stored only; 128-255: also after JPEG q75; 256 and up: also after 0.5x.
MIN_SIDE = 64
# Public, for development and tests only: anyone with this key can read (and overwrite) the
# payloads. A deployment derives its key from a secret (``key_from_secret``, setting
# ``ARTFORGE_WATERMARK_KEY``) and must keep it when rotating nothing else: marks made with one
# key are invisible to another.
DEFAULT_KEY = 0x41525446  # "ARTF"

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_G0, _G1, _K = 0o133, 0o171, 7
_TAIL = _K - 1
_STATES = 1 << _TAIL
_FIXED = PAYLOAD_BITS + CRC_BITS
_STEPS = _FIXED + _FIXED // FREE_EVERY + _TAIL
CODED_BITS = 2 * _STEPS


@dataclass(frozen=True)
class Detection:
    payload: int | None
    # Mean agreement of the soft bits with the decoded codeword, 0..1: about 0.9 on a marked image,
    # 0.85+ after JPEG q75 and 0.5x at 512 px and up; 0.5-0.75 on unmarked ones. The CRC decides.
    confidence: float


def key_from_secret(secret: str) -> int:
    """The watermark key of a deployment's secret (128 bits of its sha256); ``DEFAULT_KEY`` for ""."""
    if not secret:
        return DEFAULT_KEY
    return int.from_bytes(hashlib.sha256(b"artforge-watermark\0" + secret.encode()).digest()[:16], "big")


def embed(image: Image.Image, payload: int, key: int = DEFAULT_KEY) -> Image.Image:
    """``image`` (any mode; the result is RGB) with ``payload`` (0 <= payload < 2**32) marked in it.

    Check with ``detect`` that the payload reads back before indexing it: an image under
    ``MIN_SIDE`` comes back unmarked.
    """
    if not 0 <= payload < 1 << PAYLOAD_BITS:
        raise ValueError(f"the payload must fit in {PAYLOAD_BITS} bits")
    if min(image.size) < MIN_SIDE:
        return image.convert("RGB")
    layout = _layout(key)
    rgb = np.asarray(image.convert("RGB"))
    size = (rgb.shape[1], rgb.shape[0])
    host = layout.project(_canonical(_luma(rgb)))
    signs = _scrambler(key) * _fitted_codeword(payload, host * _scrambler(key))
    shortfall = np.maximum(MARGIN - signs * host, 0.0)
    skipped = _skipped_bits(shortfall)
    # The change is worked out on a copy of at most MASK_GRID px a side: it holds every frequency
    # of the canonical band, and a large image costs no more per iteration than a 256 px one.
    # Colour planes (3, h, w) rather than pixels: each step below is then one pass over memory.
    work_size = (min(size[0], MASK_GRID), min(size[1], MASK_GRID))
    if work_size != size:
        # An area average of the 8-bit image, a model of the canonical grid only: against Pillow's
        # filter, 4 ms less at 1024 px for the same read-back under every attack of
        # tests/unit/test_watermark.py (24 pictures of 777-1024 px) and 0.1 dB less PSNR.
        rgb_work = cv2.resize(rgb, work_size, interpolation=cv2.INTER_AREA)
    else:
        rgb_work = rgb
    work = np.ascontiguousarray(rgb_work.transpose(2, 0, 1), dtype=np.float32)
    mask = _texture_mask(_planes_luma(work))
    delta = np.zeros(work.shape[1:], dtype=np.float32)
    marked = np.empty_like(work)
    for _ in range(ITERATIONS):
        shortfall[skipped] = 0.0
        if shortfall.max() < 0.05 * MARGIN:
            break
        # Overshoot a little: masking, resampling and clipping each take some of the step away.
        delta += mask * _resize(layout.synthesise(signs * shortfall * 1.1), work_size)
        np.clip(np.add(work, delta, out=marked), 0, 255, out=marked)
        shortfall = np.maximum(MARGIN - signs * layout.project(_canonical(_planes_luma(marked))), 0.0)
    if work_size != size:
        delta = _resize(delta, size)
    # The same as rounding the clipped float sum (the pixels are whole numbers): each pixel's
    # change is either a rise or a fall, and OpenCV's uint8 add and subtract saturate at 0 and 255
    # (3-5x faster than the sum in int16 at 1024 px).
    step = np.rint(delta)
    rise, fall = (np.clip(part, 0, 255).astype(np.uint8) for part in (step, -step))
    return Image.fromarray(cv2.subtract(cv2.add(rgb, cv2.merge((rise,) * 3)), cv2.merge((fall,) * 3)))


def _skipped_bits(shortfall: np.ndarray) -> np.ndarray:
    """The coded bits left wrong for the code to repair, decided once on the unmarked image: the
    most expensive to impose (short by more than 3x the margin), at most MAX_SKIPPED of them, and
    no two within SKIP_SPACING coded bits of each other. The code repairs scattered errors, not a
    burst: four or five skipped bits among the last 14 left a 512 px picture's mark unreadable for
    0.5 % of payloads, as stored."""
    skipped = np.zeros(CODED_BITS, dtype=bool)
    taken: list[int] = []
    for position in np.argsort(shortfall)[::-1]:
        if len(taken) == int(MAX_SKIPPED * CODED_BITS) or shortfall[position] <= 3 * MARGIN:
            break
        if all(abs(int(position) - other) >= SKIP_SPACING for other in taken):
            taken.append(int(position))
    skipped[taken] = True
    return skipped


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Luma of an [h, w, 3] image, as float32."""
    return np.asarray(rgb, dtype=np.float32) @ LUMA


def _planes_luma(planes: np.ndarray) -> np.ndarray:
    """Luma of a [3, h, w] stack of colour planes."""
    return (LUMA @ planes.reshape(3, -1)).reshape(planes.shape[1:])


def detect(image: Image.Image, key: int = DEFAULT_KEY) -> tuple[int | None, float]:
    """The payload marked in ``image`` and a confidence in 0..1, or ``(None, confidence)``."""
    found = read(image, key)
    return found.payload, found.confidence


def read(image: Image.Image, key: int = DEFAULT_KEY) -> Detection:
    soft = soft_bits(image, key)
    message = _decode(soft)
    confidence = max(0.0, float(soft @ _symbols(message)) / CODED_BITS)
    fixed = message[_fixed_positions()]
    payload_bits, crc_bits = fixed[:PAYLOAD_BITS], fixed[PAYLOAD_BITS:]
    if _bits_to_int(crc_bits) == _crc(payload_bits) and confidence >= MIN_AGREEMENT:
        return Detection(_bits_to_int(payload_bits), confidence)
    return Detection(None, confidence)


def soft_bits(image: Image.Image, key: int = DEFAULT_KEY) -> np.ndarray:
    """The coded bits as read, before decoding: +/-1 per coded bit, clipped at the margin (for measurements)."""
    luma = _luma(np.asarray(image.convert("RGB")))
    # Undo the scrambler so the soft bits line up with the convolutional codeword (+ means 1).
    return np.clip(_layout(key).project(_canonical(luma)) / MARGIN, -1.0, 1.0) * _scrambler(key)


def codeword(image: Image.Image, key: int = DEFAULT_KEY) -> np.ndarray:
    """The +/-1 codeword the decoder settles on for ``image`` (for measuring raw bit accuracy)."""
    return _symbols(_decode(soft_bits(image, key)))


def _decode(soft: np.ndarray) -> np.ndarray:
    return _viterbi((_SYMBOLS[None] * soft.reshape(_STEPS, 1, 1, 2)).sum(axis=-1), _allowed(None))


# --- the canonical grid and its DCT band ------------------------------------------------------------

def _resize(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``plane`` resampled to ``size`` (width, height) by Pillow's BILINEAR filter, float32."""
    plane = np.ascontiguousarray(plane, dtype=np.float32)
    if size[0] >= plane.shape[1] and size[1] >= plane.shape[0]:
        # Enlarging, both filters interpolate between the same two pixels: OpenCV's result is
        # Pillow's to within float rounding (5e-7), 20x faster at 1024 px (no conversions).
        return cv2.resize(plane, size, interpolation=cv2.INTER_LINEAR)
    # Shrinking, Pillow widens its kernel with the scale (it averages like an area filter) and
    # OpenCV's INTER_LINEAR does not; the detector's canonical grid is defined by Pillow's.
    img = Image.fromarray(plane, "F")
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def _canonical(luma: np.ndarray) -> np.ndarray:
    return _resize(luma, (CANONICAL, CANONICAL)).astype(np.float64)


def _texture_mask(luma: np.ndarray) -> np.ndarray:
    """Where the change may go: more on texture and edges, less on flat paint; unit RMS, the shape of ``luma``."""
    window = 2 * MASK_RADIUS + 1
    luma = luma.astype(np.float32)
    # "mirror" reflects about the edge pixel without repeating it, as numpy's pad(mode="reflect").
    mean = uniform_filter(luma, window, mode="mirror")
    mean_sq = uniform_filter(luma * luma, window, mode="mirror")
    local_std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    mask = (local_std + MASK_FLOOR) ** MASK_EXPONENT
    return mask / np.sqrt(np.mean(mask * mask))


@dataclass(frozen=True)
class _Layout:
    index: np.ndarray  # [CODED_BITS, per_bit] flat DCT coefficient indices
    vector: np.ndarray  # [CODED_BITS, per_bit] keyed signs times frequency weights, unit norm per bit

    def project(self, grid: np.ndarray) -> np.ndarray:
        coefficients = dctn(grid, norm="ortho").ravel()
        return (coefficients[self.index] * self.vector).sum(axis=1)

    def synthesise(self, amounts: np.ndarray) -> np.ndarray:
        """The least-energy canonical-grid change that moves each bit's projection by ``amounts``."""
        coefficients = np.zeros(CANONICAL * CANONICAL)
        coefficients[self.index.ravel()] = (self.vector * amounts[:, None]).ravel()
        return idctn(coefficients.reshape(CANONICAL, CANONICAL), norm="ortho")


@lru_cache(maxsize=4)
def _layout(key: int) -> _Layout:
    u, v = np.meshgrid(np.arange(CANONICAL), np.arange(CANONICAL), indexing="ij")
    radius = np.hypot(u, v)
    band = np.flatnonzero((radius >= BAND[0]) & (radius < BAND[1]) & (np.minimum(u, v) >= AXIS_GAP))
    rng = np.random.default_rng([key, 1])
    per_bit = len(band) // CODED_BITS
    index = rng.permutation(band)[: per_bit * CODED_BITS].reshape(CODED_BITS, per_bit)
    vector = rng.choice([-1.0, 1.0], size=index.shape) * radius.ravel()[index] ** WEIGHT_EXPONENT
    return _Layout(index=index, vector=vector / np.linalg.norm(vector, axis=1, keepdims=True))


@lru_cache(maxsize=4)
def _scrambler(key: int) -> np.ndarray:
    # Keyed +/-1 per coded bit, so a flat or periodic image does not look like any particular codeword.
    return np.random.default_rng([key, 2]).choice([-1.0, 1.0], size=CODED_BITS)


# --- the code: payload + CRC-24 + free bits, convolutional K=7 rate 1/2, Viterbi --------------------

def _int_to_bits(value: int, width: int) -> np.ndarray:
    return np.array([(value >> (width - 1 - i)) & 1 for i in range(width)], dtype=np.uint8)


def _bits_to_int(bits: np.ndarray) -> int:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def _crc(bits: np.ndarray) -> int:
    """CRC-24/OPENPGP over a bit string."""
    crc = 0xB704CE
    for bit in bits:
        top = ((crc >> 23) & 1) ^ int(bit)
        crc = ((crc << 1) & 0xFFFFFF) ^ (0x864CFB if top else 0)
    return crc


def _parity(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    for shift in range(_K):
        out ^= (x >> shift) & 1
    return out


# The encoder register holds the newest bit in its LSB: state s and input u go to (2s + u) mod 64.
# _SYMBOLS[s, u] are the two output symbols (+1 for a 1) of that transition.
_REGISTER = (np.arange(_STATES)[:, None] << 1) | np.arange(2)[None, :]
_SYMBOLS = np.stack([_parity(_REGISTER & _G0), _parity(_REGISTER & _G1)], axis=-1) * 2.0 - 1.0
# The trellis backwards: next state n is reached with input n & 1 from state n >> 1 or from that
# state with its oldest bit set.
_INPUT = np.arange(_STATES) & 1
_LOW = np.arange(_STATES) >> 1
_HIGH = _LOW | (_STATES >> 1)


@lru_cache(maxsize=1)
def _fixed_positions() -> np.ndarray:
    """Message steps that carry payload and CRC bits; the others before the tail are free."""
    body = np.arange(_STEPS - _TAIL)
    return body[(body + 1) % (FREE_EVERY + 1) != 0]


def _allowed(fixed_bits: np.ndarray | None) -> np.ndarray:
    """[steps, 2] which inputs each step may take: the tail is zeros, fixed bits are given or free."""
    allowed = np.ones((_STEPS, 2), dtype=bool)
    allowed[_STEPS - _TAIL:, 1] = False
    if fixed_bits is not None:
        positions = _fixed_positions()
        allowed[positions, 1 - fixed_bits] = False
    return allowed


def _symbols(message: np.ndarray) -> np.ndarray:
    """The coded +/-1 symbols of a full message (tail included)."""
    state, out = 0, np.empty((_STEPS, 2))
    for t, u in enumerate(message):
        out[t] = _SYMBOLS[state, u]
        state = ((state << 1) | int(u)) & (_STATES - 1)
    return out.ravel()


def _viterbi(branch: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The message (all steps) with the highest summed ``branch[t, state, input]`` that ends in state 0."""
    branch = branch.reshape(_STEPS, _STATES, 2)
    # Every step's gathers at once, so the loop below is a few small array operations a step.
    from_low, from_high = branch[:, _LOW, _INPUT], branch[:, _HIGH, _INPUT]
    barred = np.where(allowed[:, _INPUT], 0.0, -np.inf)
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    took_high = np.empty((_STEPS, _STATES), dtype=bool)
    for t in range(_STEPS):
        low = metric[_LOW] + from_low[t]
        high = metric[_HIGH] + from_high[t]
        np.greater(high, low, out=took_high[t])
        metric = np.maximum(low, high)
        metric += barred[t]
    state, message = 0, np.zeros(_STEPS, dtype=np.uint8)
    for t in range(_STEPS - 1, -1, -1):
        message[t] = state & 1
        state = int(_HIGH[state] if took_high[t, state] else _LOW[state])
    return message


def _fitted_codeword(payload: int, host: np.ndarray) -> np.ndarray:
    """The +/-1 codeword for ``payload`` whose free bits make it cheapest to impose on ``host``
    (descrambled projections): each coded symbol costs (MARGIN - symbol * host)**2 when short."""
    bits = _int_to_bits(payload, PAYLOAD_BITS)
    fixed = np.concatenate([bits, _int_to_bits(_crc(bits), CRC_BITS)])
    pairs = host.reshape(_STEPS, 1, 1, 2)
    cost = (np.maximum(MARGIN - _SYMBOLS[None] * pairs, 0.0) ** 2).sum(axis=-1)
    return _symbols(_viterbi(-cost, _allowed(fixed)))
