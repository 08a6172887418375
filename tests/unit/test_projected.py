"""The projected discriminator (workers.models.projected) and the GAN loop's use of it."""

from __future__ import annotations

import pytest
import torch

from tests.unit.test_gan import QUICK, TINY, noise_data, tensors_equal
from workers.models.projected import STAGES, ProjectedDiscriminator
from workers.training.checkpoint import state_from_bytes, state_to_bytes
from workers.training.gan import TrainConfig, train_gan

PROJECTED = TrainConfig(**{**QUICK.to_dict(), "projected_weight": 1.0})


def test_one_logit_per_head_and_the_frozen_network_is_not_part_of_its_state() -> None:
    discriminator = ProjectedDiscriminator(TINY)
    logits = discriminator(torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 0]))
    assert logits.shape == (4, len(STAGES)) and torch.isfinite(logits).all()
    assert all(key.startswith(("heads.", "mix_")) for key in discriminator.state_dict())
    assert all(name.startswith("heads.") for name, _ in discriminator.named_parameters())
    discriminator.requires_grad_(True)  # what the loop does after G's step
    assert not any(p.requires_grad for p in discriminator.features.parameters())


def test_a_pair_of_equal_images_is_seen_as_one() -> None:
    discriminator = ProjectedDiscriminator(TINY)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    labels = torch.tensor([0, 0])
    equal = discriminator(torch.cat([image, image]), labels)
    different = discriminator(torch.cat([image, torch.rand(1, 3, 32, 32) * 2 - 1]), labels)
    assert not torch.allclose(equal[0], different[0])  # the first image is the same: only its partner changed


def test_the_label_changes_the_logits_and_gradients_reach_the_image() -> None:
    discriminator = ProjectedDiscriminator(TINY)
    images = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    same = discriminator(images, torch.tensor([0, 0]))
    other = discriminator(images, torch.tensor([1, 1]))
    assert not torch.allclose(same, other)
    same.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_two_discriminators_resume_to_the_same_weights_as_training_straight() -> None:
    data = noise_data()
    straight = train_gan(*data, TINY, PROJECTED)
    saved: list[bytes] = []
    first = TrainConfig(**{**PROJECTED.to_dict(), "steps": 3})
    train_gan(*data, TINY, first, save_checkpoint=lambda state: saved.append(state_to_bytes(state)))
    state = state_from_bytes(saved[0])
    assert "projected_discriminator" in state
    resumed = train_gan(*data, TINY, PROJECTED, resume=state)
    assert tensors_equal(resumed.g_ema_state, straight.g_ema_state)
    assert resumed.final_losses == straight.final_losses
    # A checkpoint of one recipe does not resume the other.
    with pytest.raises(ValueError, match="discriminators"):
        train_gan(*data, TINY, QUICK, resume=state)


def test_the_projected_discriminator_changes_what_the_generator_learns() -> None:
    data = noise_data()
    alone, beside = train_gan(*data, TINY, QUICK), train_gan(*data, TINY, PROJECTED)
    assert not tensors_equal(alone.g_ema_state, beside.g_ema_state)
    with pytest.raises(ValueError):
        TrainConfig(projected_weight=-1.0)
