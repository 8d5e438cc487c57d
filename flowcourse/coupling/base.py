r"""What every coupling layer shares: a mask, a conditioner, and an optional context."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowcourse.core import Transform
from flowcourse.coupling.masks import check_coupling_input, check_image_mask, check_mask
from flowcourse.nets import CouplingMLP
from flowcourse.validation import check_int

__all__ = ["Coupling"]


class Coupling(Transform):
    r"""The base of the coupling layers: a mask :math:`m`, a conditioner, a context.

    A coupling keeps the values where :math:`m = 1` and transforms the others with
    parameters that the conditioner computes from the kept ones,
    :math:`\theta = \text{conditioner}(m \odot x)` (or
    :math:`\text{conditioner}(m \odot x, c)` with a context :math:`c`); a subclass
    turns :math:`\theta` into its map. This class holds the mask (a buffer), the
    conditioner and the context size, computes :math:`\theta`
    (:meth:`conditioner_output`), and checks an input against the mask, the layer's
    dtype and device and its context. :class:`~flowcourse.coupling.AdditiveCoupling`
    and :class:`~flowcourse.coupling.AffineCoupling` are couplings (Dinh et al. 2015,
    2017); taught in the chapters *NICE* and *RealNVP*.

    A :class:`~flowcourse.nets.CouplingMLP` conditioner must be built from the same mask:
    the vector couplings then skip the masking and work on the kept and transformed
    parts directly (:meth:`split_form`, :meth:`~flowcourse.nets.CouplingMLP.split`).

    Arguments:
        mask: a ``bool`` mask from :mod:`flowcourse.coupling.masks` (True = kept).
        conditioner: the module that computes the parameters from the masked input.
        in_channels: for image masks, the number of channels to accept (a checkerboard
            mask broadcasts over channels, so it cannot tell); ``None`` accepts any.
        context_features: the size of a context that conditions the layer (0: none);
            the conditioner is then called as ``conditioner(m * x, context)``.
    """

    def __init__(
        self,
        mask: Tensor,
        conditioner: nn.Module,
        *,
        in_channels: int | None = None,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(conditioner, nn.Module):
            kind = type(conditioner).__name__
            raise TypeError(f"expected conditioner to be an nn.Module, got {kind}")
        if in_channels is not None:
            check_image_mask(mask, in_channels)
        if isinstance(conditioner, CouplingMLP) and not _same_mask(conditioner, check_mask(mask)):
            raise ValueError(
                f"expected a CouplingMLP built from the coupling's mask {mask.tolist()}, got "
                f"one that keeps indices {conditioner.kept.tolist()} of "
                f"{conditioner.features} features"
            )
        self.register_buffer("mask", check_mask(mask).clone())
        self.in_channels = in_channels
        self.context_features = check_int(context_features, "context_features", 0)
        self.conditioner = conditioner
        self._split_form_checked: tuple = ()

    def split_form(self) -> bool:
        r"""Whether the layer may compute its map on the kept and transformed parts
        directly: the conditioner is a :class:`~flowcourse.nets.CouplingMLP` that reads
        exactly the values the mask keeps. Otherwise (any other conditioner, or a mask
        edited in place after construction) the layer uses the masked formula.

        The comparison runs again only when the mask or the conditioner's indices are
        new tensors or were edited in place (which bumps a tensor's ``_version``).
        """
        conditioner = self.conditioner
        if not isinstance(conditioner, CouplingMLP):
            return False
        mask, kept = self.mask, conditioner.kept
        versions = (id(self), mask._version, kept._version)  # id: a deep copy checks again
        checked = self._split_form_checked  # (mask, kept, versions, answer)
        same_tensors = checked and checked[0] is mask and checked[1] is kept
        if not same_tensors or checked[2] != versions:
            self._split_form_checked = (mask, kept, versions, _same_mask(conditioner, mask))
        return self._split_form_checked[3]

    def conditioner_output(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        r"""The conditioner applied to the kept values :math:`m \odot x` (and the context)."""
        masked = x * self.mask.to(x.dtype)
        return self.conditioner(masked) if context is None else self.conditioner(masked, context)

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        check_coupling_input(self, x, inverse, context)


def _same_mask(conditioner: CouplingMLP, mask: Tensor) -> bool:
    """Whether ``conditioner`` reads exactly the values that ``mask`` keeps."""
    if mask.dim() != 1 or conditioner.features != mask.numel():
        return False
    return torch.equal(conditioner.kept, mask.nonzero().flatten().to(conditioner.kept.device))
