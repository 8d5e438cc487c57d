"""Write a Gradescope autograder for one chapter: ``flowcourse grade --gradescope``.

The zip holds what Gradescope runs on its workers, laid out as it expects:

- ``setup.sh``: installs CPU torch and the package's dependencies (once, when the
  autograder image is built);
- ``run_autograder``: grades the notebook in ``/autograder/submission`` with the same
  grader as ``flowcourse grade`` and writes ``/autograder/results/results.json``;
- ``flowcourse/``: a copy of this package, the exact version that wrote the zip.

Gradescope runs the autograder as root in a container; the grader then runs each
answer as the user ``nobody``. ``AUTOGRADER_ROOT`` (default ``/autograder``) and
``AUTOGRADER_PYTHON`` (default ``python3``) let a test run it elsewhere.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import flowcourse

__all__ = ["RUN_AUTOGRADER", "SETUP_SH", "write_autograder"]

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image.
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
python3 -m pip install --quiet --break-system-packages \\
    --index-url https://download.pytorch.org/whl/cpu torch \\
  || python3 -m pip install --quiet --index-url https://download.pytorch.org/whl/cpu torch
python3 -m pip install --quiet --break-system-packages {dependencies} \\
  || python3 -m pip install --quiet {dependencies}
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade it, write results/results.json.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{AUTOGRADER_PYTHON:-python3}}"
mkdir -p "$ROOT/results"
cd "$ROOT/source"
"$PYTHON" -I -c 'import sys; sys.path.insert(0, sys.argv[1]); \\
from flowcourse.grading.cli import main; sys.exit(main(sys.argv[2:]))' \\
    "$ROOT/source" {chapter} "$ROOT/submission" --quiet \\
    --out "$ROOT/results/grades.csv" --gradescope-results "$ROOT/results/results.json"
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then
  echo '{{"score": 0, "output": "No notebook (.ipynb) was found in the submission."}}' \\
    > "$ROOT/results/results.json"
fi
exit 0
"""

_DEPENDENCIES = "'numpy>=1.24' 'matplotlib>=3.7' 'scikit-learn>=1.2' 'tqdm>=4.60'"


def write_autograder(chapter: str, out: Path) -> Path:
    """Write the autograder zip of ``chapter`` to ``out``; return ``out``."""
    package = Path(flowcourse.__file__).resolve().parent
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add_script(archive, "setup.sh", SETUP_SH.format(dependencies=_DEPENDENCIES))
        _add_script(archive, "run_autograder", RUN_AUTOGRADER.format(chapter=chapter))
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, f"flowcourse/{path.relative_to(package).as_posix()}")
    return out


def _add_script(archive: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o755 << 16  # executable, as Gradescope requires
    archive.writestr(info, text)
