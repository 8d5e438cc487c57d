"""Why flowcourse is not ahead, per (model, operation): written by a person, read by the report.

The numbers, and which cells need a sentence, come from ``benchmarks/results.json``;
only the explanations are typed here, from profiles of the cells made with
``benchmarks/profile_cell.py``. Keys are ``(model, operation)``; the MAF floor target uses
``("MAF", "floor")``. One or two sentences each. When the library changes or a new run
moves the numbers, profile again and update the reason: a stale reason is worse than
the placeholder ``report.sentence`` prints for a missing one.
"""

from __future__ import annotations

__all__ = ["REASONS"]

_COUPLING = (
    "each coupling gathers its kept half by advanced indexing and scatters its outputs back "
    "with new_zeros + index_copy (several times slower than a slice, index_select or "
    "torch.cat), and clamps and exponentiates the whole vector, not only the changed half."
)

REASONS: dict[tuple[str, str], str] = {
    ("MAF", "train_step"): (
        "Same matrices as the peers; flowcourse adds the tanh soft clamp of the log-scale "
        "(forward and backward), and at small D the operator count per call decides."
    ),
    ("MAF", "log_prob"): (
        "The tanh soft clamp of the log-scale costs about as much as one of the MADE's "
        "matrix products at batch 1024, D = 32; at small D the operator count decides."
    ),
    ("MAF", "sample"): (
        "Each of the D passes recomputes the whole MADE, its masked weights, the clamp of all "
        "2D outputs and a torch.where over the batch, to solve one feature."
    ),
    ("MAF", "floor"): (
        "The floor has no masks and no clamp: the gap is mostly the tanh soft clamp, then the "
        "weight-times-mask products and the finiteness check at the door."
    ),
    ("RealNVP", "train_step"): "As for log_prob: " + _COUPLING,
    ("RealNVP", "log_prob"): "Each reversal is an advanced-indexing gather, and " + _COUPLING,
    ("RealNVP", "sample"): "Each reversal is an advanced-indexing gather, and " + _COUPLING,
    ("NICE", "train_step"): "As for RealNVP: " + _COUPLING,
    ("NICE", "log_prob"): "As for RealNVP: " + _COUPLING,
    ("NICE", "sample"): "As for RealNVP: " + _COUPLING,
    ("IAF", "train_step"): (
        "Scoring with an IAF takes D passes, each recomputing the whole MADE, the clamp and a "
        "torch.where over the batch for one new feature, and the backward pass crosses all."
    ),
    ("IAF", "log_prob"): (
        "Each of the D passes recomputes the whole MADE, its masked weights, the clamp and a "
        "torch.where over the batch, to solve one feature."
    ),
}
