"""Flows for variational inference: planar and radial layers (Rezende & Mohamed, 2015).

Both are cheap in the sampling direction (``inverse``, noise to data) and need an
equation solve in the density direction (``forward``). Taught in the chapter
*Variational inference*.
"""

from flowcourse.vi.planar import Planar
from flowcourse.vi.radial import Radial

__all__ = ["Planar", "Radial"]
