"""Turn the MyST Markdown of the book's chapters into Markdown that Jupyter and Colab render.

The chapters are written for the website (Jupyter Book 1, myst-parser and myst-nb), whose
directives and roles a notebook viewer shows as raw text. :func:`convert` rewrites one
Markdown cell:

- directives: ``{exercise}`` becomes a headed block, ``{prf:theorem}`` and its kin a bold
  lead-in (``**Theorem (Title).**``), ``{prf:proof}`` an italic one ending in ``∎``,
  admonitions a block quote with a bold label, ``{bibliography}`` a link to the
  references page, ``{solution}`` a "**Solution.**" block or nothing; option lines
  (``:label:``, ``:class:``) are dropped; nested directives (backtick or colon fences,
  the outer fence longer than the inner) are converted from the inside out;
- roles: citations become author-year text linked to the references page, ``{ref}``,
  ``{prf:ref}``, ``{numref}`` and ``{doc}`` links to the page (and anchor) on the website,
  ``{glue:text}`` the glued name as inline code (its value exists only once the
  notebook has run);
- target lines ``(label)=`` and comment lines ``% ...`` are dropped.

Math, plain code fences and inline code are left alone. Any other role or directive
raises :class:`MystConversionError`, naming the file and line: nothing passes through.

Anchors follow Sphinx's rules, since ``_build/html`` may not exist when this runs: a
``(label)=`` target gets the id ``docutils.nodes.make_id(label)`` (lowercase, runs of
other characters than letters and digits turned into ``-``), and sphinx-proof and
sphinx-exercise use a directive's ``:label:`` as its id unchanged.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from docutils.nodes import make_id

__all__ = [
    "Block",
    "Context",
    "DirectiveBlock",
    "FenceBlock",
    "MystConversionError",
    "Reference",
    "Site",
    "Target",
    "TextBlock",
    "build_site",
    "convert",
    "convert_roles",
    "document_title",
    "load_bibliography",
    "page_targets",
    "parse_blocks",
    "render_block",
    "split_front_matter",
]

# Directives that become "**Kind (Title).** body".
PROOF_KINDS = {
    "prf:theorem": "Theorem",
    "prf:proposition": "Proposition",
    "prf:lemma": "Lemma",
    "prf:definition": "Definition",
    "prf:corollary": "Corollary",
    "prf:remark": "Remark",
    "prf:example": "Example",
}
# Directives that become a block quote with a bold label; ``admonition`` takes its title.
ADMONITIONS = {
    "admonition": "",
    "attention": "Attention",
    "caution": "Caution",
    "danger": "Danger",
    "error": "Error",
    "hint": "Hint",
    "important": "Important",
    "note": "Note",
    "seealso": "See also",
    "tip": "Tip",
    "warning": "Warning",
}
SOLUTION_DIRECTIVES = {"solution", "solution-start", "solution-end"}
PAGE_PATH = "book/"  # every page lives in book/ on the website: <base>book/<name>.html
REFERENCES_PAGE = "references"

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[^{}\s]+)\}(?:[ \t]+(?P<argument>.*?))?\s*$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):(?:\s+(?P<value>.*?))?\s*$")
TARGET_LINE = re.compile(r"^\s*\((?P<label>[^()\s]+)\)=\s*$")
COMMENT_LINE = re.compile(r"^%")
HEADING = re.compile(r"^\s{0,3}(?P<hashes>#{1,6})\s+(?P<title>.*?)\s*#*\s*$")
# A role, ``{name}`` then a backtick run, or a code span's opening backtick run.
ROLE_OR_CODE = re.compile(r"\{(?P<name>[A-Za-z][\w:+.-]*)\}(?P<ticks>`+)|(?P<code>`+)")
EXPLICIT_TARGET = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
# A first line that starts a Markdown block rather than a paragraph of text.
BLOCK_START = re.compile(r"^\s*(?:[-*+]\s|\d+[.)]\s|#|>|\$\$|`{3}|~{3}|\||<|\\begin\{)")


class MystConversionError(ValueError):
    """A MyST construct that the conversion does not know, or that is malformed."""


@dataclass(frozen=True)
class Target:
    """Something a role can link to: a labelled section or a labelled directive."""

    label: str
    docname: str  # the page's name in book/, without suffix: "nice"
    anchor: str
    title: str
    kind: str  # "Section" for a (label)= target, else "Theorem", "Exercise", ...

    @property
    def link_text(self) -> str:
        """The text of a link without explicit text: a section's title, or "Kind: title"."""
        if self.kind == "Section":
            return self.title
        return f"{self.kind}: {self.title}" if self.title else self.kind


@dataclass(frozen=True)
class Reference:
    """A bibliography entry, as an author-year citation needs it."""

    last_names: tuple[str, ...]
    year: str
    more_authors: bool = False  # the entry's author list ends with "and others"

    @property
    def authors(self) -> str:
        """ "Dinh", "Dinh and Krueger" or "Dinh et al."."""
        if len(self.last_names) >= 3 or self.more_authors:
            return f"{self.last_names[0]} et al."
        return " and ".join(self.last_names)


@dataclass(frozen=True)
class Site:
    """What every chapter's conversion shares: the website and what can be linked."""

    base_url: str  # ends with "/"
    targets: dict[str, Target]
    titles: dict[str, str]  # page name -> its first "# " heading
    bibliography: dict[str, Reference]

    def page_url(self, docname: str, anchor: str = "") -> str:
        """The address of a page (and anchor) on the published website."""
        url = f"{self.base_url}{PAGE_PATH}{docname}.html"
        return f"{url}#{anchor}" if anchor else url


@dataclass
class Context:
    """One Markdown conversion: the page it is for and what it collects on the way."""

    site: Site
    docname: str
    path: Path
    keep_solutions: bool = False
    grading_line: Callable[[str], str | None] = lambda label: None
    glue_names: list[str] = field(default_factory=list)  # glued here, in order of use
    glue_elsewhere: bool = False  # whether a glued name of another page was linked

    def error(self, line: int, message: str) -> MystConversionError:
        """An exception naming the file and line."""
        return MystConversionError(f"{self.path}:{line}: {message}")


# --- Blocks -------------------------------------------------------------------------------


@dataclass
class TextBlock:
    """Lines of Markdown outside any fence."""

    lines: list[str]
    line: int  # the file's line number of the first line


@dataclass
class FenceBlock:
    """A plain code fence, kept verbatim with its fence lines."""

    lines: list[str]
    line: int


@dataclass
class DirectiveBlock:
    """A fenced directive: ``{name} argument``, options, and a body (dedented)."""

    name: str
    argument: str
    options: dict[str, object]
    body: list[str]
    line: int  # line number of the opening fence
    body_line: int  # line number of the body's first line
    indent: str
    start: int  # index of the opening fence in the parsed lines
    option_stop: int  # index of the first line after the options
    stop: int  # index of the closing fence (len(lines) when unclosed)


Block = TextBlock | FenceBlock | DirectiveBlock


def _closing_fence(lines: list[str], start: int, char: str, length: int) -> int:
    """Index of the first line after ``start`` closing a fence of ``length`` ``char``s."""
    closing = re.compile(rf"^ *{re.escape(char)}{{{length},}}\s*$")
    for index in range(start + 1, len(lines)):
        if closing.match(lines[index]):
            return index
    return len(lines)


def _dedent(lines: list[str], indent: str) -> list[str]:
    """Remove up to ``len(indent)`` leading spaces from each line."""
    width = len(indent)
    return [line[min(width, len(line) - len(line.lstrip(" "))) :] for line in lines]


def _split_options(body: list[str], line: int) -> tuple[dict[str, object], int]:
    """A directive's options (``:key: value`` lines or a ``---`` YAML block) and the
    number of body lines they take."""
    if body and body[0].strip() == "---":
        for index in range(1, len(body)):
            if body[index].strip() == "---":
                options = yaml.safe_load("\n".join(body[1:index])) or {}
                if not isinstance(options, dict):
                    raise MystConversionError(f"line {line}: directive options are not a mapping")
                return options, index + 1
        raise MystConversionError(f"line {line}: unclosed --- block of directive options")
    options: dict[str, object] = {}
    count = 0
    while count < len(body) and (match := OPTION.match(body[count])):
        options[match["key"]] = match["value"] or ""
        count += 1
    return options, count


def parse_blocks(lines: list[str], first_line: int = 1) -> list[Block]:
    """Split Markdown ``lines`` into text, plain code fences and directives (not
    descending into directive bodies). ``first_line`` is the line number of
    ``lines[0]`` in its file, for error messages."""
    blocks: list[Block] = []
    text: list[str] = []
    text_start = 0
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        fence = match and match["fence"]
        info = match["info"].strip() if match else ""
        directive = DIRECTIVE_INFO.match(info) if match else None
        is_code_fence = bool(fence) and fence[0] != ":" and "`" not in info
        if not directive and not is_code_fence:
            if not text:
                text_start = index
            text.append(lines[index])
            index += 1
            continue
        if text:
            blocks.append(TextBlock(text, first_line + text_start))
            text = []
        stop = _closing_fence(lines, index, fence[0], len(fence))
        if directive:
            if stop == len(lines):
                raise MystConversionError(
                    f"line {first_line + index}: the directive {{{directive['name']}}} "
                    "has no closing fence"
                )
            body = _dedent(lines[index + 1 : stop], match["indent"])
            options, count = _split_options(body, first_line + index + 1)
            blocks.append(
                DirectiveBlock(
                    name=directive["name"],
                    argument=(directive["argument"] or "").strip(),
                    options=options,
                    body=body[count:],
                    line=first_line + index,
                    body_line=first_line + index + 1 + count,
                    indent=match["indent"],
                    start=index,
                    option_stop=index + 1 + count,
                    stop=stop,
                )
            )
        else:
            blocks.append(FenceBlock(lines[index : stop + 1], first_line + index))
        index = stop + 1
    if text:
        blocks.append(TextBlock(text, first_line + text_start))
    return blocks


# --- Rendering ----------------------------------------------------------------------------


def _strip_blank_lines(text: str) -> str:
    """``text`` without its leading and trailing blank lines (indentation kept)."""
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def join_parts(parts: list[str]) -> str:
    """Markdown parts, separated by one blank line, empty parts left out."""
    return "\n\n".join(part for part in map(_strip_blank_lines, parts) if part)


def convert(text: str, context: Context, first_line: int = 1) -> str:
    """The Markdown a notebook renders for the MyST Markdown ``text``, whose first line
    is line ``first_line`` of ``context.path``."""
    try:
        blocks = parse_blocks(text.split("\n"), first_line)
    except MystConversionError as error:
        raise MystConversionError(f"{context.path}: {error}") from None
    return join_parts([render_block(block, context) for block in blocks])


def render_block(block: Block, context: Context) -> str:
    """The Markdown of one block."""
    if isinstance(block, FenceBlock):
        return "\n".join(block.lines)
    if isinstance(block, TextBlock):
        return _render_text(block, context)
    rendered = _render_directive(block, context)
    if not block.indent:
        return rendered
    return "\n".join(block.indent + line if line else line for line in rendered.split("\n"))


def _render_text(block: TextBlock, context: Context) -> str:
    # Target and comment lines become blank lines (MyST ends a paragraph at either), so
    # the line numbers of what remains are unchanged.
    lines = [
        "" if TARGET_LINE.match(line) or COMMENT_LINE.match(line) else line for line in block.lines
    ]
    text = convert_roles("\n".join(lines), context, block.line)
    return re.sub(r"\n(?:[ \t]*\n)+", "\n\n", text)


def _lead_in(label: str, body: str) -> str:
    """``label`` before ``body``: on its first line when that line starts a paragraph."""
    if not body:
        return label
    if BLOCK_START.match(body.split("\n", 1)[0]):
        return f"{label}\n\n{body}"
    return f"{label} {body}"


def _end_with_qed(body: str) -> str:
    """``body`` ending with the end-of-proof sign ∎."""
    if not body:
        return "∎"
    last = body.rsplit("\n", 1)[-1].strip()
    if last.endswith("$$") or last.startswith(("```", "~~~", "|", "\\end", "<")):
        return f"{body}\n\n∎"
    return f"{body} ∎"


def _titled(label: str, title: str) -> str:
    """``label`` followed by ``(title)`` when there is one, then a full stop."""
    return f"{label} ({title})." if title else f"{label}."


def _render_directive(block: DirectiveBlock, context: Context) -> str:
    name = block.name
    if name == "code-cell":
        raise context.error(block.line, "a {code-cell} inside a Markdown cell")
    if name in ("solution-start", "solution-end"):
        raise context.error(
            block.line, f"{{{name}}} must stand at the top level of a Markdown cell"
        )
    if name not in PROOF_KINDS | ADMONITIONS and name not in {
        "exercise",
        "prf:proof",
        "bibliography",
        "solution",
    }:
        raise context.error(block.line, f"unknown directive {{{name}}}")
    if name == "bibliography":
        url = context.site.page_url(REFERENCES_PAGE)
        return f"The references are listed on the [references page]({url}) of the website."
    if name == "solution" and not context.keep_solutions:
        return ""
    body = convert("\n".join(block.body), context, block.body_line)
    title = convert_roles(block.argument, context, block.line)
    if name == "exercise":
        return _render_exercise(block, title, body, context)
    if name == "solution":
        return _lead_in("**Solution.**", body)
    if name in PROOF_KINDS:
        return _lead_in(f"**{_titled(PROOF_KINDS[name], title)}**", body)
    if name == "prf:proof":
        return _lead_in("*Proof.*", _end_with_qed(body))
    label = ADMONITIONS[name] or title
    if not label:
        raise context.error(block.line, "an {admonition} needs a title")
    quoted = _lead_in(f"**{label}{'' if label[-1] in '.?!:' else '.'}**", body)
    return "\n".join(f"> {line}" if line.strip() else ">" for line in quoted.split("\n"))


def _render_exercise(block: DirectiveBlock, title: str, body: str, context: Context) -> str:
    """A horizontal rule, a heading, how the exercise is graded, and its text."""
    heading = f"#### Exercise: {title}" if title else "#### Exercise"
    label = str(block.options.get("label", ""))
    grading = context.grading_line(label) if label else None
    return join_parts(["---", heading, grading or "", body])


# --- Roles --------------------------------------------------------------------------------


def _closing_ticks(text: str, start: int, ticks: str) -> int:
    """Index of the backtick run of exactly ``ticks`` from ``start``, or -1."""
    match = re.compile(rf"(?<!`){ticks}(?!`)").search(text, start)
    return match.start() if match else -1


def convert_roles(text: str, context: Context, first_line: int = 1) -> str:
    """``text`` with every role replaced by Markdown; code spans are left alone."""
    out: list[str] = []
    position = 0  # everything before it is in ``out``
    search_from = 0
    while match := ROLE_OR_CODE.search(text, search_from):
        ticks = match["ticks"] or match["code"]
        escaped = match["code"] and match.start() > 0 and text[match.start() - 1] == "\\"
        closing = -1 if escaped else _closing_ticks(text, match.end(), ticks)
        line = first_line + text.count("\n", 0, match.start())
        if closing == -1:
            if match["name"]:
                raise context.error(line, f"the role {{{match['name']}}} is not closed")
            search_from = match.end()  # a lone or escaped backtick run is literal text
            continue
        end = closing + len(ticks)
        if match["name"]:
            content = text[match.end() : closing]
            out += [
                text[position : match.start()],
                render_role(match["name"], content, context, line),
            ]
            position = end
        search_from = end  # a code span is copied as it is, roles in it included
    out.append(text[position:])
    return "".join(out)


def _explicit(content: str) -> tuple[str, str]:
    """``("text", "target")`` for ``text <target>``, ``("", content)`` otherwise."""
    match = EXPLICIT_TARGET.match(content.strip())
    if match and match["text"]:
        return match["text"].strip(), match["target"].strip()
    return "", content.strip()


def render_role(name: str, content: str, context: Context, line: int) -> str:
    """The Markdown for the role ``{name}`content```."""
    if name in ("cite", "cite:p", "cite:t"):
        return _render_citation(content, textual=name == "cite:t", context=context, line=line)
    if name in ("ref", "prf:ref", "numref"):
        return _render_reference(name, content, context, line)
    if name == "doc":
        return _render_doc(content, context, line)
    if name in ("glue", "glue:text", "glue:any"):
        return _render_glue(content, context, line)
    if name == "math":
        return f"${content}$"
    if name in PYTHON_ROLES:
        return _render_python(content, context, line)
    raise context.error(line, f"unknown role {{{name}}}")


#: Sphinx's Python roles, which link to the book's API reference (book/api/<module>).
PYTHON_ROLES = ("py:class", "py:func", "py:meth", "py:mod", "py:attr", "py:data", "py:obj")


def _render_python(content: str, context: Context, line: int) -> str:
    """``{py:class}`~flowcourse.core.Flow``` -> a link to its entry in the reference."""
    text, target = _explicit(content)
    short = target.startswith("~")
    target = target.lstrip("~")
    parts = target.split(".")
    if len(parts) < 2 or parts[0] != "flowcourse":
        raise context.error(line, f"a Python role must name a flowcourse object, got {target!r}")
    docname = f"api/{parts[1]}"
    if docname not in context.site.titles:
        raise context.error(line, f"no reference page book/{docname}.md for {target!r}")
    label = text or (parts[-1] if short else target)
    return f"[`{label}`]({context.site.page_url(docname, target)})"


def _render_citation(content: str, *, textual: bool, context: Context, line: int) -> str:
    url = context.site.page_url(REFERENCES_PAGE)
    links = []
    for key in (key.strip() for key in content.split(",")):
        reference = context.site.bibliography.get(key)
        if reference is None:
            raise context.error(line, f"unknown citation key {key!r} (see references.bib)")
        if textual:
            links.append(f"[{reference.authors} ({reference.year})]({url})")
        else:
            links.append(f"[{reference.authors}, {reference.year}]({url})")
    return "; ".join(links) if textual else f"({'; '.join(links)})"


def _render_reference(name: str, content: str, context: Context, line: int) -> str:
    text, label = _explicit(content)
    target = context.site.targets.get(label)
    if target is None:
        raise context.error(line, f"{{{name}}} to an unknown label {label!r}")
    if name == "numref" and text:
        text = re.sub(r"%s|\{number\}|\{name\}", target.title, text)
    url = context.site.page_url(target.docname, target.anchor)
    return f"[{text or target.link_text}]({url})"


def _render_doc(content: str, context: Context, line: int) -> str:
    text, document = _explicit(content)
    docname = posixpath.normpath(document.removeprefix("/book/").removesuffix(".md"))
    title = context.site.titles.get(docname)
    if title is None:
        raise context.error(line, f"{{doc}} to an unknown page {document!r}")
    return f"[{text or title}]({context.site.page_url(docname)})"


def _render_glue(content: str, context: Context, line: int) -> str:
    """A glued value's name as inline code; linked to its page when glued elsewhere."""
    page, _, rest = content.strip().rpartition("::")
    glued_name = rest.split(":", 1)[0].strip()
    if not re.fullmatch(r"[\w.-]+", glued_name):
        raise context.error(line, f"a glued value needs a name, got {content!r}")
    docname = posixpath.splitext(posixpath.basename(page))[0] if page else context.docname
    if docname == context.docname:
        if glued_name not in context.glue_names:
            context.glue_names.append(glued_name)
        return f"`{glued_name}`"
    if docname not in context.site.titles:
        raise context.error(line, f"a glued value from an unknown page {page!r}")
    context.glue_elsewhere = True
    return f"[`{glued_name}`]({context.site.page_url(docname)})"


# --- What can be linked -------------------------------------------------------------------


def split_front_matter(text: str) -> tuple[str, int]:
    """The text after a ``---`` front matter, and the line number its first line has."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 3)
        if end != -1:
            head = text[: end + len("\n---\n")]
            return text[len(head) :], head.count("\n") + 1
    return text, 1


def document_title(text: str) -> str:
    """The first ``# `` heading of a page (outside code fences), or ``""``."""
    body, first_line = split_front_matter(text)
    for block in parse_blocks(body.split("\n"), first_line):
        if isinstance(block, TextBlock):
            for line in block.lines:
                if (match := HEADING.match(line)) and len(match["hashes"]) == 1:
                    return match["title"]
    return ""


def _targets_of_lines(lines: list[str], first_line: int, docname: str) -> list[Target]:
    """The targets of ``lines``: ``(label)=`` lines and labelled directives, nested ones
    included (code cells are not looked into)."""
    targets: list[Target] = []
    for block in parse_blocks(lines, first_line):
        if isinstance(block, TextBlock):
            targets += _section_targets(block.lines, docname)
        elif isinstance(block, DirectiveBlock) and block.name != "code-cell":
            label = str(block.options.get("label", "")).strip()
            if label:
                kind = block.name.removeprefix("prf:").replace("-", " ").capitalize()
                targets.append(Target(label, docname, label, block.argument, kind))
            targets += _targets_of_lines(block.body, block.body_line, docname)
    return targets


def page_targets(text: str, docname: str) -> list[Target]:
    """The link targets of the page ``docname`` whose MyST Markdown is ``text``."""
    body, first_line = split_front_matter(text)
    return _targets_of_lines(body.split("\n"), first_line, docname)


def _section_targets(lines: list[str], docname: str) -> list[Target]:
    """The ``(label)=`` targets of text lines, titled by the heading that follows."""
    targets = []
    for index, line in enumerate(lines):
        if match := TARGET_LINE.match(line):
            label = match["label"]
            following = (HEADING.match(rest) for rest in lines[index + 1 :] if rest.strip())
            heading = next(following, None)
            title = heading["title"] if heading else label
            targets.append(Target(label, docname, make_id(label), title, "Section"))
    return targets


def load_bibliography(path: Path) -> dict[str, Reference]:
    """The entries of a BibTeX file: last names of the authors and the year."""
    if not path.exists():
        return {}
    from pybtex.database import parse_file  # installed with sphinxcontrib-bibtex

    entries = parse_file(str(path), bib_format="bibtex").entries
    references = {}
    for key, entry in entries.items():
        last_names = [
            " ".join(person.last_names).replace("{", "").replace("}", "")
            for person in entry.persons.get("author", [])
        ]
        more_authors = "others" in last_names
        last_names = [name for name in last_names if name != "others"] or ["Anonymous"]
        year = entry.fields.get("year", "n.d.")
        references[key] = Reference(tuple(last_names), year, more_authors)
    return references


def build_site(book_dir: Path, base_url: str) -> Site:
    """Index every page of ``book_dir`` (``*.md``): titles and link targets, and read
    ``references.bib``."""
    targets: dict[str, Target] = {}
    titles: dict[str, str] = {}
    for page in sorted(book_dir.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        titles[page.stem] = document_title(text)
        try:
            found = page_targets(text, page.stem)
        except MystConversionError as error:
            raise MystConversionError(f"{page}: {error}") from None
        for target in found:
            if target.label in targets:
                raise MystConversionError(
                    f"{page}: the label {target.label!r} is also defined in "
                    f"{targets[target.label].docname}.md"
                )
            targets[target.label] = target
    for page in sorted(book_dir.glob("api/*.md")):  # the API reference, for Python roles
        titles[f"api/{page.stem}"] = document_title(page.read_text(encoding="utf-8"))
    base = base_url if base_url.endswith("/") else base_url + "/"
    return Site(base, targets, titles, load_bibliography(book_dir / "references.bib"))
