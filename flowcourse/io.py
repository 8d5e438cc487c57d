r"""Save a trained flow and load it back, rebuilt from the factory that made it.

A checkpoint is one ``torch.save`` file holding a plain dictionary:

- ``"format"``: ``"flowcourse-checkpoint"`` and ``"format_version"``: 1;
- ``"flowcourse_version"``: the package version that wrote it;
- ``"config"``: the flow's ``flow.config``, ``{"factory": "maf", "kwargs": {...}}``, as
  set by the factories of :mod:`flowcourse.models` (or ``None``);
- ``"state_dict"``: every parameter *and registered buffer* (ActNorm's "initialised"
  flag, masks, permutations), on the CPU.

:func:`load` reads it with ``torch.load(weights_only=True)``, which refuses to run code
hidden in a file, and rebuilds the flow with
``getattr(flowcourse.models, config["factory"])(**config["kwargs"])``; or it loads the
weights into a flow you pass. This is how the book ships small trained checkpoints and
trains only when asked. Taught in the chapter *RealNVP*.

Example:
    >>> import tempfile, torch
    >>> from flowcourse import io, models
    >>> flow = models.maf(features=2, num_layers=2, hidden_features=8)
    >>> path = tempfile.mkdtemp() + "/maf.pt"
    >>> io.save(flow, path)
    >>> again = io.load(path)
    >>> x = torch.randn(3, 2)
    >>> torch.equal(flow.log_prob(x), again.log_prob(x))
    True
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
import warnings

import torch
from torch import nn

__all__ = ["save", "load"]

FORMAT = "flowcourse-checkpoint"
FORMAT_VERSION = 1


def save(flow: nn.Module, path: str | os.PathLike) -> None:
    """Write ``flow``'s config, state (parameters and buffers) and the package version.

    ``flow.config`` (set by :mod:`flowcourse.models`) must be JSON data:
    ``{"factory": name, "kwargs": {...}}`` of numbers, strings, lists and dicts. A flow
    without a config can still be saved; it is then loaded with ``load(path, flow=...)``.

    Example:
        >>> import tempfile
        >>> from flowcourse.core import Compose, Flow, StandardNormal
        >>> save(Flow(Compose(), StandardNormal(2)), tempfile.mkdtemp() + "/flow.pt")
    """
    if not isinstance(flow, nn.Module):
        raise TypeError(f"expected flow to be an nn.Module, got {type(flow).__name__}")
    config = getattr(flow, "config", None)
    if config is not None:
        _check_config(config)
    from flowcourse import __version__  # here, not at the top: flowcourse imports this module

    state_dict = {name: tensor.detach().cpu() for name, tensor in flow.state_dict().items()}
    checkpoint = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "flowcourse_version": __version__,
        "config": config,
        "state_dict": state_dict,
    }
    torch.save(checkpoint, path)


def _release(version: object) -> tuple[int, ...]:
    """``(0, 2, 0)`` from ``"0.2.0"`` (or ``"0.2.0.dev1"``); ``()`` when unreadable."""
    numbers = []
    for part in str(version).split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def load(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    flow: nn.Module | None = None,
) -> nn.Module:
    """Load a checkpoint written by :func:`save`.

    Without ``flow``, rebuild the model from the checkpoint's config through
    :mod:`flowcourse.models`, load the state strictly, move it to ``map_location`` and
    return it in eval mode with its ``config`` set. With ``flow``, load the state
    strictly into that module (its device and mode are kept) and return it.

    Raises:
        ValueError: the file is not a flowcourse checkpoint (not a ``torch.save`` file at
            all, or one holding something else), has no config (and no ``flow`` was
            given), names an unknown factory, or its state does not match the flow
            (missing, unexpected or differently shaped entries, all listed).
    """
    checkpoint = _read(path, map_location)
    from flowcourse import __version__

    saved_version = checkpoint.get("flowcourse_version")
    if _release(saved_version) > _release(__version__):
        # An older release's checkpoint of the same format loads as it is (the state is
        # loaded strictly, so a changed layer fails loudly); a newer one may hold layers
        # or conventions this release does not know.
        warnings.warn(
            f"{os.fspath(path)!r} was written by flowcourse {saved_version}, newer than "
            f"this {__version__}. Loading it anyway.",
            stacklevel=2,
        )
    state_dict = checkpoint["state_dict"]
    config = checkpoint.get("config")
    if flow is not None:
        if not isinstance(flow, nn.Module):
            raise TypeError(f"expected flow to be an nn.Module, got {type(flow).__name__}")
        _load_state(flow, state_dict)
        return flow
    if config is None:
        raise ValueError(
            f"expected {os.fspath(path)!r} to hold a config (a flow built by "
            f"flowcourse.models), got none; pass the architecture: load(path, flow=...)"
        )
    flow = _build(config)
    # Factories build in the default dtype; take the checkpoint's, so a float64 flow
    # comes back in float64 with every digit (load_state_dict would round it).
    saved_dtype = next((t.dtype for t in state_dict.values() if t.is_floating_point()), None)
    if saved_dtype is not None:
        flow = flow.to(saved_dtype)
    _load_state(flow, state_dict)
    flow.config = config
    return flow.to(map_location).eval()


def _read(path: str | os.PathLike, map_location: str | torch.device) -> dict:
    """``torch.load(weights_only=True)`` of a checkpoint; every way a file can fail to
    be one raises the same ``ValueError``, which then says what this file is instead."""

    def not_a_checkpoint(what: str) -> ValueError:
        return ValueError(
            "expected a flowcourse checkpoint: a file written by flowcourse.io.save(flow, "
            "path) (a torch.save file of a dict of tensors, config and versions); "
            f"{os.fspath(path)!r} {what}"
        )

    with open(path, "rb") as file:  # a missing file raises here, saying which
        start = file.read(4)
    # torch.save writes a zip archive (or, in old versions, a pickle: protocol byte 0x80).
    if not (start.startswith(b"PK\x03\x04") or start[:1] == b"\x80"):
        raise not_a_checkpoint(
            f"is not a torch.save file (it starts with {start!r}, not with the bytes of a "
            "zip archive or a pickle)"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise not_a_checkpoint(
            "is a torch.save file of Python objects (a whole pickled model, perhaps), which "
            "flowcourse does not unpickle because unpickling can run code; save the flow "
            "with flowcourse.io.save"
        ) from error
    except Exception as error:  # torch raises many kinds on a damaged file
        raise not_a_checkpoint(
            "is a damaged or truncated torch.save file: torch could not read it "
            f"({type(error).__name__}: {error})"
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        how = "without" if isinstance(checkpoint, dict) else "instead of a dict with"
        raise not_a_checkpoint(f'holds a {type(checkpoint).__name__} {how} "format": {FORMAT!r}')
    return checkpoint


def _build(config: dict) -> nn.Module:
    _check_config(config)
    try:
        models = importlib.import_module("flowcourse.models")
    except ImportError as error:  # pragma: no cover - models.py ships with the package
        raise ImportError(
            "flowcourse.models is needed to rebuild a flow from its config; "
            "pass the architecture instead: load(path, flow=...)"
        ) from error
    name = config["factory"]
    factory = getattr(models, name, None)
    known = sorted(getattr(models, "__all__", []))
    if name.startswith("_") or not callable(factory) or (known and name not in known):
        raise ValueError(f"expected a factory of flowcourse.models in {known}, got {name!r}")
    flow = factory(**config["kwargs"])
    if not isinstance(flow, nn.Module):
        raise TypeError(f"expected factory {name!r} to return an nn.Module, got {type(flow)}")
    return flow


def _load_state(flow: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """``load_state_dict(strict=True)``, with one error listing everything that differs."""
    expected = flow.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{name}: checkpoint {tuple(state_dict[name].shape)}, flow {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in state_dict and state_dict[name].shape != tensor.shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing from the checkpoint: {missing}")
        if unexpected:
            problems.append(f"not in the flow: {unexpected}")
        if mismatched:
            problems.append(f"different shapes: {mismatched}")
        old_couplings = any(re.search(r"conditioner\.\d+\.", name) for name in unexpected)
        if old_couplings and any(".conditioner.net." in name for name in missing):
            problems.append(
                "the checkpoint's vector couplings have the conditioners of flowcourse 0.2 "
                "and earlier (all features in, all features out), which are no longer built; "
                "train it again with the seeded scripts/train_*.py that made it"
            )
        raise ValueError(
            "expected the checkpoint's state to match the flow, but " + "; ".join(problems)
        )
    flow.load_state_dict(state_dict, strict=True)


def _check_config(config: object) -> None:
    valid = (
        isinstance(config, dict)
        and isinstance(config.get("factory"), str)
        and isinstance(config.get("kwargs"), dict)
    )
    if not valid:
        raise ValueError(
            f'expected flow.config to be {{"factory": str, "kwargs": dict}}, got {config!r}'
        )
    try:
        json.dumps(config)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"expected flow.config to hold only JSON data (numbers, strings, lists, dicts), "
            f"got {config!r}: {error}"
        ) from error
