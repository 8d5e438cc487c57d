"""flowcourse: the normalizing flows of the flowcourse book, small and verified.

**Direction convention.** Every transform's ``forward(x)`` maps data to noise and
returns ``(z, log_abs_det)``, where ``log_abs_det = log|det ∂z/∂x|`` has shape
``(batch,)``; ``inverse(z)`` maps noise to data and returns ``(x, log|det ∂x/∂z|)``.
Composing transforms sums their log-determinants, and a :class:`Flow` scores data by
``log p(x) = log p_Z(forward(x)) + log_abs_det``. A conditional flow, ``p(x | c)``,
hands a ``context`` (one row per sample) to every layer: ``forward(x, context)``.

The sub-packages mirror the book's parts:

- :mod:`flowcourse.core`, :mod:`flowcourse.checks`: *Change of variables*;
- :mod:`flowcourse.coupling`, :mod:`flowcourse.permutations`: *NICE* and *RealNVP*;
- :mod:`flowcourse.glow`: *Glow*;
- :mod:`flowcourse.autoregressive`: *MADE*, *MAF*, *IAF*;
- :mod:`flowcourse.vi`: planar and radial flows (*Variational inference*);
- :mod:`flowcourse.splines`: rational-quadratic spline layers (*Neural spline flows*);
- :mod:`flowcourse.continuous`: continuous-time flows and flow matching (*Continuous-time
  flows and flow matching*);
- :mod:`flowcourse.exercises`: the graded questions and ``check``;
  :mod:`flowcourse.grading`: ``flowcourse grade`` for instructors;
  :mod:`flowcourse.notebook`: ``glue`` for notebooks that run outside the book build;
- :mod:`flowcourse.models`: ready-made flows; :mod:`flowcourse.data`,
  :mod:`flowcourse.preprocessing`, :mod:`flowcourse.dequantisation`,
  :mod:`flowcourse.training`, :mod:`flowcourse.io`; :mod:`flowcourse.validation` (where
  inputs are checked) and :mod:`flowcourse.seeding`;
  :mod:`flowcourse.viz` (figures; imported on demand, it needs matplotlib).
"""

from flowcourse import (
    autoregressive,
    checks,
    continuous,
    coupling,
    data,
    dequantisation,
    glow,
    io,
    models,
    permutations,
    preprocessing,
    seeding,
    splines,
    training,
    vi,
)
from flowcourse.core import Compose, Flow, Inverse, StandardNormal, Transform
from flowcourse.validation import set_validation

__all__ = [
    "Compose",
    "Flow",
    "Inverse",
    "StandardNormal",
    "Transform",
    "set_validation",
    "autoregressive",
    "checks",
    "continuous",
    "coupling",
    "data",
    "dequantisation",
    "glow",
    "io",
    "models",
    "permutations",
    "preprocessing",
    "seeding",
    "splines",
    "training",
    "vi",
]
__version__ = "0.2.0"
