r"""The masked autoregressive rational-quadratic spline layer (Durkan et al. 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flowcourse.autoregressive.inversion import made_autoregressive_inverse
from flowcourse.autoregressive.maf import MaskedAutoregressive
from flowcourse.splines.rational_quadratic import (
    rational_quadratic_spline,
    spline_parameter_count,
    unpack_spline_parameters,
)
from flowcourse.validation import check_positive_float, check_positive_int

__all__ = ["MaskedRationalQuadraticAutoregressive"]


class MaskedRationalQuadraticAutoregressive(MaskedAutoregressive):
    r"""An autoregressive layer whose conditionals are monotone splines (Durkan et al. 2019).

    A MADE (Germain et al. 2015; held, with the ordering and the input check, by the base
    :class:`~flowcourse.autoregressive.MaskedAutoregressive`) reads the data and returns,
    for every feature :math:`x_i`, the :math:`3K - 1` raw numbers of a spline :math:`g_i`
    with :math:`K` bins that depend only on the features before :math:`x_i` in the
    ordering. Data to noise (``forward``, one MADE pass):

    .. math::

        z_i = g_i(x_i;\, x_{<i}), \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = \sum_i \log g_i'(x_i),

    MAF's layer (Papamakarios et al. 2017) with the affine map
    :math:`(x_i - \mu_i) e^{-\alpha_i}` replaced by a spline. Noise to data (``inverse``)
    solves one position of the ordering per MADE pass
    (:func:`~flowcourse.autoregressive.autoregressive_inverse`, MAF's loop), so
    it takes :math:`D` passes, each inverting a spline in closed form. It runs that loop
    in MAF's faster form (``made_autoregressive_inverse``): pass :math:`t` asks the MADE
    only for the :math:`3K - 1` numbers of the feature at position :math:`t` and inverts
    that feature's spline alone. Each :math:`g_i` is the identity outside
    :math:`[-B, B]`; the MADE's last layer starts at zero, so a fresh layer is the
    identity. Taught in the chapter *Neural spline flows*.

    Arguments:
        features: :math:`D`.
        hidden_features, num_hidden_layers: the MADE's hidden layers (each needs at
            least :math:`D - 1` units, :math:`D` with a context).
        num_bins: :math:`K`, the number of bins of each spline.
        bound: :math:`B`.
        order: the autoregressive ordering, a permutation of ``1..D`` (default ``1..D``).
        seed: fixes the MADE's initial weights.
        context_features: the size of a context that conditions the splines (0: none).

    Example:
        >>> import torch
        >>> layer = MaskedRationalQuadraticAutoregressive(3, hidden_features=8, num_bins=4)
        >>> z, log_abs_det = layer(torch.randn(5, 3))
        >>> z.shape, log_abs_det.shape
        (torch.Size([5, 3]), torch.Size([5]))
    """

    def __init__(
        self,
        features: int,
        hidden_features: int | Sequence[int] = 64,
        num_hidden_layers: int | None = None,
        num_bins: int = 8,
        bound: float = 3.0,
        order: Tensor | Sequence[int] | None = None,
        seed: int = 0,
        context_features: int = 0,
    ) -> None:
        num_bins = check_positive_int(num_bins, "num_bins")
        bound = check_positive_float(bound, "bound")
        super().__init__(
            features,
            hidden_features,
            num_hidden_layers,
            order,
            seed,
            context_features,
            output_multiplier=spline_parameter_count(num_bins),
        )
        self.num_bins, self.bound = num_bins, bound

    def spline_parameters(
        self, x: Tensor, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The raw widths, heights and derivatives of every feature's spline, read from
        ``x`` by one MADE pass: shapes ``(batch, D, K)``, ``(batch, D, K)``,
        ``(batch, D, K - 1)``; those of feature ``i`` depend only on earlier features."""
        return unpack_spline_parameters(self.made(x, context), self.features, self.num_bins)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        widths, heights, derivatives = self.spline_parameters(x, context)
        z, log_derivative = rational_quadratic_spline(
            x, widths, heights, derivatives, bound=self.bound
        )
        return z, log_derivative.sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        sizes = [self.num_bins, self.num_bins, self.num_bins - 1]

        def to_data(z_i: Tensor, *params: Tensor) -> tuple[Tensor, Tensor]:
            # x_i = g_i^{-1}(z_i): feature i's 3K - 1 raw numbers, read from x's earlier
            # positions, are one column each (the MADE's rows i, D + i, ...).
            widths, heights, derivatives = torch.stack(params, dim=1).split(sizes, dim=1)
            return rational_quadratic_spline(
                z_i, widths, heights, derivatives, inverse=True, bound=self.bound
            )

        return made_autoregressive_inverse(self.made, to_data, z, context)

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, num_bins={self.num_bins}, bound={self.bound}, "
            f"context_features={self.context_features}"
        )
