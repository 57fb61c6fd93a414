"""Device resolution: ``"auto"`` picks cuda, then mps, then cpu (one definition for the
library, the notebooks and the benchmarks)."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """``"auto"``: cuda (the process's local rank under torchrun), else mps, else cpu."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r} asked for, but torch sees no CUDA GPU; use device='auto' or 'cpu'"
            )
        if device.index is None:
            device = torch.device("cuda", local_rank or 0)
    return device
