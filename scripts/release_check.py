"""Check that the repository is ready to be released as ``v<version>``.

The version is set once, as ``__version__`` in ``flowcourse/__init__.py``. Before the
tag ``v<version>`` is pushed (``make release-check``), and again on the tag in
``.github/workflows/release.yml``, this script checks that:

- ``pyproject.toml`` has no version of its own: it reads ``flowcourse.__version__``;
- ``CHANGELOG.md`` has a dated section ``## [<version>] - YYYY-MM-DD``;
- every install cell (a code cell tagged ``colab-install``) of ``book/*.md``,
  ``book/*.ipynb`` and ``CONTRIBUTING.md`` pins this release: the git tag
  ``v<version>`` or ``flowcourse==<version>``, and every notebook has one;
- ``CITATION.cff``, the website's footer (``html.extra_footer`` in ``_config.yml``)
  and the README's BibTeX entry name this version;
- the source distribution and the wheel (built from the source distribution, as
  ``python -m build`` does) are named for this version, say so in their metadata, and
  hold every module of the package, the checkpoints (``flowcourse/checkpoints/*.pt``
  and ``*.json``) and the exercises (``flowcourse/exercises/*.py``);
- with ``--tag``, that the tag is ``v<version>``.

It needs only the standard library (and setuptools to build), so the release workflow
runs it without the development set-up. It prints every problem and exits with 1 if
there is one.

Usage::

    .venv/bin/python scripts/release_check.py              # build in a temporary folder
    .venv/bin/python scripts/release_check.py --out dist   # keep the sdist and wheel
    python scripts/release_check.py --dist dist --tag v0.2.0   # check what was built
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "flowcourse"
INSTALL_TAG = "colab-install"
VERSION_ATTRIBUTE = f"{PACKAGE}.__version__"
# Where the package data must reach the wheel: (folder in the package, suffixes).
REQUIRED_DATA = {"checkpoints": (".pt", ".json"), "exercises": (".py",)}

__all__ = [
    "Distributions",
    "build_distributions",
    "changelog_problems",
    "citation_problems",
    "distribution_problems",
    "find_distributions",
    "footer_problems",
    "install_cell_problems",
    "install_cells",
    "main",
    "pyproject_problems",
    "read_version",
    "readme_problems",
    "repository_problems",
    "tag_problems",
]


# --- The version and the files that name it ---------------------------------------------


def read_version(root: Path = ROOT) -> str:
    """``__version__`` of ``flowcourse/__init__.py``, the one place it is set."""
    path = root / PACKAGE / "__init__.py"
    match = re.search(r'^__version__ = "([^"]+)"$', path.read_text(encoding="utf-8"), re.M)
    if not match:
        raise ValueError(f'expected __version__ = "X.Y.Z" in {path}')
    return match[1]


def pyproject_problems(root: Path, version: str) -> list[str]:
    """``pyproject.toml`` must read the version from the package, not set its own."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject.get("project", {})
    problems = []
    if "version" in project:
        problems.append(
            f"pyproject.toml sets version = {project['version']!r}: remove it, the version "
            f'is set once in {PACKAGE}/__init__.py (dynamic = ["version"])'
        )
    if "version" not in project.get("dynamic", []):
        problems.append('pyproject.toml: expected dynamic = ["version"] in [project]')
    dynamic = pyproject.get("tool", {}).get("setuptools", {}).get("dynamic", {})
    if dynamic.get("version", {}).get("attr") != VERSION_ATTRIBUTE:
        problems.append(
            f"pyproject.toml: expected version = {{ attr = {VERSION_ATTRIBUTE!r} }} in "
            f"[tool.setuptools.dynamic], got {dynamic.get('version')!r}"
        )
    return problems


def changelog_problems(root: Path, version: str) -> list[str]:
    """``CHANGELOG.md`` must have the section ``## [<version>] - YYYY-MM-DD``."""
    path = root / "CHANGELOG.md"
    if not path.exists():
        return ["CHANGELOG.md is missing"]
    heading = re.compile(rf"^## \[{re.escape(version)}\](?: - (?P<date>.*?))?\s*$", re.M)
    match = heading.search(path.read_text(encoding="utf-8"))
    if match is None:
        return [f"CHANGELOG.md has no section '## [{version}] - YYYY-MM-DD'"]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", match["date"] or ""):
        return [
            f"CHANGELOG.md: the section of {version} needs its date, '## [{version}] - YYYY-MM-DD'"
        ]
    return []


def citation_problems(root: Path, version: str) -> list[str]:
    """``CITATION.cff`` must cite this version (its schema is checked by the tests)."""
    path = root / "CITATION.cff"
    if not path.exists():
        return ["CITATION.cff is missing"]
    text = path.read_text(encoding="utf-8")
    found = re.findall(r"""^version:\s*["']?([^"'\s#]+)["']?\s*(?:#.*)?$""", text, re.M)
    if found != [version]:
        return [f"CITATION.cff: expected version: {version!r}, got {found or 'none'}"]
    return []


def footer_problems(root: Path, version: str) -> list[str]:
    """The website's footer (``html.extra_footer`` in ``_config.yml``) must name
    ``flowcourse v<version>``."""
    text = (root / "_config.yml").read_text(encoding="utf-8")
    block = re.search(r"^  extra_footer:(.*?)(?=^\S|^  \S)", text + "\nend:", re.M | re.S)
    if block is None:
        return ["_config.yml: expected html.extra_footer, the footer that shows the version"]
    found = re.findall(rf"{PACKAGE} v(\d[\w.+-]*\w)", block[1])
    if not found or set(found) != {version}:
        return [f"_config.yml: the footer names {found or 'no version'}, expected v{version}"]
    return []


def readme_problems(root: Path, version: str) -> list[str]:
    """Every ``version = {...}`` of a BibTeX entry in ``README.md`` names this version."""
    text = (root / "README.md").read_text(encoding="utf-8")
    wrong = sorted(set(re.findall(r"\bversion\s*=\s*\{([^}]*)\}", text)) - {version})
    return [f"README.md: the BibTeX entry cites version {v}, expected {version}" for v in wrong]


# --- Install cells ------------------------------------------------------------------------


def _myst_code_cells(text: str) -> list[tuple[list[str], str]]:
    """The ``(tags, code)`` of every ``{code-cell}`` of a MyST notebook's text."""
    lines = text.split("\n")
    cells, index = [], 0
    while index < len(lines):
        opening = re.match(r"^(`{3,}|~{3,})\{code-cell\}", lines[index])
        index += 1
        if not opening:
            continue
        fence, tags = opening[1], []
        if index < len(lines) and lines[index].strip() == "---":  # YAML options block
            end = lines.index("---", index + 1) if "---" in lines[index + 1 :] else index
            options = "\n".join(lines[index + 1 : end])
            index = end + 1
        else:
            start = index
            while index < len(lines) and lines[index].startswith(":"):
                index += 1
            options = "\n".join(line[1:] for line in lines[start:index])
        if match := re.search(r"^\s*tags:\s*\[(.*?)\]", options, re.M):
            tags = [tag.strip().strip("'\"") for tag in match[1].split(",") if tag.strip()]
        body = []
        while index < len(lines) and not (
            lines[index].startswith(fence[0] * len(fence)) and not lines[index].strip(fence[0])
        ):
            body.append(lines[index])
            index += 1
        index += 1
        cells.append((tags, "\n".join(body).strip("\n")))
    return cells


def _notebook_code_cells(path: Path) -> list[tuple[list[str], str]]:
    """The ``(tags, code)`` of every code cell of the ``.ipynb`` at ``path``."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            cells.append((list(cell.get("metadata", {}).get("tags", [])), source))
    return cells


def install_cells(root: Path = ROOT) -> dict[Path, list[str]]:
    """The code of the install cells of every file that holds code cells: the book's
    ``.md`` and ``.ipynb`` files and ``CONTRIBUTING.md`` (its standard first cell)."""
    files = sorted((root / "book").glob("*.md")) + sorted((root / "book").glob("*.ipynb"))
    files.append(root / "CONTRIBUTING.md")
    found = {}
    for path in files:
        if not path.exists():
            continue
        if path.suffix == ".ipynb":
            cells = _notebook_code_cells(path)
        else:
            cells = _myst_code_cells(path.read_text(encoding="utf-8"))
        if cells or path.suffix == ".ipynb":
            found[path] = [code for tags, code in cells if INSTALL_TAG in tags]
    return found


def _pins(code: str) -> list[str]:
    """The versions an install cell installs: ``flowcourse @ git+URL@v<version>`` and
    ``flowcourse==<version>`` give ``<version>``."""
    git = re.findall(rf"{PACKAGE}\s*@\s*git\+[^\s\"'@]+@v([^\s\"'#]+)", code)
    index = re.findall(rf"{PACKAGE}\s*==\s*([^\s\"',;]+)", code)
    return git + index


def install_cell_problems(root: Path, version: str) -> list[str]:
    """Every notebook has one install cell, and every install cell pins ``version``."""
    problems = []
    for path, cells in install_cells(root).items():
        name = path.relative_to(root).as_posix()
        if len(cells) != 1:
            problems.append(
                f"{name}: expected one code cell tagged {INSTALL_TAG}, got {len(cells)}"
            )
        for code in cells:
            pins = _pins(code)
            if not pins:
                problems.append(f"{name}: its install cell pins no version of {PACKAGE}")
            elif set(pins) != {version}:
                problems.append(
                    f"{name}: its install cell installs {', '.join(sorted(set(pins)))}, "
                    f"expected {version} (run scripts/sync_notebooks.py)"
                )
            declared = re.findall(r'^CHAPTER_RELEASE = "([^"]*)"', code, re.M)
            if any(release != version for release in declared):
                problems.append(f"{name}: CHAPTER_RELEASE is {declared}, expected {version!r}")
    return problems


def tag_problems(tag: str, version: str) -> list[str]:
    """The release tag must be ``v<version>``."""
    if tag != f"v{version}":
        return [f"the tag {tag!r} is not v{version}, the version of {PACKAGE}/__init__.py"]
    return []


def repository_problems(root: Path, version: str) -> list[str]:
    """Everything the repository's files say about the release, without building."""
    return [
        *pyproject_problems(root, version),
        *changelog_problems(root, version),
        *install_cell_problems(root, version),
        *citation_problems(root, version),
        *footer_problems(root, version),
        *readme_problems(root, version),
    ]


# --- The distributions --------------------------------------------------------------------


class Distributions(NamedTuple):
    """A source distribution and a wheel."""

    sdist: Path
    wheel: Path


def find_distributions(folder: Path) -> Distributions:
    """The one ``.tar.gz`` and the one ``.whl`` in ``folder``."""
    sdists, wheels = sorted(folder.glob("*.tar.gz")), sorted(folder.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        names = sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []
        raise ValueError(f"expected one .tar.gz and one .whl in {folder}, got {names}")
    return Distributions(sdists[0], wheels[0])


def source_files(root: Path) -> list[str]:
    """The files a fresh clone would have: tracked, or new and not ignored (git)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (root / name).is_file()})


def _run_backend(hook: str, source: Path, out: Path) -> None:
    """Run the PEP 517 ``hook`` of the build backend of ``source`` (no isolation:
    the running Python's setuptools builds, offline) into ``out``."""
    pyproject = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    backend = pyproject["build-system"]["build-backend"]
    code = f"import importlib, sys; importlib.import_module({backend!r}).{hook}(sys.argv[1])"
    process = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=source, capture_output=True, text=True
    )
    if process.returncode != 0:
        raise RuntimeError(f"{hook} failed:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}")


def build_distributions(root: Path, out: Path) -> Distributions:
    """Build the sdist from a copy of the clone's files, then the wheel from the sdist
    (as ``python -m build`` does), into ``out``; return both."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="release-check-") as scratch:
        scratch = Path(scratch)
        clone = scratch / "clone"
        for name in source_files(root):
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, clone / name)
        sdist_dir, unpacked = scratch / "sdist", scratch / "unpacked"
        sdist_dir.mkdir()
        _run_backend("build_sdist", clone, sdist_dir)
        (sdist,) = sdist_dir.glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(unpacked, filter="data")
        (tree,) = unpacked.iterdir()
        _run_backend("build_wheel", tree, out)
        shutil.copy2(sdist, out / sdist.name)
    return find_distributions(out)


def _metadata_field(text: str, field: str) -> list[str]:
    return re.findall(rf"^{field}: (.*)$", text, re.M)


def package_files(root: Path) -> set[str]:
    """The files the distributions must hold: every module of the package (as a clone
    has them) and its data (the checkpoints and the exercises)."""
    try:
        listed = source_files(root)
    except (OSError, subprocess.CalledProcessError):  # not a git clone
        listed = [path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()]
    in_package = [name for name in listed if name.startswith(f"{PACKAGE}/")]
    expected = {name for name in in_package if name.endswith(".py")}
    for folder, suffixes in REQUIRED_DATA.items():
        for suffix in suffixes:
            expected |= {
                name
                for name in in_package
                if PurePosixPath(name).parent == PurePosixPath(PACKAGE, folder)
                and name.endswith(suffix)
            }
    return expected


def _data_problems(files: set[str]) -> list[str]:
    """Each kind of required data must have at least one file to ship."""
    problems = []
    for folder, suffixes in REQUIRED_DATA.items():
        for suffix in suffixes:
            pattern = f"{PACKAGE}/{folder}/*{suffix}"
            if not any(PurePosixPath(name).match(pattern) for name in files):
                problems.append(f"the package has no {pattern} to ship")
    return problems


def distribution_problems(distributions: Distributions, root: Path, version: str) -> list[str]:
    """The sdist and wheel are named for ``version``, say so in their metadata, and hold
    the package: every module, the checkpoints and the exercises."""
    sdist, wheel = distributions.sdist, distributions.wheel
    expected = package_files(root)
    problems = _data_problems(expected)
    if sdist.name != f"{PACKAGE}-{version}.tar.gz":
        problems.append(f"the sdist is {sdist.name}, expected {PACKAGE}-{version}.tar.gz")
    wheel_name = f"{PACKAGE}-{version}-py3-none-any.whl"
    if wheel.name != wheel_name:
        problems.append(f"the wheel is {wheel.name}, expected {wheel_name}")

    dist_info = f"{PACKAGE}-{version}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

        def read(name: str) -> str:
            return archive.read(name).decode() if name in names else ""

        metadata = read(f"{dist_info}/METADATA")
        entry_points = read(f"{dist_info}/entry_points.txt")
    if _metadata_field(metadata, "Version") != [version]:
        problems.append(f"the wheel's METADATA has Version {_metadata_field(metadata, 'Version')}")
    if f"{dist_info}/licenses/LICENSE" not in names:
        problems.append("the wheel does not hold LICENSE")
    if f"{PACKAGE} = {PACKAGE}.__main__:main" not in entry_points:
        problems.append(f"the wheel does not install the {PACKAGE} command")
    missing = sorted(expected - names)
    if missing:
        problems.append(f"the wheel lacks {len(missing)} file(s) of the package: {missing[:8]}")
    stray = sorted({PurePosixPath(name).parts[0] for name in names} - {PACKAGE, dist_info})
    if stray:
        problems.append(f"the wheel installs more than the package: {stray}")

    prefix = f"{PACKAGE}-{version}/"
    with tarfile.open(sdist) as archive:
        members = {member.name: member for member in archive.getmembers() if member.isfile()}
        info = members.get(prefix + "PKG-INFO")
        pkg_info = archive.extractfile(info).read().decode() if info else ""
    if _metadata_field(pkg_info, "Version") != [version]:
        problems.append(f"the sdist's PKG-INFO has Version {_metadata_field(pkg_info, 'Version')}")
    missing = sorted(expected - {name.removeprefix(prefix) for name in members})
    if missing:
        problems.append(f"the sdist lacks {len(missing)} file(s) of the package: {missing[:8]}")
    return problems


# --- Command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", help="the release tag, which must be v<version>")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dist", type=Path, help="check the sdist and wheel in DIST, do not build")
    where.add_argument("--out", type=Path, help="build into OUT (default: a temporary folder)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()

    version = read_version(root)
    print(f"{PACKAGE} {version}: checking the release v{version}")
    problems = repository_problems(root, version)
    if args.tag is not None:
        problems += tag_problems(args.tag, version)
    with tempfile.TemporaryDirectory(prefix="release-check-dist-") as scratch:
        try:
            if args.dist:
                distributions = find_distributions(args.dist)
            else:
                distributions = build_distributions(root, args.out or Path(scratch))
        except (ValueError, RuntimeError, subprocess.CalledProcessError) as error:
            problems.append(f"could not build or find the distributions: {error}")
        else:
            problems += distribution_problems(distributions, root, version)
            done = "checked" if args.dist else "built"
            kept = "" if args.dist or args.out else " (not kept: --out DIR keeps them)"
            sizes = ", ".join(
                f"{path.name} ({path.stat().st_size / 1e6:.1f} MB)"
                for path in (distributions.sdist, distributions.wheel)
            )
            print(f"{done} {sizes}{kept}")
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"release check failed: {len(problems)} problem(s)")
        return 1
    print(f"release check passed: ready to tag v{version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
