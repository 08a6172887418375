"""Which torch device a job runs on, from the worker's ``ARTFORGE_DEVICE`` setting."""

from __future__ import annotations


def torch_device(requested: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; "cuda" without a GPU is an error
    (a worker configured for a GPU should fail loudly, not crawl on the CPU)."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("ARTFORGE_DEVICE asks for cuda but no GPU is visible")
    return requested
