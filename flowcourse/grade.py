"""``python -m flowcourse.grade``: the same as ``flowcourse grade`` (see
:mod:`flowcourse.grading.cli`)."""

import sys

from flowcourse.grading.cli import main

if __name__ == "__main__":
    sys.exit(main())
