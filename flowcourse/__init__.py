"""flowcourse: the normalizing flows of the flowcourse book, small and verified.

**Direction convention.** Every transform's ``forward(x)`` maps data to noise and
returns ``(z, log_abs_det)``, where ``log_abs_det = log|det ∂z/∂x|`` has shape
``(batch,)``; ``inverse(z)`` maps noise to data and returns ``(x, log|det ∂x/∂z|)``.
Composing transforms sums their log-determinants, and a :class:`Flow` scores data by
``log p(x) = log p_Z(forward(x)) + log_abs_det``.
"""

from flowcourse.core import Compose, Flow, Inverse, StandardNormal, Transform
from flowcourse.validation import set_validation

__all__ = ["Compose", "Flow", "Inverse", "StandardNormal", "Transform", "set_validation"]
__version__ = "0.1.0"
