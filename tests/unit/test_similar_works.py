"""Similar-work ranking: altered copies of indexed works find their originals; entries round-trip."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.analysis import corpus, crop_5_each_edge, crop_10_width, half, jpeg_q75
from shared.works_index import WorkEntry, WorkRef, phash_of, rank
from workers.works_indexing import entry_of


@pytest.fixture(scope="module")
def indexed() -> tuple[list[Image.Image], np.ndarray, np.ndarray]:
    works = corpus()
    entries = [entry_of(WorkRef("upload", f"{i:032x}"), image) for i, image in enumerate(works)]
    return works, np.stack([e.embedding for e in entries]), np.array([e.phash for e in entries], dtype=np.uint64)


@pytest.mark.parametrize("alter", [jpeg_q75, half, crop_10_width, crop_5_each_edge],
                         ids=["jpeg-q75", "half-size", "crop-10pct-width", "crop-5pct-each-edge"])
def test_an_altered_copy_finds_its_original_first(alter, indexed) -> None:  # type: ignore[no-untyped-def]
    works, matrix, hashes = indexed
    first = top10 = 0
    for i, work in enumerate(works):
        copy = alter(work)
        entry = entry_of(WorkRef("upload", "q" * 32), copy)
        found = [row for row, *_ in rank(matrix, hashes, entry.embedding, phash_of(copy), 10)]
        first += found[0] == i
        top10 += i in found
    assert first / len(works) >= 0.95, first
    assert top10 / len(works) >= 0.9, top10


def test_rank_orders_by_score_and_handles_small_indexes() -> None:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(5, 100)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    hashes = rng.integers(0, 2**63, 5, dtype=np.uint64)
    found = rank(matrix, hashes, matrix[3], int(hashes[3]), 10)
    assert len(found) == 5 and found[0][0] == 3 and found[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [score for _, score, _, _ in found] == sorted((score for _, score, _, _ in found), reverse=True)
    assert rank(matrix[:0], hashes[:0], matrix[0], 0, 5) == [] and rank(matrix, hashes, matrix[0], 0, 0) == []


def test_entries_round_trip_and_corrupt_ones_are_refused() -> None:
    ref = WorkRef("result", "a" * 32, 2)
    assert WorkRef.parse(str(ref)) == ref and WorkRef.parse("upload:" + "b" * 32) == WorkRef("upload", "b" * 32)
    vector = np.ones(100, dtype=np.float32) / 10
    entry = WorkEntry(ref, vector, 2**63 + 5)
    back = WorkEntry.unpack(ref, entry.pack())
    assert back.phash == entry.phash and np.array_equal(back.embedding, vector)
    for raw in ("", "{}", "not json", '{"e": "AAAA", "p": "00"}', '{"e": "@@@", "p": "zz"}'):
        with pytest.raises(ValueError):
            WorkEntry.unpack(ref, raw)
    with pytest.raises(ValueError):
        WorkRef.parse("result:abc")
