"""The conditional GAN, its training loop and its checkpoints, on the CPU with tiny networks."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from workers.data.attributes import colour_attributes
from workers.models.gan import (
    Discriminator,
    GanConfig,
    Generator,
    generate,
    image_attributes,
    pair_spread,
    truncated_noise,
)
from workers.training.checkpoint import state_from_bytes, state_to_bytes
from workers.training.gan import (
    SAMPLE_COLUMNS,
    EpochSampler,
    TrainConfig,
    diff_augment,
    dry_run,
    pair_shortfall,
    standing_statistics,
    train_gan,
)

TINY = GanConfig(n_classes=3, resolution=32, ngf=8, ndf=8)
QUICK = TrainConfig(steps=6, batch_size=8, checkpoint_every=3, sample_every=100, seed=7)


class Canceled(Exception):
    pass


def noise_data(n: int = 24, side: int = 32, n_classes: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    return images, np.arange(n) % n_classes, rng.random((n, 3), dtype=np.float32)


def two_colours(n: int = 256, side: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class 0: reddish stripes; class 1: bluish blobs. Very different mean colours."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    yy, xx = np.mgrid[0:side, 0:side]
    images = np.empty((n, side, side, 3), np.float32)
    for i, label in enumerate(labels):
        pattern = ((xx + rng.integers(side)) // 4 % 2 if label == 0 else
                   ((yy - rng.integers(side)) ** 2 + (xx - rng.integers(side)) ** 2 < 80))[..., None]
        base, other = (np.array([0.9, 0.2, 0.1]), np.array([0.6, 0.1, 0.1])) if label == 0 else \
            (np.array([0.1, 0.3, 0.9]), np.array([0.1, 0.1, 0.4]))
        images[i] = np.where(pattern, base, other) + rng.normal(0, 0.03, (side, side, 3))
    return (np.clip(images, 0, 1) * 255).astype(np.uint8), labels, rng.random((n, 3), dtype=np.float32)


def tensors_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the networks -----------------------------------------------------------------------


@pytest.mark.parametrize("side", [32, 64, 128])
def test_generator_and_discriminator_shapes_and_ranges(side: int) -> None:
    config = GanConfig(n_classes=3, resolution=side, ngf=4, ndf=4)
    z, y, a = torch.randn(6, config.nz) * 3, torch.tensor([0, 0, 1, 1, 2, 2]), torch.rand(6, 3)
    images = Generator(config)(z, y, a)
    assert images.shape == (6, 3, side, side)
    assert images.min() >= -1 and images.max() <= 1
    assert Discriminator(config)(images, y, a).shape == (6,)
    with pytest.raises(ValueError):  # the discriminator compares pairs
        Discriminator(config)(images[:5], y[:5], a[:5])


def test_noise_reaches_the_picture_at_every_scale() -> None:
    """Each chunk of z steers its own block: changing any one chunk changes the image."""
    torch.manual_seed(0)
    g = Generator(TINY).eval()
    z, y, a = torch.randn(2, TINY.nz), torch.tensor([1, 1]), torch.rand(2, 3)
    with torch.no_grad():
        g(torch.randn(16, TINY.nz), torch.arange(16) % 3, torch.rand(16, 3))  # non-trivial BN statistics
        for name, module in g.named_modules():  # CBN gains start flat at 1: give the noise a say
            if name.endswith("gain") or name.endswith("bias") and "norm" in name:
                torch.nn.init.normal_(module.weight, 0, 0.3)
        base = g(z, y, a)
        for chunk in range(TINY.n_stages + 1):
            moved = z.clone()
            moved[:, chunk * TINY.z_chunk:(chunk + 1) * TINY.z_chunk] += 1.0
            assert (g(moved, y, a) - base).abs().mean() > 1e-4, chunk


def test_pair_spread_sees_a_pair_of_equal_images() -> None:
    h = torch.randn(6, 4, 3, 3)
    h[2:4] = h[2]  # the second pair is one picture twice
    spread = pair_spread(h)[:, 0, 0, 0]
    assert spread[2] == spread[3] == 0
    assert (spread[[0, 1, 4, 5]] > 0.5).all() and spread[0] == spread[1]


def test_image_attributes_match_the_data_definition() -> None:
    images = np.random.default_rng(3).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    as_tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert np.allclose(image_attributes(as_tensor).numpy(), colour_attributes(images), atol=1e-5)


def test_pair_shortfall_is_zero_once_generated_pairs_differ_as_much_as_real_ones() -> None:
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    same = real[0::2].repeat_interleave(2, dim=0)  # every generated pair one picture twice
    assert pair_shortfall(same, real) > 0.1
    assert pair_shortfall(real, real) == 0


def test_labels_and_attributes_change_both_networks() -> None:
    torch.manual_seed(0)
    g, d = Generator(TINY).eval(), Discriminator(TINY).eval()
    z, a = torch.randn(4, TINY.nz), torch.rand(4, 3)
    zeros, twos = torch.zeros(4, dtype=torch.long), torch.full((4,), 2)
    with torch.no_grad():
        base = g(z, zeros, a)
        assert (g(z, twos, a) - base).abs().mean() > 1e-3
        assert (g(z, zeros, 1 - a) - base).abs().mean() > 1e-3
        assert not torch.allclose(d(base, zeros, a), d(base, twos, a))
        assert not torch.allclose(d(base, zeros, a), d(base, zeros, 1 - a))


def test_gan_config_round_trips_through_a_dict_and_rejects_bad_resolutions() -> None:
    config = GanConfig(n_classes=6, resolution=64, ngf=32)
    assert GanConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError):
        GanConfig(n_classes=6, resolution=48)


# -- generate() -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    g = Generator(TINY)
    with torch.no_grad():  # give BN's running statistics something other than (0, 1)
        g(torch.randn(32, TINY.nz), torch.arange(32) % 3, torch.rand(32, 3))
    return g


def test_generate_returns_uint8_images_and_is_deterministic(generator: Generator) -> None:
    labels, attrs = np.arange(10) % 3, np.random.default_rng(0).random((10, 3))
    first = generate(generator, labels, attrs, seed=5)
    assert first.shape == (10, TINY.resolution, TINY.resolution, 3) and first.dtype == np.uint8
    assert np.array_equal(first, generate(generator, labels, attrs, seed=5))
    assert not np.array_equal(first, generate(generator, labels, attrs, seed=6))
    assert generator.training, "generate() must leave the module's mode as it found it"


def test_generate_does_not_depend_on_batch_size(generator: Generator) -> None:
    labels, attrs = np.arange(13) % 3, np.random.default_rng(1).random((13, 3))
    whole = generate(generator, labels, attrs, seed=3, batch_size=64)
    assert np.array_equal(whole, generate(generator, labels, attrs, seed=3, batch_size=4))
    assert np.array_equal(whole, generate(generator, labels, attrs, seed=3, batch_size=1))


def test_generate_rejects_labels_and_attributes_out_of_range(generator: Generator) -> None:
    with pytest.raises(ValueError):
        generate(generator, [3], [[0.5, 0.5, 0.5]], seed=0)
    with pytest.raises(ValueError):
        generate(generator, [0], [[0.5, 1.5, 0.5]], seed=0)


def test_truncation_redraws_every_entry_beyond_the_threshold() -> None:
    z = truncated_noise(200, TINY.nz, seed=0, truncation=0.5)
    assert z.abs().max() <= 0.5
    assert z.std() > 0.2  # still spread over the allowed interval
    assert truncated_noise(200, TINY.nz, seed=0, truncation=None).abs().max() > 3


# -- checkpoints ------------------------------------------------------------------------


def test_state_round_trips_through_safetensors_bytes() -> None:
    state: dict[str, Any] = {
        "step": 12,
        "model": {"conv.weight": torch.randn(4, 3, 3, 3), "bn.num_batches_tracked": torch.tensor(5)},
        "opt": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(7, dtype=torch.float64)}},
                "param_groups": [{"lr": 2e-4, "betas": (0.0, 0.99), "params": [0], "fused": None}]},
        "rng": torch.Generator().manual_seed(1).get_state(),
        "python_rng": random.Random(3).getstate(),
        "numpy_rng": np.random.default_rng(4).bit_generator.state,
        "flags": [True, None, 1.5, "x"],
    }
    back = state_from_bytes(state_to_bytes(state))
    assert back["opt"]["state"].keys() == {0}
    assert back["opt"]["param_groups"][0]["betas"] == (0.0, 0.99)
    assert back["python_rng"] == state["python_rng"] and back["numpy_rng"] == state["numpy_rng"]
    assert back["flags"] == state["flags"] and back["step"] == 12
    assert tensors_equal(back["model"], state["model"])
    assert back["opt"]["state"][0]["exp_avg"].dtype == torch.float64
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], state["opt"]["state"][0]["exp_avg"])
    assert torch.equal(back["rng"], state["rng"])
    restored = random.Random()
    restored.setstate(back["python_rng"])
    assert restored.random() == random.Random(3).random()


def test_state_bytes_refuse_other_files_and_unknown_types() -> None:
    from safetensors.torch import save

    with pytest.raises(ValueError):
        state_from_bytes(save({"w": torch.zeros(2)}))
    with pytest.raises(TypeError):
        state_to_bytes({"when": object()})


# -- the training loop ------------------------------------------------------------------


def test_sampler_position_restores_the_same_batches_and_epochs_are_permutations() -> None:
    straight = EpochSampler(10, seed=1)
    first_epoch = np.concatenate([straight.next_batch(4), straight.next_batch(4)])
    straight.next_batch(3)  # crosses into the second epoch
    position = straight.position()
    resumed = EpochSampler.at(position, 10, seed=1)
    assert np.array_equal(straight.next_batch(12), resumed.next_batch(12))
    assert sorted(np.concatenate([first_epoch, EpochSampler(10, seed=1, epoch=0, cursor=8).next_batch(2)])) == \
        list(range(10))
    with pytest.raises(ValueError):
        EpochSampler.at(position, 11, seed=1)


def test_diff_augment_keeps_shape_and_passes_gradients() -> None:
    x = torch.rand(6, 3, 32, 32, requires_grad=True)
    out = diff_augment(x, "color,translation,cutout", torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert diff_augment(x, "", torch.Generator()) is x


def test_train_config_refuses_unknown_augmentations() -> None:
    with pytest.raises(ValueError):
        TrainConfig(augment="color,flip")
    with pytest.raises(ValueError):  # batches are pairs
        TrainConfig(batch_size=7)
    assert TrainConfig.from_dict(QUICK.to_dict()) == QUICK


def test_standing_statistics_measure_the_generators_own_activations() -> None:
    """Stale running statistics (as an EMA copy inherits from the live network) are replaced by
    what the generator's own layers see: each batch norm's running mean is the mean of its input
    over the conditions drawn, so in eval mode the generator matches its training-mode output."""
    torch.manual_seed(0)
    generator = Generator(TINY).eval().requires_grad_(False)
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.running_mean.fill_(3.0)
        norm.running_var.fill_(9.0)
    _, labels, attrs = noise_data(n=48)
    labels_t, attrs_t = torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(attrs)
    z = torch.randn(96, TINY.nz, generator=torch.Generator().manual_seed(1))
    wanted = torch.arange(96) % 48
    stale = generator(z, labels_t[wanted], attrs_t[wanted])
    generator.train()
    batch_mode = generator(z, labels_t[wanted], attrs_t[wanted])
    generator.eval()

    standing_statistics(generator, labels_t, attrs_t, batches=50, batch_size=32, seed=2)
    assert not generator.training, "the generator's mode is left as it was"
    inputs: list[torch.Tensor] = []
    hook = norms[0].register_forward_hook(lambda module, args, out: inputs.append(args[0]))
    measured = generator(z, labels_t[wanted], attrs_t[wanted])
    hook.remove()
    channel_mean = inputs[0].mean(dim=(0, 2, 3))
    assert torch.allclose(norms[0].running_mean, channel_mean, atol=0.1 * channel_mean.abs().max().item() + 1e-3)
    assert (measured - batch_mode).abs().mean() < 0.25 * (stale - batch_mode).abs().mean()
    again = Generator(TINY)
    again.load_state_dict(generator.state_dict())
    standing_statistics(again, labels_t, attrs_t, batches=50, batch_size=32, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(again.buffers(), generator.buffers(), strict=True)), "deterministic"


def test_dry_run_trains_checkpoints_and_resumes(tmp_path: Path) -> None:
    result = dry_run(steps=4)
    assert result.steps_done == 4
    assert set(result.final_losses) == {"d", "g", "attributes", "diversity", "d_real", "d_fake"}
    g = Generator(result.gan_config)
    g.load_state_dict(result.g_ema_state)
    # The networks train channels_last; the weights come back as safetensors can store them
    # (it refuses a channels_last tensor).
    save_file(result.g_ema_state, str(tmp_path / "g_ema.safetensors"))


def test_resuming_from_a_checkpoint_gives_the_same_weights_as_training_straight() -> None:
    data = noise_data()
    straight = train_gan(*data, TINY, QUICK)
    saved: list[bytes] = []
    first = TrainConfig(**{**QUICK.to_dict(), "steps": 3})
    train_gan(*data, TINY, first, save_checkpoint=lambda state: saved.append(state_to_bytes(state)))
    assert len(saved) == 1
    resumed = train_gan(*data, TINY, QUICK, resume=state_from_bytes(saved[0]))
    assert resumed.steps_done == straight.steps_done == 6
    assert tensors_equal(resumed.g_ema_state, straight.g_ema_state)
    assert resumed.final_losses == straight.final_losses


def test_cancel_saves_a_checkpoint_then_propagates() -> None:
    calls, saved = [], []

    def cancel_on_third_call() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise Canceled

    with pytest.raises(Canceled):
        train_gan(*noise_data(), TINY, TrainConfig(**{**QUICK.to_dict(), "checkpoint_every": 100}),
                  check_cancel=cancel_on_third_call, save_checkpoint=saved.append)
    assert [state["step"] for state in saved] == [2]
    resumed = train_gan(*noise_data(), TINY, QUICK, resume=state_from_bytes(state_to_bytes(saved[0])))
    assert resumed.steps_done == 6


def test_progress_and_sample_grids_are_reported() -> None:
    progress, grids = [], []
    train_gan(*noise_data(), TINY, TrainConfig(**{**QUICK.to_dict(), "steps": 4, "sample_every": 3}),
              on_progress=lambda step, total, losses: progress.append((step, total)),
              save_samples=lambda step, grid: grids.append((step, grid.size)))
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    side = 32 + 2
    assert grids == [(3, (SAMPLE_COLUMNS * side + 2, TINY.n_classes * side + 2)), (4, grids[0][1])]


def test_training_rejects_data_that_does_not_fit_the_config() -> None:
    images, labels, attrs = noise_data()
    with pytest.raises(ValueError):
        train_gan(images[:, :16, :16], labels, attrs, TINY, QUICK)
    with pytest.raises(ValueError):
        train_gan(images, labels + 3, attrs, TINY, QUICK)
    with pytest.raises(ValueError):
        train_gan(images, labels, attrs * 2, TINY, QUICK)


def test_a_short_training_moves_each_class_toward_its_mean_colour() -> None:
    images, labels, attrs = two_colours()
    config = GanConfig(n_classes=2, resolution=32, ngf=8, ndf=8)
    targets = np.stack([images[labels == c].reshape(-1, 3).mean(0) for c in (0, 1)])

    def distances(state: dict[str, torch.Tensor] | None) -> np.ndarray:
        torch.manual_seed(0)
        g = Generator(config)
        if state is not None:
            g.load_state_dict(state)
        rows = np.repeat([0, 1], 32)
        fake = generate(g, rows, np.full((64, 3), 0.5), seed=1).astype(np.float64)
        means = np.stack([fake[rows == c].reshape(-1, 3).mean(0) for c in (0, 1)])
        return np.linalg.norm(means - targets, axis=1)

    before = distances(None)
    result = train_gan(images, labels, attrs, config, TrainConfig(steps=150, batch_size=32, checkpoint_every=1000,
                                                                  sample_every=1000))
    after = distances(result.g_ema_state)
    assert (after < before * 0.6).all(), (before, after)
    assert (after < 50).all(), after  # within 50 of 255 per channel vector of the class's mean colour


def test_a_short_training_obeys_the_brightness_it_is_asked_for() -> None:
    """The attribute loss: asked for dark or bright works of one class, the generator draws them
    darker or brighter, by most of what was asked."""
    rng = np.random.default_rng(0)
    side, n = 32, 256
    levels = rng.uniform(0.15, 0.85, n)
    pattern = (np.indices((side, side)).sum(axis=0) // 4 % 2)[None, :, :, None]
    images = np.clip(levels[:, None, None, None] + 0.1 * pattern + rng.normal(0, 0.02, (n, side, side, 3)), 0, 1)
    images = (images * 255).astype(np.uint8)
    labels, attrs = np.zeros(n, dtype=np.int64), colour_attributes(images)
    config = GanConfig(n_classes=1, resolution=side, ngf=8, ndf=8)
    result = train_gan(images, labels, attrs, config, TrainConfig(steps=150, batch_size=16, checkpoint_every=1000,
                                                                  sample_every=1000, seed=1))
    g = Generator(config)
    g.load_state_dict(result.g_ema_state)
    asked = {"dark": 0.25, "bright": 0.75}
    drawn = {name: colour_attributes(generate(g, np.zeros(16, np.int64), np.tile([[level, 0.1, 0.5]], (16, 1)),
                                              seed=2))[:, 0].mean() for name, level in asked.items()}
    assert drawn["bright"] - drawn["dark"] > 0.3, drawn
