r"""A fixed-step ODE solver, short enough to read: Euler, midpoint and RK4.

The solver integrates :math:`\frac{dy}{dt} = f(t, y)` from :math:`t_0` to :math:`t_1`
with ``num_steps`` equal steps :math:`h = (t_1 - t_0)/K` (a negative :math:`h`
integrates backwards in time). The state :math:`y` is a tuple of tensors, so a
continuous flow can carry its position and its log-determinant together. One step of
each method:

.. math::

    \text{Euler:}\quad & y_{k+1} = y_k + h f(t_k, y_k), \\
    \text{midpoint:}\quad & y_{k+1} = y_k + h f\big(t_k + \tfrac{h}{2},
        y_k + \tfrac{h}{2} f(t_k, y_k)\big), \\
    \text{RK4:}\quad & y_{k+1} = y_k + \tfrac{h}{6}(k_1 + 2k_2 + 2k_3 + k_4),

with :math:`k_1 = f(t_k, y_k)`, :math:`k_2 = f(t_k + \frac{h}{2}, y_k + \frac{h}{2}k_1)`,
:math:`k_3 = f(t_k + \frac{h}{2}, y_k + \frac{h}{2}k_2)`,
:math:`k_4 = f(t_k + h, y_k + h k_3)`. Their global errors shrink like :math:`h`,
:math:`h^2` and :math:`h^4` (the *order*); each step costs 1, 2 and 4 evaluations of
:math:`f`. An adaptive solver (``torchdiffeq.odeint`` with ``method="dopri5"``, Chen et
al. 2018) chooses :math:`h` itself from an error estimate; this one does not, which
makes its cost known in advance and its result differentiable by plain autograd.
Taught in the chapter *Continuous-time flows and flow matching*.

Example:
    >>> import math, torch
    >>> from flowcourse.continuous import odeint
    >>> (y,) = odeint(lambda t, y: (-y[0],), (torch.ones(1),), 0.0, 1.0, num_steps=10)
    >>> abs(float(y) - math.exp(-1)) < 1e-6  # dy/dt = -y, y(1) = e^{-1}
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from flowcourse.validation import check_positive_int

__all__ = [
    "State",
    "Dynamics",
    "Solver",
    "SOLVERS",
    "euler_step",
    "midpoint_step",
    "rk4_step",
    "get_solver",
    "odeint",
]

State = tuple[Tensor, ...]
"""A tuple of tensors, the state of the ODE (a position, a log-determinant, ...)."""

Dynamics = Callable[[float, State], State]
"""The right-hand side ``f(t, y)`` of the ODE, which returns ``dy/dt`` shaped like ``y``."""


def _add(y: State, h: float, dy: State) -> State:
    """``y + h dy``, entry by entry."""
    return tuple(a + h * b for a, b in zip(y, dy, strict=True))


def euler_step(f: Dynamics, t: float, y: State, h: float) -> State:
    """One explicit Euler step: follow the slope at the start for a time ``h``."""
    return _add(y, h, f(t, y))


def midpoint_step(f: Dynamics, t: float, y: State, h: float) -> State:
    """One midpoint step: a half Euler step, then the whole step with the slope found there."""
    k1 = f(t, y)
    k2 = f(t + h / 2, _add(y, h / 2, k1))
    return _add(y, h, k2)


def rk4_step(f: Dynamics, t: float, y: State, h: float) -> State:
    """One step of the classical fourth-order Runge-Kutta method."""
    k1 = f(t, y)
    k2 = f(t + h / 2, _add(y, h / 2, k1))
    k3 = f(t + h / 2, _add(y, h / 2, k2))
    k4 = f(t + h, _add(y, h, k3))
    return tuple(
        a + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
        for a, b1, b2, b3, b4 in zip(y, k1, k2, k3, k4, strict=True)
    )


@dataclass(frozen=True)
class Solver:
    """A fixed-step method: its step function, its order, and its cost per step."""

    name: str
    step: Callable[[Dynamics, float, State, float], State]
    order: int
    evaluations_per_step: int


#: The fixed-step methods by name (names, not functions, so a model's config can be
#: written to a checkpoint's JSON).
SOLVERS: dict[str, Solver] = {
    "euler": Solver("euler", euler_step, order=1, evaluations_per_step=1),
    "midpoint": Solver("midpoint", midpoint_step, order=2, evaluations_per_step=2),
    "rk4": Solver("rk4", rk4_step, order=4, evaluations_per_step=4),
}


def get_solver(method: str | Solver) -> Solver:
    """The :class:`Solver` called ``method`` (or ``method`` itself if it is one)."""
    if isinstance(method, Solver):
        return method
    if not isinstance(method, str) or method not in SOLVERS:
        valid = ", ".join(repr(name) for name in SOLVERS)
        raise ValueError(f"expected method to be one of {valid}, got {method!r}")
    return SOLVERS[method]


def odeint(
    f: Dynamics,
    y0: State,
    t0: float,
    t1: float,
    num_steps: int,
    method: str | Solver = "rk4",
    return_path: bool = False,
) -> State | list[State]:
    r"""Integrate :math:`dy/dt = f(t, y)` from ``t0`` to ``t1`` in ``num_steps`` equal steps.

    Returns the state at ``t1`` (a tuple shaped like ``y0``) or, with ``return_path``,
    the list of the ``num_steps + 1`` states at :math:`t_0, t_0 + h, \dots, t_1`.
    ``t1 < t0`` integrates backwards. The cost is ``num_steps`` times the method's
    evaluations per step (1 for Euler, 2 for midpoint, 4 for RK4).
    """
    solver = get_solver(method)
    check_positive_int(num_steps, "num_steps")
    if not isinstance(y0, tuple) or not all(isinstance(y, Tensor) for y in y0):
        raise TypeError(f"expected y0 to be a tuple of tensors, got {type(y0).__name__}")
    t0, t1 = float(t0), float(t1)
    h = (t1 - t0) / num_steps
    y, path = y0, [y0]
    for k in range(num_steps):
        y = solver.step(f, t0 + k * h, y, h)
        if return_path:
            path.append(y)
    return path if return_path else y
