"""Training state <-> bytes, as safetensors: never a pickle.

Every tensor, however deeply nested (model and optimizer state, RNG state), goes into the
safetensors body under its dotted path ("opt_g.state.0.exp_avg"). Everything else (step,
optimizer param_groups, configs, numpy and python RNG state) is one JSON document in the
file's metadata, with {"__tensor__": key} where a tensor was. Dicts with non-string keys
(optimizer state is keyed by int) and tuples are tagged so they come back as they went in.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from safetensors.torch import load, save

STATE_KEY = "artforge.state"
TENSOR, TUPLE, ITEMS = "__tensor__", "__tuple__", "__items__"


def state_to_bytes(state: dict[str, Any]) -> bytes:
    """Invariant: ``state_from_bytes(state_to_bytes(s))`` equals ``s``: same keys and key types,
    tensors equal bitwise (dtype and shape kept), tuples still tuples."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, "", tensors)
    return save(tensors, metadata={STATE_KEY: json.dumps(skeleton)})


def state_from_bytes(data: bytes) -> dict[str, Any]:
    """Tensors come back on the CPU."""
    # safetensors' format: 8-byte little-endian header length, then the JSON header.
    header_len = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8:8 + header_len]).get("__metadata__") or {}
    if STATE_KEY not in metadata:
        raise ValueError("not an ArtForge training state (no state metadata)")
    state = _join(json.loads(metadata[STATE_KEY]), load(data))
    if not isinstance(state, dict):
        raise ValueError("training state must be a dict")
    return state


def _split(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """The JSON skeleton of ``value``; its tensors are moved into ``tensors``."""
    if isinstance(value, torch.Tensor):
        if path in tensors:
            raise ValueError(f"two tensors would share the key {path!r}")
        # A copy: safetensors refuses views and tensors that share storage.
        tensors[path] = value.detach().to("cpu", copy=True).contiguous()
        return {TENSOR: path}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not {TENSOR, TUPLE, ITEMS} & set(value):
            return {k: _split(v, f"{path}.{k}" if path else k, tensors) for k, v in value.items()}
        if not all(isinstance(k, str | int) for k in value):
            raise TypeError(f"dict keys at {path!r} must be str or int")
        return {ITEMS: [[k, _split(v, f"{path}.{k}" if path else str(k), tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {TUPLE: [_split(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_split(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {path!r} in a training state")


def _join(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if TENSOR in skeleton:
            return tensors[skeleton[TENSOR]]
        if TUPLE in skeleton:
            return tuple(_join(v, tensors) for v in skeleton[TUPLE])
        if ITEMS in skeleton:
            return {k: _join(v, tensors) for k, v in skeleton[ITEMS]}
        return {k: _join(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [_join(v, tensors) for v in skeleton]
    return skeleton

