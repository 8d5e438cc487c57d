"""``python -m flowcourse grade ...`` and the ``flowcourse`` command."""

from __future__ import annotations

import sys

__all__ = ["main"]

_USAGE = "usage: flowcourse grade CHAPTER SUBMISSIONS_DIR --out grades.csv [options]"


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``flowcourse <command>``; the one command is ``grade``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE + "\n       flowcourse grade --help   for the options")
        return 0 if argv else 2
    if argv[0] != "grade":
        print(f"flowcourse: unknown command {argv[0]!r}\n{_USAGE}", file=sys.stderr)
        return 2
    from flowcourse.grading.cli import main as grade

    return grade(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
