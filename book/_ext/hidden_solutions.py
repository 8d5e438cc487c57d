"""Hide every solution when ``hide_solutions: true``, the gated ones included.

sphinx-exercise's ``hide_solutions`` setting drops a ``{solution}`` directive, but for
a gated solution (``{solution-start}`` ... ``{solution-end}``) it drops only the
opening marker: the prose and the code cells between the two markers would still be
published. This extension replaces the opening marker, when solutions are hidden, by
a node that a transform then removes together with everything up to and including
the matching ``{solution-end}``. With ``hide_solutions: false`` it changes nothing.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx_exercise.directive import SolutionStartDirective
from sphinx_exercise.nodes import solution_end_node


class hidden_solution_start(nodes.Element):  # noqa: N801 - docutils node naming
    """Where a hidden gated solution begins."""


class HidingSolutionStart(SolutionStartDirective):
    """``{solution-start}`` that leaves a marker when solutions are hidden."""

    def run(self) -> list[nodes.Node]:
        result = super().run()
        if self.env.app.config.hide_solutions:
            return [hidden_solution_start()]
        return result


class RemoveHiddenSolutions(SphinxTransform):
    """Remove each hidden gated solution, from its marker to its ``{solution-end}``."""

    default_priority = 9  # before sphinx-exercise merges the gated directives (10)

    def apply(self, **kwargs: object) -> None:
        for start in list(self.document.findall(hidden_solution_start)):
            parent = start.parent
            index = parent.index(start)
            end = next(
                (
                    position
                    for position in range(index, len(parent.children))
                    if isinstance(parent.children[position], solution_end_node)
                ),
                index,
            )
            for child in parent.children[index : end + 1]:
                parent.remove(child)


def setup(app: Sphinx) -> dict[str, object]:
    app.setup_extension("sphinx_exercise")
    app.add_directive("solution-start", HidingSolutionStart, override=True)
    app.add_node(hidden_solution_start)
    app.add_transform(RemoveHiddenSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
