"""``flowcourse grade``: grade a folder of notebooks, or write a Gradescope autograder.

Usage::

    flowcourse grade CHAPTER SUBMISSIONS_DIR --out grades.csv [--jobs N]
    flowcourse grade --gradescope CHAPTER --out autograder.zip
    python -m flowcourse.grade ...   (the same)

``SUBMISSIONS_DIR`` holds one ``.ipynb`` per student, named by the student's id.
Next to ``grades.csv`` the grader writes ``grades_feedback/<student>.txt`` (what each
check said); ``--gradescope-results PATH`` also writes Gradescope's ``results.json``
(for a folder with one notebook, as on Gradescope).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from flowcourse.exercises.registry import CHAPTERS, questions_for_chapter
from flowcourse.grading.grader import (
    chapter_name,
    grade_folder,
    write_feedback,
    write_grades_csv,
    write_gradescope_results,
)
from flowcourse.grading.sandbox import Limits

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The command line of ``flowcourse grade``."""
    p = argparse.ArgumentParser(
        prog="flowcourse grade",
        description="Grade students' notebooks for one chapter of the flowcourse book.",
    )
    p.add_argument("chapter", help=f"one of: {', '.join(CHAPTERS)}")
    p.add_argument("submissions", nargs="?", type=Path, help="folder of <student>.ipynb")
    p.add_argument("--out", type=Path, required=True, help="grades.csv (or autograder.zip)")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    p.add_argument("--gradescope", action="store_true", help="write a Gradescope autograder zip")
    p.add_argument("--gradescope-results", type=Path, help="also write Gradescope results.json")
    p.add_argument("--feedback", type=Path, help="feedback folder (default: next to --out)")
    p.add_argument("--seed", type=int, help="fix the grader's inputs (default: fresh ones)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per answer")
    p.add_argument("--memory-limit", type=int, default=3072, help="MB per answer")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``flowcourse grade``; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        chapter = chapter_name(args.chapter)
    except ValueError as error:
        parser().error(str(error))
    if args.jobs < 1:
        parser().error(f"expected --jobs >= 1, got {args.jobs}")
    if args.gradescope:
        from flowcourse.grading.gradescope import write_autograder

        write_autograder(chapter, args.out)
        print(f"wrote {args.out}: upload it as the Gradescope autograder of {chapter}")
        return 0
    if args.submissions is None or not args.submissions.is_dir():
        parser().error(f"expected a folder of .ipynb submissions, got {args.submissions}")
    start = time.perf_counter()
    limits = Limits(time_s=args.time_limit, memory_mb=args.memory_limit)
    grades = grade_folder(
        chapter,
        args.submissions,
        jobs=args.jobs,
        seed=args.seed,
        limits=limits,
        progress=not args.quiet,
    )
    if not grades:
        print(f"no .ipynb files in {args.submissions}", file=sys.stderr)
        return 1
    questions = questions_for_chapter(chapter)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_grades_csv(grades, questions, args.out)
    feedback = args.feedback or args.out.with_name(f"{args.out.stem}_feedback")
    write_feedback(grades, feedback)
    if args.gradescope_results is not None:
        write_gradescope_results(grades[0], args.gradescope_results)
    seconds = time.perf_counter() - start
    print(
        f"graded {len(grades)} submission(s) of {chapter} in {seconds:.1f} s "
        f"(--jobs {args.jobs}); grades in {args.out}, feedback in {feedback}/"
    )
    return 0
