r"""Neural spline flows: monotone rational-quadratic splines as coupling and
autoregressive layers (Durkan et al. 2019).

A 1-D flow is a monotone map, and any continuous density on the line is reached by one
(the inverse of its CDF). RealNVP and MAF use the simplest monotone maps, affine ones;
a rational-quadratic spline is a monotone map with :math:`K` bins, flexible enough to
move mass between them, with a closed-form inverse and derivative. Every layer follows
the package convention: ``forward`` maps data to noise and returns
``log|det ∂z/∂x|``. Taught in the chapter *Neural spline flows*.
"""

from flowcourse.splines.autoregressive import MaskedRationalQuadraticAutoregressive
from flowcourse.splines.coupling import RationalQuadraticCoupling
from flowcourse.splines.rational_quadratic import (
    DEFAULT_MIN_BIN_HEIGHT,
    DEFAULT_MIN_BIN_WIDTH,
    DEFAULT_MIN_DERIVATIVE,
    Knots,
    rational_quadratic_bin,
    rational_quadratic_spline,
    spline_knots,
    spline_parameter_count,
    unpack_spline_parameters,
)

__all__ = [
    "DEFAULT_MIN_BIN_HEIGHT",
    "DEFAULT_MIN_BIN_WIDTH",
    "DEFAULT_MIN_DERIVATIVE",
    "Knots",
    "MaskedRationalQuadraticAutoregressive",
    "RationalQuadraticCoupling",
    "rational_quadratic_bin",
    "rational_quadratic_spline",
    "spline_knots",
    "spline_parameter_count",
    "unpack_spline_parameters",
]
