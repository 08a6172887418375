"""The models that ship inside the package (``make models``): their cards meet the goals they were
made for, say how to make them again, and the shipped weights still do what the cards say."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import redis
import torch
from safetensors.torch import load as load_safetensors

from shared.builtin_models import builtin_models, release_version, releases
from shared.job_params import CreationParams
from shared.models import ModelCatalog, UnknownModel
from workers.data.attributes import colour_attributes
from workers.data.datasets import HELD_OUT_SEED
from workers.data.procedural import STYLES, make_dataset
from workers.job_context import InvalidJobInput
from workers.metrics.feature_classifier import FeatureClassifier, train_feature_classifier
from workers.metrics.frechet import pretrained_features, within_style_diversity
from workers.models.builders import (
    build_generator,
    generator_from_card,
    restoration_model_from_card,
    shipped_upscaler,
)
from workers.models.gan import GanConfig, generate
from workers.pipelines.creation import choose_conditions
from workers.pipelines.training import gan_gate
from workers.prompts import ATTRIBUTES, HIGH_TARGETS, LOW_TARGETS
from workers.registry import ModelRegistry, TenantModels
from workers.training.default_models import Checkpoints
from workers.training.evaluation import quality_goals
from workers.training.promotion import gate
from workers.training.restoration_eval import compare_inpainting, learned_operations
from workers.training.upscaler import evaluate_upscaler, evaluation_sets

MAX_WEIGHTS_BYTES = 25 * 1024 * 1024
# The served fill's lead over Telea: +0.97 dB measured on these 27 paintings, +1.24 dB on the card's 214.
RESTORATION_MARGIN_DB = 0.3

StyleClassifier = tuple[FeatureClassifier, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def abstract() -> tuple[dict, dict[str, torch.Tensor]]:
    model = builtin_models()["abstract"]
    return model.card, dict(load_safetensors(model.weights()))


def test_every_shipped_model_is_small_pinned_public_and_reproducible() -> None:
    models = builtin_models()
    assert {"abstract", "upscaler", "restoration"} <= set(models)
    for model in models.values():
        assert model.weights_path.stat().st_size <= MAX_WEIGHTS_BYTES, model.name
        assert model.version >= 1 and model.card["public"] and model.card["read_only"]
        assert model.card["training"]["reproduce"]["command"] == "make models"
        assert model.card["training"]["seconds"] > 0 and model.card["training"]["machine"]["cores"]


def test_every_version_of_a_shipped_model_names_one_set_of_weights() -> None:
    """releases.json lists versions 1..n of each shipped model, each with weights of its own, and
    the shipped card's version is the one its weights were released as: weights replaced under an
    old version number fail here."""
    ledger = releases()
    for name, model in builtin_models().items():
        history = ledger[name]
        assert [release["version"] for release in history] == list(range(1, len(history) + 1)), name
        versions_by_weights = {release["weights_sha256"]: release["version"] for release in history}
        assert len(versions_by_weights) == len(history), f"{name}: two versions with the same weights"
        assert versions_by_weights[model.card["weights_sha256"]] == model.version, name


def test_new_weights_get_the_next_version_and_known_weights_keep_theirs(tmp_path: Path) -> None:
    ledger = tmp_path / "releases.json"
    assert release_version("abstract", "aa", "first", "2026-12-01", ledger) == 1
    assert release_version("abstract", "bb", "retrained", "2026-12-02", ledger) == 2
    assert release_version("abstract", "aa", "again", "2026-12-03", ledger) == 1
    assert release_version("upscaler", "aa", "other model", "2026-12-03", ledger) == 1
    assert [r["summary"] for r in releases(ledger)["abstract"]] == ["first", "retrained"]


def test_a_job_pinned_to_a_version_no_longer_shipped_fails_instead_of_drawing_other_works() -> None:
    with socket.socket() as sock:  # a port nothing listens on: resolving a public model needs no Redis
        sock.bind(("127.0.0.1", 0))
        unused = redis.Redis(port=sock.getsockname()[1])
    models = TenantModels(cast(ModelRegistry, None), ModelCatalog(unused, "tenant"))
    shipped = builtin_models()["abstract"]
    assert models.resolve(f"public/abstract@{shipped.version}").card["weights_sha256"] == shipped.card[
        "weights_sha256"]
    with pytest.raises(InvalidJobInput) as refused:
        models.resolve("public/abstract@1")
    assert refused.value.code == "model_version_retired"
    with pytest.raises(UnknownModel):  # never shipped: unknown, as before
        models.resolve("public/abstract@99")


def test_the_creation_models_card_states_its_goals_and_what_it_reaches(abstract: tuple[dict, dict]) -> None:
    """The card's goals are read off its own metrics. The shipped model meets the SWD goal, the style
    accuracy of the CNN and both diversity goals (ImageNet features and layout); on the Fréchet
    distance and the feature classifier it is measured nearer real paintings than an untrained
    generator by these margins, short of the goals (bench/RESULTS.md)."""
    card, _ = abstract
    metrics = card["metrics"]
    assert card["quality_goals"] == quality_goals(metrics)
    assert metrics["evaluated_on"]["held_out_real"] >= 300 and metrics["evaluated_on"]["generated"] >= 300
    assert card["labels"] == [style.name for style in STYLES]
    assert card["resolution"] == 64
    accuracy, fd = metrics["conditional_accuracy"], metrics["frechet_distance"]
    assert card["quality_goals"]["cnn_accuracy_at_least_0_95x_real"], accuracy
    assert card["quality_goals"]["swd_at_most_1_5x_floor"], metrics["swd_ratio_to_floor"]
    assert card["quality_goals"]["diversity_at_least_half_of_real"], metrics["diversity"]
    assert card["quality_goals"]["layout_diversity_at_least_half_of_real"], metrics["diversity_layout"]
    assert metrics["diversity"]["generated"]["min"] >= 0.5  # no style collapsed
    assert fd["real_floor"] < fd["generated"] <= 0.7 * fd["untrained"], fd
    style_fd = metrics["frechet_distance_style"]  # the cross-check in Magenta's style space agrees
    assert style_fd["real_floor"] < style_fd["generated"] <= 0.15 * style_fd["untrained"], style_fd
    assert metrics["swd"]["average"] <= 0.25 * metrics["swd_untrained"]["average"]
    assert accuracy["features"] >= 0.85 * accuracy["features_real"], accuracy


@pytest.fixture(scope="module")
def style_classifier() -> StyleClassifier:
    """The non-neural style classifier, trained on real paintings, and held-out real ones (12 a
    style, in style order) that it scores."""
    real, real_labels = make_dataset(12, 64, seed=HELD_OUT_SEED)
    train, train_labels = make_dataset(40, 64, seed=5)
    return train_feature_classifier(train, train_labels, real, real_labels), real, real_labels


def test_the_shipped_generator_still_draws_what_its_card_says(abstract: tuple[dict, dict],
                                                              style_classifier: StyleClassifier) -> None:
    """Re-measured on the weights in the package (fewer images than the card, so looser bounds):
    a non-neural classifier puts the works in the style asked for, and works of one style differ
    from each other about as much as real ones do."""
    card, state = abstract
    generator = generator_from_card(card, state)
    classifier, real, real_labels = style_classifier
    attrs = colour_attributes(real)  # ask for the colours the real works have
    fake = generate(generator, real_labels, attrs, seed=11)
    accuracy = float(np.mean(classifier.predict(fake) == real_labels))
    assert accuracy >= 0.85 * classifier.real_accuracy, (accuracy, classifier.real_accuracy)
    diversity = within_style_diversity(pretrained_features(fake), real_labels, pretrained_features(real), real_labels)
    assert diversity["mean"] >= 0.5, diversity


def test_prompt_colours_move_the_works_and_keep_them_in_their_style(abstract: tuple[dict, dict],
                                                                  style_classifier: StyleClassifier) -> None:
    """Every style asked for each pole of each colour attribute (bright drips, a dark ink landscape:
    colours some styles never have): the classifier still puts >= 0.8x as many works in their style
    as it does real ones (the targets set outright gave 0.29-0.76x), and the colour moves the right
    way by >= 0.1 of its range on average."""
    card, state = abstract
    generator = generator_from_card(card, state)
    classifier, _, _ = style_classifier
    for position, attribute in enumerate(ATTRIBUTES):
        means = {}
        for pole, targets in (("high", HIGH_TARGETS), ("low", LOW_TARGETS)):
            drawn = [choose_conditions(card, CreationParams(style=style.name, count=12, seed=31),
                                       {}, {attribute: targets[attribute]}) for style in STYLES]
            labels, attrs = np.concatenate([d[0] for d in drawn]), np.concatenate([d[1] for d in drawn])
            fake = generate(generator, labels, attrs, seed=31)
            accuracy = float(np.mean(classifier.predict(fake) == labels))
            assert accuracy >= 0.8 * classifier.real_accuracy, (attribute, pole, accuracy)
            means[pole] = colour_attributes(fake)[:, position].mean()
        assert means["high"] - means["low"] >= 0.1, (attribute, means)


def test_the_shipped_upscaler_beats_lanczos_on_held_out_paintings_and_photos() -> None:
    card = builtin_models()["upscaler"].card
    for name, figures in card["metrics"].items():
        assert figures["psnr_learned"] > figures["psnr_lanczos"], name
        assert figures["edge_sharpness_learned"] > figures["edge_sharpness_lanczos"], name
    network, _ = shipped_upscaler()
    sets = {name: images[:6] for name, images in evaluation_sets(0).items()}
    again = evaluate_upscaler(network, sets)
    for name, figures in again.items():
        assert figures["psnr_learned"] > figures["psnr_lanczos"] + 0.5, (name, figures)


@pytest.fixture(scope="module")
def restoration() -> tuple[dict, dict[str, torch.Tensor]]:
    model = builtin_models()["restoration"]
    return model.card, dict(load_safetensors(model.weights()))


def test_the_restoration_models_card_shows_where_jobs_use_its_networks(restoration: tuple[dict, dict]) -> None:
    """Each network serves the operations where it beat the classical method on every held-out set
    (paintings, and photos with the debian-images corpus's held-out pictures among them); the
    margins are the card's, short of issue 20's 1.5 dB inpainting goal (bench/RESULTS.md)."""
    card, _ = restoration
    metrics = card["metrics"]
    assert card["task"] == "restoration" and card["learned_operations"] == learned_operations(metrics)
    assert card["learned_operations"] == ["inpaint", "detect", "defade"]
    assert [part["id"] for part in card["dataset"]["parts"]] == ["procedural", "debian-images"]
    assert all(part["licence"] for part in card["dataset"]["parts"])
    assert metrics["evaluated_on"]["held_out_images"] >= 200
    assert card["held_out_photos"]["debian-images"]["tiles"] > 0
    assert metrics["evaluated_on"]["photos"] == card["held_out_photos"]["tiles"]
    paintings, photos = metrics["inpainting"], metrics["inpainting_photos"]
    assert paintings["learned_minus_best_classical_pooled_hole_psnr"] >= 0.8
    assert photos["learned_minus_best_classical_pooled_hole_psnr"] > 0
    for scores in (paintings, photos):  # every fill is nearer the picture than the hole it filled
        assert scores["learned"]["perceptual_distance"] < 0.5 * scores["damaged"]["perceptual_distance"]
    detection = metrics["detection"]
    assert detection["learned"]["f1"] >= detection["classical"]["f1"] + 0.15
    assert min(metrics[name]["learned_minus_classical_psnr"] for name in ("defading", "defading_photos")) >= 5


def test_the_shipped_restoration_weights_repair_as_the_card_says(restoration: tuple[dict, dict]) -> None:
    """Re-measured on the weights in the package, on paintings rendered from the held-out seed:
    the served fill beats Telea's."""
    card, state = restoration
    model = restoration_model_from_card(card, state)
    assert model.inpainter is not None and model.detector is not None
    cleans = list(make_dataset(3, 128, seed=HELD_OUT_SEED)[0])
    scores = compare_inpainting(model.inpainter, cleans, "large_holes", np.random.default_rng([0, 1]))
    assert scores["learned"]["pooled_hole_psnr"] > scores["telea"]["pooled_hole_psnr"] + RESTORATION_MARGIN_DB, scores


def test_a_64_px_retrain_is_gated_on_imagenet_features_and_guarded_in_the_style_space(
        abstract: tuple[dict, dict]) -> None:
    """The gate a 64 px training job runs (``gan_gate``), one seed: the shipped generator against
    an untrained one of its config wins on ImageNet features and holds up in the style space, so it
    is promoted with the guard's scores recorded (tests/unit/test_promotion.py: the guard's veto).
    32 px models are gated on SWD alone."""
    card, state = abstract
    trained = (generator_from_card(card, state), card)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = (build_generator(GanConfig.from_dict(card["gan_config"]), None), card)
    held, _ = make_dataset(4, 64, seed=HELD_OUT_SEED)
    rules = gan_gate(64, card["metrics"], held)
    assert rules.metric.name == "frechet_distance" and rules.guard is not None
    assert rules.guard[0].name == "frechet_distance_style"
    better = gate(rules.metric, rules.score, trained, untrained, incumbent_version=1, margin=0.02, seeds=(0,),
                  noise_floor=rules.floor, guard=rules.guard)
    assert better.promote and better.guard is not None and better.guard["holds"], better
    assert better.guard["challenger"] < better.guard["incumbent"]
    assert gan_gate(32, {"swd_real_floor": {"average": 20.0}}, held).guard is None


def test_training_seconds_survive_a_run_killed_after_a_checkpoint(tmp_path: Path) -> None:
    first = Checkpoints(tmp_path)
    first.started -= 100.0  # as if the run had trained for 100 s before its checkpoint
    first.save({"step": 500, "weights": torch.zeros(2)})
    # The process is killed here: it never reaches total_seconds at the end of training.
    resumed = Checkpoints(tmp_path)
    assert resumed.first_step == 500
    resumed.started -= 50.0
    assert resumed.total_seconds(1000) == pytest.approx(150.0, abs=5.0)
    assert Checkpoints(tmp_path).seconds["1000"] == pytest.approx(150.0, abs=5.0)
