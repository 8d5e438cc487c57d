r"""A velocity field :math:`v_\theta(z, t)`: a small MLP that reads the position and the time.

.. math::

    v_\theta : \mathbb{R}^D \times [0, 1] \to \mathbb{R}^D, \qquad
    v_\theta(z, t) = \operatorname{MLP}_\theta\big([z, t]\big).

The time is one more input, concatenated to the position. The activation is smooth
(SiLU by default): the ODE solvers' orders of accuracy assume a smooth field, and the
divergence :math:`\operatorname{tr}\,\partial v/\partial z` of a ReLU network is
piecewise constant in :math:`z`. The last layer starts at zero, so a fresh field is
:math:`v = 0` and a fresh continuous flow is the identity map, like the package's other
layers. Taught in the chapter *Continuous-time flows and flow matching*.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from flowcourse.nets import MLP
from flowcourse.validation import check_positive_int

__all__ = ["VelocityMLP"]


class VelocityMLP(nn.Module):
    r"""The velocity field :math:`v_\theta(z, t) = \operatorname{MLP}_\theta([z, t])`.

    Args:
        features: the dimension :math:`D` of :math:`z`.
        hidden_features: width of each hidden layer.
        num_hidden_layers: number of hidden layers.
        activation: a smooth activation's class (``nn.SiLU``, ``nn.Tanh``, ``nn.Softplus``).

    ``forward(z, t)`` takes ``z`` of shape ``(batch, D)`` and a time that is a number, a
    0-d tensor or a ``(batch,)`` tensor (one time per sample), and returns ``(batch, D)``.

    Example:
        >>> field = VelocityMLP(2, hidden_features=16)
        >>> field(torch.zeros(5, 2), 0.5).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 64,
        num_hidden_layers: int = 3,
        activation: Callable[[], nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        self.features = check_positive_int(features, "features")
        # MLP checks hidden_features and num_hidden_layers under their own names.
        self.net = MLP(features + 1, features, hidden_features, num_hidden_layers, activation)

    def forward(self, z: Tensor, t: float | Tensor) -> Tensor:
        # Only shapes are checked here (the solver calls this many times per step); the
        # flow checks its inputs' values once, at the door.
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.features:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"expected z of shape (batch, {self.features}), got {got}")
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
        if t.dim() == 0:
            t = t.expand(z.shape[0])
        if t.shape != (z.shape[0],):
            raise ValueError(
                f"expected t to be a number or a tensor of shape ({z.shape[0]},), "
                f"got shape {tuple(t.shape)}"
            )
        return self.net(torch.cat([z, t[:, None]], dim=1))
