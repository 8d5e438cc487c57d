"""Reproducible randomness that leaves the caller's random state alone.

Building a model or training it under :func:`seeded` gives the same numbers on every
run on the same device, and afterwards torch's global random state is exactly as the
caller left it: a notebook cell that builds a model does not change what the next cell
draws. The factories of :mod:`flowcourse.models`, MADE and :func:`flowcourse.training.fit`
all use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from flowcourse.validation import check_int

__all__ = ["seeded"]


@contextmanager
def seeded(seed: int, device: str | torch.device | None = None) -> Iterator[None]:
    """Seed torch's generators for the block, then put the caller's random state back.

    The CPU generator is always seeded and restored; pass ``device`` (e.g. ``"cuda"``)
    to seed and restore that device's generator too.

    Example:
        >>> with seeded(0):
        ...     a = torch.rand(2)
        >>> with seeded(0):
        ...     b = torch.rand(2)
        >>> torch.equal(a, b)
        True
    """
    check_int(seed, "seed")
    device = torch.device(device) if device is not None else torch.device("cpu")
    accelerators = [] if device.type == "cpu" else [device]
    device_type = "cuda" if device.type == "cpu" else device.type
    with torch.random.fork_rng(devices=accelerators, device_type=device_type):
        if accelerators:
            torch.manual_seed(seed)  # every device's generator, restored above
        else:
            torch.default_generator.manual_seed(seed)  # the CPU's only
        yield
