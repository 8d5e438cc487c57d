"""Instructor grading: ``flowcourse grade CHAPTER SUBMISSIONS_DIR --out grades.csv``.

- :mod:`~flowcourse.grading.submission` reads a notebook without running it and finds
  the code of each answer;
- :mod:`~flowcourse.grading.sandbox` runs that code in a separate, limited process
  (:mod:`~flowcourse.grading.runner` is its inside) and reads back only data;
- :mod:`~flowcourse.grading.grader` judges the data against the package's reference
  and writes ``grades.csv``, feedback files and Gradescope's ``results.json``;
- :mod:`~flowcourse.grading.gradescope` writes a Gradescope autograder;
- :mod:`~flowcourse.grading.cli` is the command line.
"""

from flowcourse.grading.grader import SubmissionGrade, grade_folder, grade_submission
from flowcourse.grading.sandbox import Limits

__all__ = ["Limits", "SubmissionGrade", "grade_folder", "grade_submission"]
