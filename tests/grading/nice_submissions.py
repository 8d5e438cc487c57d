"""Sample submissions for the NICE chapter: correct, partly correct, and hostile.

Each entry is the list of code cells of one student's notebook and the points the
grader must give each question. Answers are written here as a student would write them
in the notebook; the hostile ones try what a student might do to a grader.
"""

IMPORTS = """import math
import torch
from torch import nn
from flowcourse.core import Compose, Transform
from flowcourse.coupling import AdditiveCoupling, DiagonalScaling
from flowcourse.exercises import check"""

INSTALL = """try:
    import flowcourse
except ImportError:
    %pip install -q flowcourse
    import flowcourse"""

COUPLING = """class MyAdditiveCoupling(Transform):
    def __init__(self, mask, conditioner):
        super().__init__()
        self.register_buffer("mask", mask.clone())
        self.conditioner = conditioner

    def _shift(self, x):
        keep = self.mask.to(x.dtype)
        return (1 - keep) * self.conditioner(keep * x)

    def forward(self, x):
        return x + self._shift(x), x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z - self._shift(z), z.new_zeros(z.shape[0])"""

GAP = """def nll_gap_lower_bound(num_dims, sigma):
    return -num_dims / 2 - num_dims * math.log(sigma)"""

SCALING = """class RescaledConditioner(nn.Module):
    def __init__(self, conditioner, log_scale):
        super().__init__()
        self.conditioner = conditioner
        self.register_buffer("log_scale", log_scale.detach().clone())

    def forward(self, u):
        return (-self.log_scale).exp() * self.conditioner(self.log_scale.exp() * u)


def move_scaling_to_end(scaling, coupling):
    conditioner = RescaledConditioner(coupling.conditioner, scaling.log_scale)
    return AdditiveCoupling(coupling.mask, conditioner)"""

STUB = """class MyAdditiveCoupling(Transform):
    def __init__(self, mask, conditioner):
        super().__init__()

    def forward(self, x):
        raise NotImplementedError("nice.additive_coupling: write forward")

    def inverse(self, z):
        raise NotImplementedError("nice.additive_coupling: write inverse")"""

FULL = {"nice.additive_coupling": 3, "nice.nll_gap_bound": 2, "nice.scaling_to_end": 2}


def _with(**points):
    return {**FULL, **{f"nice.{name}": value for name, value in points.items()}}


SUBMISSIONS = {
    "correct": ([INSTALL, IMPORTS, COUPLING, GAP, SCALING], FULL),
    # Cells moved and duplicated: the stub sits below the answer, the gap function is
    # defined twice (the last one counts), the helper class comes after its user.
    "moved_cells": (
        [
            IMPORTS,
            COUPLING,
            STUB,
            "def nll_gap_lower_bound(num_dims, sigma):\n    return 0.0",
            GAP,
            SCALING.split("\n\n\n")[1],
            SCALING.split("\n\n\n")[0],
        ],
        FULL,
    ),
    "partly_correct": (
        [IMPORTS, COUPLING.replace("z - self._shift(z)", "z + self._shift(z)"), GAP],
        _with(additive_coupling=1.5, scaling_to_end=0),
    ),
    "unanswered": (
        [INSTALL, IMPORTS, STUB, 'check("nice.additive_coupling", None)'],
        _with(additive_coupling=0, nll_gap_bound=0, scaling_to_end=0),
    ),
    "syntax_error": (
        [IMPORTS, COUPLING, "def nll_gap_lower_bound(num_dims, sigma)\n    return 1", SCALING],
        _with(nll_gap_bound=0),
    ),
    "loops_forever": (
        [
            IMPORTS,
            COUPLING.replace(
                "    def forward(self, x):\n",
                "    def forward(self, x):\n        while True:\n            pass\n",
            ),
            GAP,
            SCALING,
            "while True:\n    pass",
        ],
        # forward never returns; inverse is right and earns its 1.5 points
        _with(additive_coupling=1.5),
    ),
    "exits_interpreter": (
        [
            IMPORTS,
            "import os\nimport sys",
            COUPLING.replace("return x + self._shift", "os._exit(0)\n        return x"),
            GAP.replace("    return", "    sys.exit(0)\n    return"),
            SCALING,
            "sys.exit(1)",
        ],
        _with(additive_coupling=0, nll_gap_bound=0),
    ),
    "allocates_all_memory": (
        [
            IMPORTS,
            COUPLING,
            GAP.replace("    return", "    hoard = bytearray(10**12)\n    return"),
            SCALING.replace("    conditioner =", "    hoard = [0] * 10**11\n    conditioner ="),
        ],
        _with(nll_gap_bound=0, scaling_to_end=0),
    ),
    "floods_output": (
        [
            IMPORTS,
            COUPLING.replace(
                "    def _shift(self, x):\n",
                "    def _shift(self, x):\n        print('x' * 100_000)\n",
            ),
            GAP.replace(
                "    return", "    for _ in range(2000):\n        print('y' * 10_000)\n    return"
            ),
            SCALING,
            "for _ in range(10**6):\n    print('flood')",
        ],
        FULL,
    ),
    # Claims full marks: its own `check`, printed text, a patched flowcourse.
    "fakes_its_grade": (
        [
            IMPORTS,
            STUB,
            "def check(question_id, answer):\n    print('3/3 points')\n    return 3",
            "import flowcourse.exercises.question as question\n"
            "class Patch:\n"
            "    question.compare = lambda *args, **kwargs: None\n"
            "    flowcourse.exercises.check = lambda *args: 3\n",
            "def nll_gap_lower_bound(num_dims, sigma):\n"
            "    import flowcourse.exercises.nice as nice\n"
            "    nice.NLL_GAP_BOUND.__dict__['points'] = 0\n"
            "    return 1.77",
            'check("nice.additive_coupling", MyAdditiveCoupling)',
        ],
        _with(additive_coupling=0, nll_gap_bound=0, scaling_to_end=0),
    ),
    # Uses the package's own layer, which is blocked while the question is graded.
    "wraps_the_package": (
        [
            IMPORTS,
            "class MyAdditiveCoupling(AdditiveCoupling):\n    pass",
            GAP,
            SCALING,
        ],
        _with(additive_coupling=0),
    ),
    # Writes files and forges the response the sandbox reads back.
    "writes_files": (
        [
            IMPORTS,
            "import os\nimport torch",
            COUPLING.replace(
                "    def forward(self, x):\n",
                "    def forward(self, x):\n"
                "        fake = {'forward_value': x, 'forward_log_det': x.new_zeros(len(x))}\n"
                "        torch.save(fake, 'response.pt')\n"
                "        open(os.path.expanduser('~/grades.csv'), 'w').write('me,3,2,2,7,7')\n"
                "        os._exit(0)\n",
            ),
            GAP,
        ],
        _with(additive_coupling=0, scaling_to_end=0),
    ),
}
