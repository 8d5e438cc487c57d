r"""Continuous-time flows and flow matching.

A continuous normalizing flow (Chen et al. 2018) moves points along an ODE
:math:`dz/dt = v(z, t)`; its log-determinant is the time integral of the divergence
:math:`\operatorname{tr}\,\partial v/\partial z`. **Time convention:** data at
:math:`t = 0`, noise at :math:`t = 1`, so the package's data-to-noise ``forward``
integrates forwards in time. The parts, one file each:

- ``velocity.py``: :class:`VelocityMLP`, a field :math:`v(z, t)`;
- ``ode.py``: :func:`odeint`, a fixed-step Euler, midpoint or
  RK4 solver;
- ``trace.py``: the divergence, :func:`exact_divergence` and
  :func:`hutchinson_divergence` (Hutchinson 1989; FFJORD, Grathwohl et al. 2019);
- ``cnf.py``: :class:`ContinuousFlow`, a
  :class:`~flowcourse.core.Transform` that integrates position and log-determinant;
- ``flow_matching.py``: the straight-path target and loss of flow
  matching (Lipman et al. 2023) and rectified flow (Liu et al. 2023), and
  :func:`fit_flow_matching`.

``flowcourse.models.cnf`` builds the whole flow with a standard normal base. Taught in
the chapter *Continuous-time flows and flow matching*.
"""

from flowcourse.continuous.cnf import ContinuousFlow
from flowcourse.continuous.flow_matching import (
    FlowMatchingHistory,
    fit_flow_matching,
    flow_matching_loss,
    straight_path,
)
from flowcourse.continuous.ode import (
    SOLVERS,
    Dynamics,
    Solver,
    State,
    euler_step,
    get_solver,
    midpoint_step,
    odeint,
    rk4_step,
)
from flowcourse.continuous.trace import (
    Probe,
    exact_divergence,
    gaussian,
    hutchinson_divergence,
    rademacher,
)
from flowcourse.continuous.velocity import VelocityMLP

__all__ = [
    "VelocityMLP",
    "State",
    "Dynamics",
    "Solver",
    "SOLVERS",
    "euler_step",
    "midpoint_step",
    "rk4_step",
    "get_solver",
    "odeint",
    "Probe",
    "rademacher",
    "gaussian",
    "exact_divergence",
    "hutchinson_divergence",
    "ContinuousFlow",
    "straight_path",
    "flow_matching_loss",
    "FlowMatchingHistory",
    "fit_flow_matching",
]
