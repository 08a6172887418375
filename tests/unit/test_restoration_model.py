"""The restoration networks, their training loop, checkpoints and inference helpers, on the
CPU with tiny networks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from workers.data.damage import DamageConfig, simulate_damage
from workers.data.photos import photo_tiles
from workers.data.procedural import make_dataset
from workers.metrics.restoration import psnr
from workers.models.builders import (
    load_detector,
    load_fade_corrector,
    load_inpainter,
    restoration_inpainter_from_card,
    restoration_model_from_card,
)
from workers.models.restoration import (
    DamageDetector,
    FadeCorrector,
    InpaintingNet,
    RestorationConfig,
    apply_colour_map,
    pull_push_fill,
)
from workers.restoration.classical import inpaint
from workers.restoration.learned import defade_learned, detect_learned, inpaint_learned
from workers.training.checkpoint import state_from_bytes, state_to_bytes
from workers.training.restoration import (
    SAMPLE_ROWS,
    RestorationTrainConfig,
    dry_run,
    laplacian_l1,
    train_restoration,
)
from workers.training.restoration_eval import evaluate_restoration, learned_operations

TINY = RestorationConfig(width=8, depth=2, dilations=(2,), detector_width=4, detector_depth=2, fade_width=4)
QUICK = RestorationTrainConfig(steps=6, batch_size=4, patch=32, checkpoint_every=3, sample_every=100, seed=3)


class Canceled(Exception):
    pass


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny networks gain nothing from a second thread, and on a busy machine its spin-waits
    made these tests 5-20x slower and erratic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def art() -> list[np.ndarray]:
    """Procedural paintings of mixed sizes (the loop takes any size >= the patch)."""
    images = list(make_dataset(1, 48, seed=2)[0])
    return images[:3] + [np.ascontiguousarray(image[:40, :45]) for image in images[3:]]


def tensors_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def trained_tiny(net: torch.nn.Module) -> torch.nn.Module:
    """Non-zero weights everywhere (the inpainter's last layer starts at zero)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net.eval()


# -- the networks -----------------------------------------------------------------------


@pytest.mark.parametrize("height,width", [(37, 53), (9, 130), (64, 64), (5, 6)])
def test_networks_keep_any_size(height: int, width: int) -> None:
    image = torch.rand(2, 3, height, width) * 2 - 1
    mask = (torch.rand(2, 1, height, width) > 0.7).float()
    with torch.no_grad():
        assert InpaintingNet(TINY)(image, mask).shape == (2, 3, height, width)
        assert DamageDetector(TINY)(image).shape == (2, 1, height, width)
        assert FadeCorrector(TINY)(image).shape == (2, 3, height, width)


def test_an_untrained_fade_corrector_is_the_identity() -> None:
    image = torch.rand(2, 3, 50, 70) * 2 - 1
    with torch.no_grad():
        assert torch.equal(FadeCorrector(TINY)(image), image)


def test_the_colour_map_is_affine_per_pixel_and_one_per_image() -> None:
    image = torch.rand(2, 3, 5, 7) * 2 - 1
    coefficients = torch.zeros(2, 3, 4)
    coefficients[0, :, 3] = 0.5  # image 0: every channel shifted by 0.5
    coefficients[1, 0, 0] = 1.0  # image 1: red doubled
    out = apply_colour_map(image, coefficients)
    assert torch.allclose(out[0], image[0] + 0.5)
    assert torch.allclose(out[1, 0], 2 * image[1, 0]) and torch.equal(out[1, 1:], image[1, 1:])


def test_a_fade_corrector_trained_on_faded_art_undoes_fading_on_unseen_art() -> None:
    """A few hundred steps of the training loop's fade corrector (alone: the others are not
    needed here) bring unseen faded paintings closer to their originals than the fade left them."""
    train, _ = make_dataset(4, 64, seed=11)
    unseen, _ = make_dataset(1, 64, seed=12)
    config = RestorationTrainConfig(steps=300, batch_size=1, patch=32, damage="fade_only", checkpoint_every=1000,
                                    sample_every=1000, seed=1)
    result = train_restoration(list(train), TINY, config)
    net = load_fade_corrector(result.fade_state, TINY)
    faded = [simulate_damage(c, np.random.default_rng(i), DamageConfig.fade_only()).image for i, c in enumerate(unseen)]
    before = np.mean([psnr(c, f) for c, f in zip(unseen, faded, strict=True)])
    after = np.mean([psnr(c, defade_learned(net, f)) for c, f in zip(unseen, faded, strict=True)])
    print(f"fade corrector, 300 steps, unseen faded art: {before:.2f} -> {after:.2f} dB")
    assert after > before + 3


def test_inpainter_output_equals_its_input_outside_the_mask_bitwise() -> None:
    net = trained_tiny(InpaintingNet(TINY))
    image = torch.rand(3, 3, 33, 41) * 2 - 1
    mask = (torch.rand(3, 1, 33, 41) > 0.6).float()
    with torch.no_grad():
        out = net(image, mask)
    keep = (mask < 0.5).expand_as(image)
    assert torch.equal(out[keep], image[keep])
    assert not torch.equal(out[~keep], image[~keep])


def test_pull_push_fill_keeps_known_pixels_and_fills_a_flat_image_exactly() -> None:
    image = torch.rand(1, 3, 20, 27)
    mask = torch.zeros(1, 1, 20, 27)
    mask[..., 3:15, 5:22] = 1
    filled = pull_push_fill(image, mask)
    assert torch.equal(filled[..., mask[0, 0] == 0], image[..., mask[0, 0] == 0])
    flat = torch.full((1, 3, 20, 27), 0.25)
    assert torch.allclose(pull_push_fill(flat * (1 - mask), mask), flat)


def test_restoration_config_round_trips_and_refuses_nonsense() -> None:
    assert RestorationConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    with pytest.raises(ValueError):
        RestorationConfig(width=0)
    with pytest.raises(ValueError):
        RestorationConfig(dilations=(2, 0))
    assert RestorationTrainConfig.from_dict(json.loads(json.dumps(QUICK.to_dict()))) == QUICK
    with pytest.raises(ValueError):
        RestorationTrainConfig(damage="fire")
    with pytest.raises(ValueError):
        RestorationTrainConfig(patch=36)  # not divisible by 2**(pyramid_levels - 1)


def test_laplacian_loss_is_zero_only_for_equal_images() -> None:
    a = torch.rand(2, 3, 32, 32)
    assert laplacian_l1(a, a, 4) == 0
    assert laplacian_l1(a, a + 0.1, 4) > 0  # a constant offset lives in the low-pass level
    assert laplacian_l1(a, torch.rand(2, 3, 32, 32), 4) > 0


# -- inference helpers ------------------------------------------------------------------


def test_learned_inpainting_changes_only_the_masked_pixels(art: list[np.ndarray]) -> None:
    net = load_inpainter(trained_tiny(InpaintingNet(TINY)).state_dict(), TINY)
    image = art[3]
    mask = np.zeros(image.shape[:2], bool)
    mask[10:25, 7:30] = True
    out = inpaint_learned(net, image, mask, "cpu")
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~mask], image[~mask])
    assert not np.array_equal(out[mask], image[mask])
    assert np.array_equal(inpaint_learned(net, image, np.zeros_like(mask), "cpu"), image)
    assert np.array_equal(out, inpaint_learned(net, image, mask, "cpu")), "a call must not change the network"


def test_the_served_fill_is_the_networks_averaged_with_navier_stokes(art: list[np.ndarray]) -> None:
    net = load_inpainter(trained_tiny(InpaintingNet(TINY)).state_dict(), TINY)
    image = art[1]
    mask = np.zeros(image.shape[:2], bool)
    mask[8:30, 12:34] = True
    network = inpaint_learned(net, image, mask, "cpu", share=1.0).astype(np.float32)
    diffused = inpaint(image, mask, "navier_stokes").astype(np.float32)
    assert np.array_equal(inpaint_learned(net, image, mask, "cpu"), np.rint((network + diffused) / 2).astype(np.uint8))
    assert np.array_equal(inpaint_learned(net, image, mask, "cpu", share=0.0), diffused.astype(np.uint8))
    with pytest.raises(ValueError):
        inpaint_learned(net, image, mask, "cpu", share=1.5)


def test_learned_detection_returns_a_mask_of_the_image_size(art: list[np.ndarray]) -> None:
    net = load_detector(DamageDetector(TINY).state_dict(), TINY)
    found = detect_learned(net, art[4], "cpu")
    assert found.dtype == bool and found.shape == art[4].shape[:2]
    assert not detect_learned(net, art[4], "cpu", threshold=0.999).any()


# -- the training loop ------------------------------------------------------------------


def test_dry_run_trains_checkpoints_and_resumes() -> None:
    result = dry_run(steps=4)
    assert result.steps_done == 4
    assert {"l1", "pyramid", "bce", "dice", "fade", "critic", "adversarial"} == set(result.final_losses)
    InpaintingNet(result.model_config).load_state_dict(result.inpainter_state)
    DamageDetector(result.model_config).load_state_dict(result.detector_state)
    FadeCorrector(result.model_config).load_state_dict(result.fade_state)


def cancel_before_step(step: int) -> Callable[[], None]:
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) == step:
            raise Canceled

    return check


def test_the_perceptual_loss_trains_the_inpainter_alone(art: list[np.ndarray]) -> None:
    """With ``perceptual_weight`` the inpainter learns from one more loss (reported with the
    others); the batches, the damage and the other networks stay exactly as without it."""
    plain = train_restoration(art, TINY, QUICK)
    perceptual = train_restoration(art, TINY, RestorationTrainConfig(**{**QUICK.to_dict(), "perceptual_weight": 0.5}))
    assert perceptual.final_losses["perceptual"] > 0 and "perceptual" not in plain.final_losses
    assert not tensors_equal(perceptual.inpainter_state, plain.inpainter_state)
    assert tensors_equal(perceptual.detector_state, plain.detector_state)
    assert tensors_equal(perceptual.fade_state, plain.fade_state)
    with pytest.raises(ValueError):
        RestorationTrainConfig(perceptual_weight=-1)


@pytest.mark.parametrize("adversarial", [False, True])
def test_resuming_from_a_checkpoint_gives_the_same_weights_as_training_straight(
        art: list[np.ndarray], adversarial: bool) -> None:
    """Interrupted after 3 of 6 steps (the learning-rate schedule depends on ``steps``, so the
    interrupted run has the same config, as a crashed or canceled job has)."""
    config = RestorationTrainConfig(**{**QUICK.to_dict(), "adversarial": adversarial, "checkpoint_every": 100})
    straight = train_restoration(art, TINY, config)
    saved: list[bytes] = []
    with pytest.raises(Canceled):
        train_restoration(art, TINY, config, check_cancel=cancel_before_step(4),
                          save_checkpoint=lambda state: saved.append(state_to_bytes(state)))
    assert len(saved) == 1
    resumed = train_restoration(art, TINY, config, resume=state_from_bytes(saved[0]))
    assert resumed.steps_done == straight.steps_done == 6
    assert tensors_equal(resumed.inpainter_state, straight.inpainter_state)
    assert tensors_equal(resumed.detector_state, straight.detector_state)
    assert tensors_equal(resumed.fade_state, straight.fade_state)
    assert resumed.final_losses == straight.final_losses


def test_cancel_saves_a_checkpoint_then_propagates(art: list[np.ndarray]) -> None:
    saved: list[dict] = []
    with pytest.raises(Canceled):
        train_restoration(art, TINY, RestorationTrainConfig(**{**QUICK.to_dict(), "checkpoint_every": 100}),
                          check_cancel=cancel_before_step(3), save_checkpoint=saved.append)
    assert [state["step"] for state in saved] == [2]
    assert train_restoration(art, TINY, QUICK, resume=state_from_bytes(state_to_bytes(saved[0]))).steps_done == 6


def test_progress_and_sample_grids_are_reported(art: list[np.ndarray]) -> None:
    progress, grids = [], []
    train_restoration(art, TINY, RestorationTrainConfig(**{**QUICK.to_dict(), "steps": 4, "sample_every": 3}),
                      on_progress=lambda step, total, losses: progress.append((step, total)),
                      save_samples=lambda step, grid: grids.append((step, grid.size)))
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    side = QUICK.patch + 2  # tiles and 2 px gaps: damaged | mask | restored | clean, one row per image
    rows = min(len(art), SAMPLE_ROWS)  # at most SAMPLE_ROWS images, spread over the set
    assert grids == [(3, (4 * side + 2, rows * side + 2)), (4, grids[0][1])]


def test_training_refuses_images_smaller_than_the_patch(art: list[np.ndarray]) -> None:
    with pytest.raises(ValueError):
        train_restoration([*art, art[0][:20]], TINY, QUICK)
    with pytest.raises(ValueError):
        train_restoration([art[0].astype(np.float32)], TINY, QUICK)


# -- evaluation -------------------------------------------------------------------------


def test_evaluation_reports_every_method_and_is_json(art: list[np.ndarray]) -> None:
    inpainter, detector = trained_tiny(InpaintingNet(TINY)).state_dict(), DamageDetector(TINY).state_dict()
    fade = FadeCorrector(TINY).state_dict()  # the identity
    photos = photo_tiles(("coffee",), tile=64)[:2]
    report = evaluate_restoration(inpainter, detector, fade, TINY, art[:3], seed=5, photos=photos)
    assert report == json.loads(json.dumps(report))
    assert report == evaluate_restoration(inpainter, detector, fade, TINY, art[:3], seed=5, photos=photos)
    assert report["evaluated_on"] == {"held_out_images": 3, "photos": 2, "seed": 5}
    for inpainting, images in ((report["inpainting"], 3), (report["inpainting_photos"], 2)):
        assert inpainting["damage"] == "large_holes" and inpainting["images"] == images
        assert {"damaged", "telea", "navier_stokes", "biharmonic", "pull_push", "network_only", "learned"} <= set(
            inpainting)
        assert inpainting["telea"]["pooled_hole_psnr"] > inpainting["damaged"]["pooled_hole_psnr"]
        best = inpainting["best_classical"]
        assert best in ("telea", "navier_stokes", "biharmonic", "pull_push")
        assert all(inpainting[best]["pooled_hole_psnr"] >= inpainting[name]["pooled_hole_psnr"]
                   for name in ("telea", "navier_stokes", "biharmonic", "pull_push"))
        assert inpainting["learned_minus_best_classical_pooled_hole_psnr"] == pytest.approx(
            inpainting["learned"]["pooled_hole_psnr"] - inpainting[best]["pooled_hole_psnr"], abs=1e-3)
        # the holes left as they are look farther from the pictures than any repair does
        assert all(inpainting["damaged"]["perceptual_distance"] > inpainting[name]["perceptual_distance"] > 0
                   for name in ("telea", "navier_stokes", "biharmonic", "pull_push", "learned"))
    assert set(report["detection"]["learned"]) == {"precision", "recall", "f1", "iou"}
    assert set(report["detection"]["classical"]) == {"precision", "recall", "f1", "iou"}
    for defading, images in ((report["defading"], 3), (report["defading_photos"], 2)):
        assert defading["images"] == images and defading["goal_psnr"] == 25.0
        # an untrained corrector returns the faded picture, and an unfaded one exactly
        assert defading["learned"]["psnr"] == defading["faded"]["psnr"]
        assert defading["learned"]["unfaded_psnr"] == 100.0
        assert defading["classical"]["psnr"] > defading["faded"]["psnr"]
        assert defading["learned_minus_classical_psnr"] < 0


def card_metrics(inpaint: tuple[float, float] = (0.5, 0.2), f1: tuple[float, float] = (0.8, 0.6),
                 defade: tuple[float, float] = (1.0, 0.3)) -> dict:
    """A card's measures, cut to what learned_operations reads: margins over the classical
    methods on the held-out paintings and photos, and both detectors' F1."""
    return {"inpainting": {"learned_minus_best_classical_pooled_hole_psnr": inpaint[0]},
            "inpainting_photos": {"learned_minus_best_classical_pooled_hole_psnr": inpaint[1]},
            "detection": {"learned": {"f1": f1[0]}, "classical": {"f1": f1[1]}},
            "defading": {"learned_minus_classical_psnr": defade[0]},
            "defading_photos": {"learned_minus_classical_psnr": defade[1]}}


def test_jobs_use_a_network_only_where_it_beat_the_classical_method_on_every_held_out_set() -> None:
    assert learned_operations(card_metrics()) == ["inpaint", "detect", "defade"]
    assert learned_operations(card_metrics(inpaint=(0.5, -0.1))) == ["detect", "defade"]
    assert learned_operations(card_metrics(inpaint=(-0.1, 0.5))) == ["detect", "defade"]
    assert learned_operations(card_metrics(f1=(0.6, 0.6))) == ["inpaint", "defade"]
    assert learned_operations(card_metrics(defade=(1.0, -0.2))) == ["inpaint", "detect"]
    paintings_only = {k: v for k, v in card_metrics(inpaint=(0.5, -1), defade=(1, -1)).items()
                      if not k.endswith("_photos")}
    assert learned_operations(paintings_only) == ["inpaint", "detect", "defade"]

    # A job loads the networks of the operations its card lists, and the classical methods do the rest.
    state = {**{f"inpainter.{k}": v for k, v in InpaintingNet(TINY).state_dict().items()},
             **{f"detector.{k}": v for k, v in DamageDetector(TINY).state_dict().items()},
             **{f"fade_corrector.{k}": v for k, v in FadeCorrector(TINY).state_dict().items()}}
    card = {"restoration_config": TINY.to_dict(), "learned_operations": ["detect", "defade"]}
    model = restoration_model_from_card(card, state)
    assert model.inpainter is None and isinstance(model.detector, DamageDetector)
    assert isinstance(model.fade_corrector, FadeCorrector)
    assert isinstance(restoration_inpainter_from_card(card, state), InpaintingNet)  # the gate scores it anyway
