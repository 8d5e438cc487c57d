"""Helpers shared by the unit tests."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent


def toc_files(entry: object) -> list[str]:
    """Every ``file:`` (and the ``root:``) named anywhere in a parsed ``_toc.yml``, in
    reading order."""
    if isinstance(entry, list):
        return [name for item in entry for name in toc_files(item)]
    if not isinstance(entry, dict):
        return []
    names = [entry[key] for key in ("root", "file") if key in entry]
    return names + [name for value in entry.values() for name in toc_files(value)]


def toc_pages() -> list[str]:
    """Every page of the book's ``_toc.yml``, in reading order."""
    import yaml

    return toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8")))


@functools.cache
def load_sync_script() -> ModuleType:
    """``scripts/sync_notebooks.py`` (not a package module), imported by path once: one
    definition of "a chapter" and of the student notebook for every test."""
    spec = importlib.util.spec_from_file_location(
        "_flowcourse_sync_notebooks", ROOT / "scripts" / "sync_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomize_parameters(module: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Overwrite every parameter with small random values.

    Conditioners start at zero (so fresh layers are the identity); a test of the
    log-determinant or of the Jacobian's structure on the identity could not fail.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.copy_((scale * noise).to(parameter.dtype))
    return module


# The masks of the vector couplings' split form, with the branch each one takes: kept
# values as one block at the start or the end (slices and torch.cat), transformed values
# evenly spaced (a strided slice of a copy), anything else (index_select and index_copy).
def split_masks() -> dict[str, tuple[torch.Tensor, str]]:
    from flowcourse.coupling import alternating_mask, half_mask

    return {
        "first half": (half_mask(7), "blocks"),
        "last half": (half_mask(7, first=False), "blocks"),
        "alternating": (alternating_mask(7), "strided"),
        "every third": (torch.tensor([False, True, True, False, True, True, False]), "strided"),
        "middle block": (torch.tensor([False, False, True, True, True, False, False]), "indices"),
    }


def split_branch(conditioner: nn.Module) -> str:
    """Which branch a ``CouplingMLP`` splits and merges by (see :func:`split_masks`)."""
    if conditioner.blocks is not None:
        return "blocks"
    return "indices" if conditioner.transformed_slice is None else "strided"
