"""Run untrusted answers in a separate, limited process, and read back only data.

Each answer to each question runs in its own process, forked from a server that has
imported torch once (:mod:`flowcourse.grading.forkserver`), so it starts in
milliseconds with nothing left by another answer:

- in a fresh scratch folder (deleted afterwards), as working directory and home;
- with Python in isolated mode (``-I``: no user site-packages, no ``PYTHON*``
  variables, not even the scratch folder on ``sys.path``) and a minimal environment;
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

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from flowcourse.grading.submission import Statement

__all__ = ["Limits", "RunResult", "run_answer"]

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, {path!r}); "
    "from flowcourse.grading.forkserver import serve; serve()"
)
_MAX_RESPONSE_BYTES = 16 * 2**20
_SIGNALS = {
    -9: " (killed: out of memory?)",
    -24: " (killed: it ran past its CPU time limit)",
    0: " before it returned its outputs (does the answer call exit() or os._exit()?)",
}


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
    """``(uid, gid)`` of ``nobody`` when running as root and it can run this Python
    (read its files: an answer's ``import`` happens as that user)."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd

        entry = pwd.getpwnam("nobody")
    except (ImportError, KeyError):
        return None
    ids = (entry.pw_uid, entry.pw_gid)

    def become() -> None:
        os.setgroups([])
        os.setgid(ids[1])
        os.setuid(ids[0])

    try:
        probe = subprocess.run(
            [sys.executable, "-I", "-c", "import torch"],
            preexec_fn=become,
            capture_output=True,
            timeout=300,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return ids if probe.returncode == 0 else None


class _ForkServer:
    """The one server process (see :mod:`flowcourse.grading.forkserver`), started on
    first use and again if it dies; requests from several threads take turns."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        command = [sys.executable, "-I", "-c", _BOOTSTRAP.format(path=_PACKAGE_PARENT)]
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
            text=True,
            cwd="/",
        )
        ready = process.stdout.readline()
        if "ready" not in ready:
            process.kill()
            raise RuntimeError("the grader's sandbox server did not start")
        atexit.register(process.kill)
        return process

    def submit(self, request: dict[str, Any]) -> int:
        """Start one answer's supervisor; return its pid."""
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self.process = self._start()
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            reply = json.loads(self.process.stdout.readline())
        return int(reply["supervisor"])


_SERVER = _ForkServer()


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
        wall_s = 2 * limits.time_s + 30
        _SERVER.submit(
            {
                "scratch": str(scratch),
                "limits": asdict(limits),
                "user": list(user) if user else None,
                "environment": _environment(scratch),
                "wall_s": wall_s,
            }
        )
        status = _wait_for_exit(scratch, wall_s + 30)
        outputs, notes = _read_response(scratch, status)
        return RunResult(outputs, notes, time.perf_counter() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _wait_for_exit(scratch: Path, deadline_s: float) -> dict[str, Any]:
    """The supervisor's ``exit.json``; it is written once the answer's process is gone."""
    path = scratch / "exit.json"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if path.is_file():
            time.sleep(0.01)  # written in one call; let it land
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
        time.sleep(0.02)
    return {"timed_out": True, "error": "the supervisor did not report"}


def _read_response(scratch: Path, status: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    log = scratch / "log.json"
    if log.is_file() and log.stat().st_size < 2**20:
        try:
            notes.extend(str(note) for note in json.loads(log.read_text())["notes"])
        except (ValueError, KeyError, TypeError):
            pass
    response = scratch / "response.pt"
    if status.get("timed_out"):
        notes.append("the answer's process was stopped at the time limit")
    if status.get("exit_code") != 0 or not response.is_file():
        code = status.get("exit_code")
        reason = (
            "it ran past the time limit"
            if status.get("timed_out")
            else f"its process ended with exit code {code}{_SIGNALS.get(code, '')}"
        )
        return {
            "crashed": True,
            "missing": f"no answer came back: {reason}{_tail(scratch / 'stdout.txt')}",
        }, notes
    if response.stat().st_size > _MAX_RESPONSE_BYTES:
        return {"crashed": True, "missing": "the answer's outputs were too large to read"}, notes
    try:
        outputs = torch.load(response, weights_only=True, map_location="cpu")
    except Exception as error:  # a forged or broken file
        return {
            "crashed": True,
            "missing": f"the answer's outputs could not be read safely: {error}",
        }, notes
    if not isinstance(outputs, dict):
        return {"crashed": True, "missing": "the answer's outputs were not a dict"}, notes
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
