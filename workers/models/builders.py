"""From stored weights to networks ready for inference: the builders ``ModelRegistry.load`` calls
with a version's model card and weights (``workers.registry``), and the loaders they use.

A card says how to build its model (``gan_config``, ``restoration_config``); the weights are
``state_dict``s, a restoration version's three networks' keys prefixed by network. Every network
comes back in eval mode with gradients off, prepared for its device (``workers.devices``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

import torch
from safetensors.torch import load as load_safetensors

from shared.builtin_models import builtin_models
from workers import devices
from workers.models.gan import ARCHITECTURE, GanConfig, Generator
from workers.models.restoration import DamageDetector, FadeCorrector, InpaintingNet, RestorationConfig
from workers.models.upscaler import Upscaler2x, UpscalerConfig

UPSCALER = "upscaler"  # the shipped upscaler's name in shared/assets/models

Net = TypeVar("Net", bound=torch.nn.Module)


class UnsupportedArchitecture(ValueError):
    """A stored model whose network this code no longer builds."""


def build_generator(config: GanConfig, state: dict[str, torch.Tensor] | None) -> Generator:
    """A generator of ``config`` with ``state`` (None: freshly initialised), in eval mode on the CPU."""
    generator = Generator(config)
    if state is not None:
        generator.load_state_dict(state)
    return generator.eval()


def generator_from_card(card: dict[str, Any], state: dict[str, torch.Tensor]) -> Generator:
    """A creation model's generator (the card's ``gan_config``), in eval mode on the CPU."""
    if card.get("architecture") != ARCHITECTURE:
        raise UnsupportedArchitecture(f"model {card.get('name')}@{card.get('version')} is a "
                                      f"{card.get('architecture')!r} network; this service builds {ARCHITECTURE!r}: "
                                      "train it again")
    return build_generator(GanConfig.from_dict(card["gan_config"]), state)


def load_inpainter(state: dict[str, torch.Tensor], config: RestorationConfig, device: str = "cpu") -> InpaintingNet:
    return _loaded(InpaintingNet(config), state, device)


def load_detector(state: dict[str, torch.Tensor], config: RestorationConfig, device: str = "cpu") -> DamageDetector:
    return _loaded(DamageDetector(config), state, device)


def load_fade_corrector(state: dict[str, torch.Tensor], config: RestorationConfig,
                        device: str = "cpu") -> FadeCorrector:
    return _loaded(FadeCorrector(config), state, device)


def _loaded(net: Net, state: dict[str, torch.Tensor], device: str) -> Net:
    net.load_state_dict(state)
    devices.prepare_module(net, device)
    return net.requires_grad_(False)


class RestorationModel(NamedTuple):
    """Each network, or None where the card does not list its operation among the learned ones
    (the job uses the classical method there)."""

    inpainter: InpaintingNet | None
    detector: DamageDetector | None
    fade_corrector: FadeCorrector | None


def _part(state: dict[str, Any], network: str) -> dict[str, Any]:
    """One network's weights from a restoration version's file (keys prefixed by network)."""
    prefix = f"{network}."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def restoration_model_from_card(card: dict[str, Any], state: dict[str, Any]) -> RestorationModel:
    """The networks of one restoration version that its card lets jobs use."""
    config = RestorationConfig.from_dict(card["restoration_config"])
    learned = set(card.get("learned_operations", []))
    fade = load_fade_corrector(_part(state, "fade_corrector"), config) if "defade" in learned else None
    return RestorationModel(load_inpainter(_part(state, "inpainter"), config) if "inpaint" in learned else None,
                            load_detector(_part(state, "detector"), config) if "detect" in learned else None, fade)


def restoration_inpainter_from_card(card: dict[str, Any], state: dict[str, Any]) -> InpaintingNet:
    """A restoration version's inpainter, whether or not jobs use it: what the promotion gate scores."""
    return load_inpainter(_part(state, "inpainter"), RestorationConfig.from_dict(card["restoration_config"]))


@lru_cache(maxsize=4)
def shipped_upscaler(device: str = "cpu") -> tuple[Upscaler2x, dict[str, Any]]:
    """The upscaler that ships with the package (``make models``) and its card, loaded once per
    process and device."""
    model = builtin_models().get(UPSCALER)
    if model is None:
        raise RuntimeError("no upscaler ships with this build: run `make models`")
    network = Upscaler2x(UpscalerConfig.from_dict(model.card["upscaler_config"]))
    return _loaded(network, dict(load_safetensors(model.weights())), device), model.card
