"""Helpers for the book's notebooks that work the same on the website, in Colab and in Jupyter.

:func:`glue` stores a value under a name, as ``myst_nb.glue`` does, so that the book's
text can quote it. Inside the book build (where ``myst_nb`` is installed) it hands the
value to ``myst_nb``; elsewhere (Colab, a plain Jupyter) it only records it, and the
notebook needs neither ``myst_nb`` nor Sphinx. :func:`glued` returns a recorded value:
the student notebooks write such values in the text as their names, like
``nice_chapter_seconds``.

Example:
    >>> glue("answer_nats", 1.5, display=False)
    >>> glued("answer_nats")
    1.5
"""

from __future__ import annotations

from typing import Any

__all__ = ["glue", "glued"]

_GLUED: dict[str, Any] = {}


def glue(name: str, value: Any, display: bool = True) -> None:
    """Record ``value`` under ``name``; in the book build, also glue it with ``myst_nb``.

    With ``display=True`` outside the book build, the value is shown under the cell
    (when IPython is running), as on the website.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"expected a non-empty str name, got {name!r}")
    _GLUED[name] = value
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            _show(value)
        return
    myst_glue(name, value, display=display)


def _show(value: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:
        print(value)
        return
    display(value)


def glued(name: str) -> Any:
    """The value recorded under ``name`` by :func:`glue` in this session."""
    if name not in _GLUED:
        known = ", ".join(sorted(_GLUED)) or "none yet: run the cells above first"
        raise KeyError(f"nothing was glued under {name!r}; glued names: {known}")
    return _GLUED[name]
