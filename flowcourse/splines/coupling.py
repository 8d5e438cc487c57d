r"""The rational-quadratic spline coupling layer of neural spline flows (Durkan et al. 2019)."""

from __future__ import annotations

from torch import Tensor, nn

from flowcourse.coupling.base import Coupling
from flowcourse.coupling.masks import check_vector_mask
from flowcourse.nets import CouplingMLP
from flowcourse.splines.rational_quadratic import (
    rational_quadratic_spline,
    spline_parameter_count,
    unpack_spline_parameters,
)
from flowcourse.validation import check_positive_float, check_positive_int

__all__ = ["RationalQuadraticCoupling"]


class RationalQuadraticCoupling(Coupling):
    r"""A coupling layer whose transformed half goes through monotone splines (Durkan et al. 2019).

    With a binary mask :math:`m` (``True`` = kept), the conditioner reads the kept values
    :math:`m \odot x` (and the context, if any) and returns, for every transformed value
    :math:`x_i`, the :math:`3K - 1` raw numbers of one spline :math:`g_i` with :math:`K`
    bins (:func:`~flowcourse.splines.spline_knots`). Data to noise:

    .. math::

        z_m = x_m, \qquad z_i = g_i(x_i;\, x_m) \ \ (m_i = 0), \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = \sum_{i: m_i = 0} \log g_i'(x_i),

    and the inverse applies :math:`g_i^{-1}` (the root of a quadratic per value, see
    :func:`~flowcourse.splines.rational_quadratic_spline`). Outside :math:`[-B, B]`
    each :math:`g_i` is the identity. The Jacobian is block triangular, as for RealNVP's
    affine coupling, but each transformed value gets a flexible monotone map instead of
    a scale and a shift. Taught in the chapter *Neural spline flows*.

    Arguments:
        mask: a vector ``bool`` mask of shape ``(features,)`` (True = kept).
        conditioner: a module called as ``conditioner(m * x)`` (``conditioner(m * x,
            context)`` with a context; the :class:`~flowcourse.coupling.Coupling` base)
            that returns ``(batch, (3K - 1) * features)`` numbers laid out
            parameter-major (``out.reshape(batch, 3K - 1, features)``); those of the kept
            values are ignored. A :class:`~flowcourse.nets.CouplingMLP` with
            ``num_params = 3K - 1`` is one; built from the same mask, it is called on
            the kept values alone (``conditioner(x_K, context, kept_only=True)``, see
            :meth:`~flowcourse.coupling.Coupling.split_form`), and the splines are computed
            for the transformed values only: the same map with less work.
        num_bins: :math:`K`, the number of bins of each spline.
        bound: :math:`B`: the splines act on :math:`[-B, B]`, the identity elsewhere.
        context_features: the size of a context that conditions the splines (0: none).

    Example:
        >>> import torch
        >>> from flowcourse.coupling import half_mask
        >>> layer = RationalQuadraticCoupling.for_vectors(half_mask(4), hidden_features=16)
        >>> z, log_abs_det = layer(torch.randn(5, 4))
        >>> z.shape, log_abs_det.shape
        (torch.Size([5, 4]), torch.Size([5]))
    """

    def __init__(
        self,
        mask: Tensor,
        conditioner: nn.Module,
        num_bins: int = 8,
        bound: float = 3.0,
        context_features: int = 0,
    ) -> None:
        super().__init__(mask, conditioner, context_features=context_features)
        mask = check_vector_mask(mask)
        self.register_buffer("transformed", (~mask).nonzero().flatten())
        self.num_bins = check_positive_int(num_bins, "num_bins")
        self.bound = check_positive_float(bound, "bound")

    @classmethod
    def for_vectors(
        cls,
        mask: Tensor,
        hidden_features: int = 64,
        num_hidden_layers: int = 2,
        num_bins: int = 8,
        bound: float = 3.0,
        context_features: int = 0,
    ) -> RationalQuadraticCoupling:
        """A spline coupling on ``(batch, D)`` vectors with a
        :class:`~flowcourse.nets.CouplingMLP`: the kept values in, :math:`3K - 1` numbers
        for each transformed value out. Its last layer starts at zero, so the fresh layer
        is the identity."""
        mask = check_vector_mask(mask)
        num_params = spline_parameter_count(check_positive_int(num_bins, "num_bins"))
        conditioner = CouplingMLP(
            mask, num_params, hidden_features, num_hidden_layers, context_features
        )
        return cls(mask, conditioner, num_bins, bound, context_features)

    def spline_parameters(
        self, x: Tensor, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The raw widths, heights and derivatives of the transformed values' splines,
        shapes ``(batch, T, K)``, ``(batch, T, K)`` and ``(batch, T, K - 1)``."""
        if self.split_form():  # a CouplingMLP of this mask: ask it for T's numbers only
            return self.transformed_spline_parameters(self.conditioner.split(x)[0], context)
        params = self.conditioner_output(x, context)
        widths, heights, derivatives = self._unpack(params, self.mask.numel(), "features")
        index = self.transformed
        return widths[:, index], heights[:, index], derivatives[:, index]

    def transformed_spline_parameters(
        self, kept: Tensor, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        r""":meth:`spline_parameters` from the kept values ``kept`` :math:`= x_K` alone
        (a vector coupling with a :class:`~flowcourse.nets.CouplingMLP`): the conditioner
        predicts the :math:`3K - 1` numbers of the transformed values only."""
        params = self.conditioner(kept, context, kept_only=True)  # a module call: hooks see it
        return self._unpack(params, len(self.transformed), "transformed values")

    def _unpack(self, params: Tensor, features: int, what: str) -> tuple[Tensor, Tensor, Tensor]:
        expected = (params.shape[0], spline_parameter_count(self.num_bins) * features)
        if tuple(params.shape) != expected:
            raise ValueError(
                f"expected the conditioner to return shape {expected} (3K - 1 = "
                f"{spline_parameter_count(self.num_bins)} numbers for each of the {features} "
                f"{what}, K = {self.num_bins} bins), got {tuple(params.shape)}"
            )
        return unpack_spline_parameters(params, features, self.num_bins)

    def _splines(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        if self.split_form():  # the same map, on x_T only, merged back once
            kept, changed = self.conditioner.split(x)
            params = self.transformed_spline_parameters(kept, context)
            values, log_derivative = rational_quadratic_spline(
                changed, *params, inverse, self.bound
            )
            return self.conditioner.replace_transformed(x, values), log_derivative.sum(dim=1)
        params = self.spline_parameters(x, context)
        values, log_derivative = rational_quadratic_spline(
            x[:, self.transformed], *params, inverse, self.bound
        )
        return x.index_copy(1, self.transformed, values), log_derivative.sum(dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._splines(x, context, inverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._splines(z, context, inverse=True)

    def extra_repr(self) -> str:
        return (
            f"features={self.mask.numel()}, kept={int(self.mask.sum())}, "
            f"num_bins={self.num_bins}, bound={self.bound}, "
            f"context_features={self.context_features}"
        )
