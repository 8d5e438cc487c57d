r"""One step of Glow: ActNorm, then an invertible 1x1 convolution, then an affine coupling."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from flowcourse.core import Transform
from flowcourse.coupling import AffineCoupling, channel_mask
from flowcourse.glow.actnorm import ActNorm
from flowcourse.glow.conv1x1 import LUInvertible1x1Conv
from flowcourse.validation import check_image, check_matches_module, check_positive_int

__all__ = ["GlowStep", "CouplingFactory"]

#: Builds a coupling from ``(mask, channels, hidden_channels)``, like
#: ``AffineCoupling.for_images`` or ``AdditiveCoupling.for_images``.
CouplingFactory = Callable[[Tensor, int, int], Transform]


class GlowStep(Transform):
    r"""One step of flow of Glow (Kingma & Dhariwal 2018, Sec. 3 and Fig. 2a).

    On images ``(batch, C, H, W)``, data to noise:

    .. math::

        h = \operatorname{ActNorm}(x), \qquad
        u = W h \ \text{at every pixel}, \qquad
        z = \operatorname{coupling}(u),

    .. math::

        \log\left|\det \frac{\partial z}{\partial x}\right|
        = H W \sum_c s_c + H W \log|\det W| + \sum_{i \notin \text{kept}} s_i(u).

    The coupling keeps the first half of the channels (a channel mask) and transforms the
    second half; the learned 1x1 convolution before it decides which mixtures of channels
    land in each half, replacing RealNVP's fixed reversal. Swap the parts to reproduce the
    paper's ablations: ``permutation`` may be any ``channels -> Transform`` factory
    (:class:`~flowcourse.glow.LUInvertible1x1Conv`, :class:`~flowcourse.glow.Invertible1x1Conv`,
    :class:`~flowcourse.permutations.ReversePermutation`, or
    ``functools.partial(RandomPermutation, seed=1)``), and ``coupling`` any
    ``(mask, channels, hidden_channels) -> Transform`` factory
    (``AffineCoupling.for_images``, or ``AdditiveCoupling.for_images`` for the additive
    variant). A fresh step is an ActNorm that initialises on its first batch, a random
    rotation, and an identity coupling (its conditioner's last layer is zero).
    Taught in the chapter *Glow*.

    Example:
        >>> import torch
        >>> step = GlowStep(4, hidden_channels=16)
        >>> x = torch.randn(8, 4, 4, 4)
        >>> z, log_abs_det = step(x)  # the first batch initialises ActNorm
        >>> z.shape, log_abs_det.shape
        (torch.Size([8, 4, 4, 4]), torch.Size([8]))
        >>> torch.allclose(step.inverse(z)[0], x, atol=1e-5)
        True
    """

    container = True

    def __init__(
        self,
        channels: int,
        hidden_channels: int = 64,
        permutation: Callable[[int], Transform] = LUInvertible1x1Conv,
        coupling: CouplingFactory = AffineCoupling.for_images,
    ) -> None:
        super().__init__()
        channels = check_positive_int(channels, "channels")
        if channels < 2 or channels % 2:
            raise ValueError(
                f"expected an even number of channels >= 2 (the coupling splits them in "
                f"halves), got {channels}"
            )
        hidden_channels = check_positive_int(hidden_channels, "hidden_channels")
        for name, factory in [("permutation", permutation), ("coupling", coupling)]:
            if not callable(factory):
                raise TypeError(
                    f"expected {name} to be a callable that builds a Transform, "
                    f"got {type(factory).__name__}"
                )
        self.channels = channels
        self.actnorm = ActNorm(channels)
        self.permutation = _built(permutation(channels), "permutation")
        mask = channel_mask(channels, first=True)
        self.coupling = _built(coupling(mask, channels, hidden_channels), "coupling")

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, log_abs_det_actnorm = self.actnorm(x)
        u, log_abs_det_permutation = self.permutation(h)
        z, log_abs_det_coupling = self.coupling(u, context)
        return z, log_abs_det_actnorm + log_abs_det_permutation + log_abs_det_coupling

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u, log_abs_det_coupling = self.coupling.inverse(z, context)
        h, log_abs_det_permutation = self.permutation.inverse(u)
        x, log_abs_det_actnorm = self.actnorm.inverse(h)
        return x, log_abs_det_actnorm + log_abs_det_permutation + log_abs_det_coupling

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        name = "z" if inverse else "x"
        check_matches_module(check_image(x, self.channels, name), self, name)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


def _built(layer: object, name: str) -> Transform:
    if not isinstance(layer, Transform):
        raise TypeError(
            f"expected the {name} factory to return a Transform, got {type(layer).__name__}"
        )
    return layer
