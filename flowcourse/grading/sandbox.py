"""Run untrusted answers in a separate, limited process, and read back only data.

Each answer to each question runs in its own process:

- in a fresh scratch folder (deleted afterwards), as working directory and home;
- with Python in isolated mode (``-I``: no user site-packages, no ``PYTHON*``
  variables, not even the scratch folder on ``sys.path``);
- with limits set before it starts: address space (``memory_mb``), CPU seconds, file
  size, number of processes, and a wall-clock ``time_s`` after which its whole
  process group is killed;
- as the unprivileged user ``nobody`` when the grader runs as root and that user can
  run this Python (on Gradescope, in a container); otherwise as the grader's user, so
  run the grader in a container or a throw-away account for untrusted classes.

The process writes ``response.pt``; the grader loads it with
``torch.load(weights_only=True)`` (plain tensors and containers only), after checking
its size.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from flowcourse.grading.submission import Statement

__all__ = ["Limits", "RunResult", "run_answer"]

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, {path!r}); "
    "from flowcourse.grading.runner import main; main(sys.argv[1])"
)
_MAX_RESPONSE_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Limits:
    """Resource limits of one answer's process."""

    time_s: float = 60.0
    memory_mb: int = 3072
    processes: int = 64
    file_mb: int = 32


@dataclass(frozen=True)
class RunResult:
    """What came back from one answer's process."""

    outputs: dict[str, Any]
    notes: list[str]
    seconds: float


@cache
def _unprivileged_user() -> tuple[int, int] | None:
    """``(uid, gid)`` of ``nobody`` when running as root and it can run this Python."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd

        entry = pwd.getpwnam("nobody")
    except (ImportError, KeyError):
        return None
    ids = (entry.pw_uid, entry.pw_gid)
    try:
        probe = subprocess.run(
            [sys.executable, "-I", "-c", "import torch"],
            preexec_fn=lambda: _become(ids),
            capture_output=True,
            timeout=120,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return ids if probe.returncode == 0 else None


def _become(ids: tuple[int, int]) -> None:
    os.setgroups([])
    os.setgid(ids[1])
    os.setuid(ids[0])


def _limit(limits: Limits, user: tuple[int, int] | None) -> None:
    """Runs in the child between fork and exec."""
    os.setsid()
    memory = limits.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(limits.time_s) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    size = limits.file_mb * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if user is not None:
        _become(user)
    if os.geteuid() != 0:  # the kernel does not apply RLIMIT_NPROC to root
        processes = _current_processes() + limits.processes
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


def _current_processes() -> int:
    uid = os.geteuid()
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def _environment(scratch: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "LANG": "C.UTF-8",
    }


def run_answer(
    question_id: str, inputs: dict[str, Any], statements: list[Statement], limits: Limits
) -> RunResult:
    """Run ``statements`` and the question's ``respond`` on ``inputs`` in a sandbox."""
    import time

    start = time.perf_counter()
    user = _unprivileged_user()
    scratch = Path(tempfile.mkdtemp(prefix="flowcourse-grade-"))
    try:
        request = {"question": question_id, "inputs": inputs, "time_s": limits.time_s}
        torch.save(request, scratch / "request.pt")
        program = {"statements": [{"cell": s.cell, "source": s.source} for s in statements]}
        (scratch / "program.json").write_text(json.dumps(program), encoding="utf-8")
        if user is not None:
            for path in (scratch, *scratch.iterdir()):
                os.chown(path, *user)
        returncode, notes = _run(scratch, limits, user)
        outputs, more = _read_response(scratch, returncode, limits)
        return RunResult(outputs, notes + more, time.perf_counter() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(scratch: Path, limits: Limits, user: tuple[int, int] | None) -> tuple[int | None, list]:
    command = [sys.executable, "-I", "-c", _BOOTSTRAP.format(path=_PACKAGE_PARENT), str(scratch)]
    with open(scratch / "stdout.txt", "wb") as stdout:
        process = subprocess.Popen(
            command,
            cwd=scratch,
            env=_environment(scratch),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: _limit(limits, user),
        )
        try:
            returncode = process.wait(timeout=limits.time_s + 30)
            notes = []
        except subprocess.TimeoutExpired:
            returncode, notes = None, [f"stopped after {limits.time_s + 30:.0f} s (time limit)"]
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # and anything it started
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
    return returncode, notes


def _read_response(
    scratch: Path, returncode: int | None, limits: Limits
) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    log = scratch / "log.json"
    if log.is_file() and log.stat().st_size < 2**20:
        try:
            notes.extend(str(note) for note in json.loads(log.read_text())["notes"])
        except (ValueError, KeyError, TypeError):
            pass
    response = scratch / "response.pt"
    if returncode != 0 or not response.is_file():
        tail = _tail(scratch / "stdout.txt")
        reason = (
            "it ran past the time limit"
            if returncode is None
            else f"its process ended with exit code {returncode}"
            f"{' (memory limit?)' if returncode in (-9, 137) else ''}"
        )
        return {"missing": f"no answer came back: {reason}{tail}"}, notes
    if response.stat().st_size > _MAX_RESPONSE_BYTES:
        return {"missing": "the answer's outputs were too large to read"}, notes
    try:
        outputs = torch.load(response, weights_only=True, map_location="cpu")
    except Exception as error:  # a forged or broken file
        return {"missing": f"the answer's outputs could not be read safely: {error}"}, notes
    if not isinstance(outputs, dict):
        return {"missing": "the answer's outputs were not a dict"}, notes
    return outputs, notes


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 600))
            text = handle.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return f"; last output: {lines[-1][:200]}" if lines else ""
