"""``environment.yml`` (Binder, conda) installs what ``pyproject.toml`` and the book need.

It must list every package dependency of ``pyproject.toml`` with the same specifier,
the book's own tools, and admit the versions ``requirements-dev.txt`` pins and tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"
BOOK_PACKAGES = (
    "ipykernel",
    "ipywidgets",
    "jupyter-book",
    "jupytext",
    "nbval",
    "sphinx-exercise",
    "sphinx-proof",
)


def parse_requirements(lines: list[str]) -> dict[str, Requirement]:
    """Requirements by canonical name; pip options (``--extra-index-url``) are skipped."""
    requirements: dict[str, Requirement] = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name in requirements:
            raise ValueError(f"expected each package once, got {name} twice")
        requirements[name] = requirement
    return requirements


def environment_problems(
    environment: dict, pyproject: dict, pins: dict[str, Requirement]
) -> list[str]:
    """Everything that makes ``environment`` (a parsed environment.yml) disagree with
    ``pyproject`` (a parsed pyproject.toml) and the pinned development versions."""
    dependencies = environment.get("dependencies", [])
    conda = [entry for entry in dependencies if isinstance(entry, str)]
    pip_lists = [entry["pip"] for entry in dependencies if isinstance(entry, dict)]
    problems = []
    if f"python={PYTHON_VERSION}" not in conda:
        problems.append(f"expected python={PYTHON_VERSION} in the conda dependencies, got {conda}")
    if "pip" not in conda or len(pip_lists) != 1:
        return [*problems, "expected pip and one pip: section in the conda dependencies"]
    installed = parse_requirements(pip_lists[0])

    project = pyproject["project"]
    requires_python = SpecifierSet(project["requires-python"])
    if Version(PYTHON_VERSION) not in requires_python:
        problems.append(f"python {PYTHON_VERSION} is outside requires-python {requires_python}")
    wanted = parse_requirements(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        wanted.update(parse_requirements(extra))
    for name, requirement in wanted.items():
        if name not in installed:
            problems.append(f"{name} (pyproject.toml: {requirement}) is missing")
        elif installed[name].specifier != requirement.specifier:
            problems.append(
                f"{name}: environment.yml has {installed[name]}, pyproject.toml has {requirement}"
            )
    for name in BOOK_PACKAGES:
        if name not in installed:
            problems.append(f"{name} (needed by the book) is missing")
    for name, requirement in installed.items():
        pinned = pins.get(name)
        if pinned is None:
            continue
        (version,) = [Version(spec.version) for spec in pinned.specifier]
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(
                f"{name}: environment.yml has {requirement}, which excludes the tested "
                f"version {version} pinned in requirements-dev.txt"
            )
    return problems


def _read_files() -> tuple[dict, dict, dict[str, Requirement]]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = parse_requirements(
        (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    )
    return environment, pyproject, pins


def test_environment_yml_matches_pyproject_and_pins() -> None:
    problems = environment_problems(*_read_files())
    assert not problems, "environment.yml:\n" + "\n".join(problems)


def test_environment_yml_names_the_binder_environment() -> None:
    environment, _, _ = _read_files()
    assert environment["name"] == "flowcourse"
    assert environment["channels"] == ["conda-forge"]


# The comparison must be able to fail.


@pytest.fixture
def consistent() -> tuple[dict, dict, dict[str, Requirement]]:
    environment = {
        "dependencies": [
            f"python={PYTHON_VERSION}",
            "pip",
            {"pip": ["--extra-index-url https://example.org", "torch>=2.0", *BOOK_PACKAGES]},
        ]
    }
    pyproject = {"project": {"requires-python": ">=3.10", "dependencies": ["torch>=2.0"]}}
    return environment, pyproject, parse_requirements(["torch==2.13.0", "nbval==0.11.0"])


def test_consistent_files_have_no_problems(consistent) -> None:
    assert environment_problems(*consistent) == []


def test_missing_package_is_named(consistent) -> None:
    environment, pyproject, pins = consistent
    pyproject["project"]["dependencies"].append("numpy>=1.24")
    assert environment_problems(environment, pyproject, pins) == [
        "numpy (pyproject.toml: numpy>=1.24) is missing"
    ]


def test_conflicting_specifier_is_named(consistent) -> None:
    environment, pyproject, pins = consistent
    environment["dependencies"][2]["pip"][1] = "torch>=2.1"
    assert environment_problems(environment, pyproject, pins) == [
        "torch: environment.yml has torch>=2.1, pyproject.toml has torch>=2.0"
    ]


def test_specifier_excluding_the_tested_version_is_named(consistent) -> None:
    environment, pyproject, pins = consistent
    pip = environment["dependencies"][2]["pip"]
    pip[pip.index("nbval")] = "nbval<0.10"
    (problem,) = environment_problems(environment, pyproject, pins)
    assert problem.startswith("nbval: environment.yml has nbval<0.10, which excludes the tested")


def test_missing_book_package_and_python_are_named(consistent) -> None:
    environment, pyproject, pins = consistent
    environment["dependencies"][0] = "python=3.12"
    environment["dependencies"][2]["pip"].remove("jupyter-book")
    assert environment_problems(environment, pyproject, pins) == [
        f"expected python={PYTHON_VERSION} in the conda dependencies, got ['python=3.12', 'pip']",
        "jupyter-book (needed by the book) is missing",
    ]


def test_duplicate_package_is_rejected() -> None:
    with pytest.raises(ValueError, match="expected each package once, got torch twice"):
        parse_requirements(["torch>=2.0", "Torch"])
