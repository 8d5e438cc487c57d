r"""A continuous normalizing flow (Chen et al. 2018): a transform defined by an ODE.

**Time convention** (the only one in this package): *data at* :math:`t = 0`, *noise at*
:math:`t = 1`. The flow moves a point along :math:`\frac{dz}{dt} = v(z_t, t)`, so the
package's data-to-noise ``forward`` integrates forwards in time, from 0 to 1, and
``inverse`` integrates backwards. (Lipman et al. 2023 put noise at :math:`t = 0`; their
:math:`t` is our :math:`1 - t` and their velocity our :math:`-v`.)

Along the way the log-density obeys the instantaneous change of variables,

.. math::

    \frac{d}{dt} \log p_t(z_t) = -\operatorname{tr} \frac{\partial v}{\partial z}(z_t, t),
    \qquad\text{so}\qquad
    \log\left|\det \frac{\partial z_1}{\partial x}\right|
    = \int_0^1 \operatorname{tr} \frac{\partial v}{\partial z}(z_t, t)\, dt,

which the solver integrates together with the position: the state is
:math:`(z_t, \ell_t)` with :math:`d\ell/dt = \operatorname{div} v`, :math:`\ell_0 = 0`.
With a fixed-step solver the result is the exact log-determinant of the *continuous*
map up to the solver's error, not the log-determinant of the discrete map the solver
computes; both errors vanish as ``num_steps`` grows. Taught in the chapter
*Continuous-time flows and flow matching*.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowcourse.continuous.ode import State, get_solver, odeint
from flowcourse.continuous.trace import exact_divergence
from flowcourse.core import Transform
from flowcourse.validation import check_matches_module, check_positive_int, check_tensor

__all__ = ["ContinuousFlow"]


class ContinuousFlow(Transform):
    r"""The flow map of :math:`dz/dt = v(z, t)` from :math:`t = 0` (data) to :math:`t = 1` (noise).

    ``forward(x)`` solves, from :math:`t = 0` to :math:`1`,

    .. math::

        \frac{d}{dt}\begin{bmatrix} z_t \\ \ell_t \end{bmatrix}
        = \begin{bmatrix} v(z_t, t) \\ \operatorname{tr}\, \partial v / \partial z\,(z_t, t)
        \end{bmatrix},
        \qquad z_0 = x,\ \ell_0 = 0,

    and returns :math:`(z_1, \ell_1)`, with
    :math:`\ell_1 \approx \log|\det \partial z_1/\partial x|`.
    ``inverse(z)`` solves the same system from :math:`t = 1` back to :math:`0` and returns
    :math:`(x, \ell_0)`, :math:`\ell_0 \approx \log|\det \partial x/\partial z|`. The
    divergence is exact (:func:`~flowcourse.continuous.exact_divergence`, :math:`D`
    backward passes per evaluation).

    Args:
        velocity: an ``nn.Module`` called as ``velocity(z, t)`` with ``z`` of shape
            ``(batch, D)`` and ``t`` a number, returning ``(batch, D)``
            (e.g. :class:`~flowcourse.continuous.VelocityMLP`).
        num_steps: the solver's number of equal steps (settable later: ``flow.num_steps = 8``).
        method: ``"euler"``, ``"midpoint"`` or ``"rk4"`` (settable later too).

    Example:
        >>> import torch
        >>> from flowcourse.continuous import ContinuousFlow, VelocityMLP
        >>> flow = ContinuousFlow(VelocityMLP(2, hidden_features=8), num_steps=4)
        >>> z, log_abs_det = flow(torch.randn(3, 2))  # a fresh field is v = 0: the identity
        >>> log_abs_det
        tensor([0., 0., 0.], grad_fn=<AddBackward0>)
    """

    def __init__(self, velocity: nn.Module, num_steps: int = 32, method: str = "rk4") -> None:
        super().__init__()
        if not isinstance(velocity, nn.Module):
            raise TypeError(
                f"expected velocity to be an nn.Module called as velocity(z, t), "
                f"got {type(velocity).__name__}"
            )
        self.velocity = velocity
        self.num_steps = num_steps
        self.method = method

    @property
    def num_steps(self) -> int:
        """The number of equal solver steps from :math:`t = 0` to :math:`t = 1`."""
        return self._num_steps

    @num_steps.setter
    def num_steps(self, value: int) -> None:
        self._num_steps = check_positive_int(value, "num_steps")

    @property
    def method(self) -> str:
        """The solver's name, one of ``flowcourse.continuous.SOLVERS``."""
        return self._method

    @method.setter
    def method(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(
                f"expected method to be a solver's name (str), got {type(value).__name__}"
            )
        self._method = get_solver(value).name

    @property
    def evaluations(self) -> int:
        """Evaluations of the velocity field in one pass (``num_steps`` times the method's cost)."""
        return self.num_steps * get_solver(self.method).evaluations_per_step

    def _check(self, x: Tensor, name: str) -> Tensor:
        x = check_tensor(x, name)
        features = getattr(self.velocity, "features", None)
        if x.dim() != 2 or (features is not None and x.shape[1] != features):
            expected = "features" if features is None else str(features)
            raise ValueError(f"expected {name} of shape (batch, {expected}), got {tuple(x.shape)}")
        return check_matches_module(x, self, name)

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        """A finite ``(batch, D)`` tensor of the flow's dtype and device; ``context`` is ignored."""
        self._check(x, "z" if inverse else "x")

    def _dynamics(self, t: float, state: State) -> State:
        z, _ = state
        v, divergence = exact_divergence(lambda position: self.velocity(position, t), z)
        return v, divergence

    def _solve(self, start: Tensor, t0: float, t1: float) -> tuple[Tensor, Tensor]:
        state = (start, start.new_zeros(start.shape[0]))
        end, log_abs_det = odeint(self._dynamics, state, t0, t1, self.num_steps, self.method)
        return end, log_abs_det

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data to noise: integrate from :math:`t = 0` to :math:`1`. ``context`` is ignored."""
        return self._solve(x, 0.0, 1.0)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise to data: integrate from :math:`t = 1` back to :math:`0`. ``context`` is ignored."""
        return self._solve(z, 1.0, 0.0)

    def transport(
        self,
        x: Tensor,
        t_start: float = 0.0,
        t_end: float = 1.0,
        return_path: bool = False,
    ) -> Tensor:
        r"""Move points along the flow from ``t_start`` to ``t_end``, without the divergence.

        The cheap way to sample (``transport(z, 1.0, 0.0)``) and to draw trajectories:
        one velocity evaluation per stage, no backward pass. With ``return_path`` the
        result has shape ``(num_steps + 1, batch, D)``, the positions after every step.
        """
        x = self._check(x, "x")
        path = odeint(
            lambda t, state: (self.velocity(state[0], t),),
            (x,),
            t_start,
            t_end,
            self.num_steps,
            self.method,
            return_path=return_path,
        )
        if return_path:
            return torch.stack([state[0] for state in path])
        return path[0]

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, method={self.method!r}"
