"""Data for the book: toy densities, the digits, and the energies of variational inference.

Everything here ships with the package or with scikit-learn: nothing is downloaded.
"""

from flowcourse.data.digits import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    NUM_LEVELS,
    load_digits_labels,
    load_digits_tensors,
)
from flowcourse.data.energies import ENERGIES, ENERGY_BOUNDS, U1, U2, U3, U4, log_normalizer
from flowcourse.data.toy2d import (
    DENSITIES,
    Checkerboard,
    EightGaussians,
    EntropyEstimate,
    GaussianMixture,
    Rings,
    RotatedMixture,
    Spiral,
    ToyDensity,
    TwoMoons,
    get_density,
)

__all__ = [
    "ToyDensity",
    "EntropyEstimate",
    "GaussianMixture",
    "EightGaussians",
    "TwoMoons",
    "Rings",
    "Spiral",
    "Checkerboard",
    "RotatedMixture",
    "DENSITIES",
    "get_density",
    "NUM_LEVELS",
    "IMAGE_SHAPE",
    "NUM_CLASSES",
    "load_digits_tensors",
    "load_digits_labels",
    "U1",
    "U2",
    "U3",
    "U4",
    "ENERGIES",
    "ENERGY_BOUNDS",
    "log_normalizer",
]
