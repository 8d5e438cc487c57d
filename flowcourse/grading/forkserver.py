"""A server process that has imported torch once and forks one sandbox per answer.

Starting Python and importing torch costs seconds; grading a class runs hundreds of
answers. The grader therefore starts one server (``python -I``, torch and every
question imported, one thread) and asks it, over a pipe, to run each answer. For each
request the server forks a *supervisor*, which forks the *answer's process*:

- the answer's process starts its own session, sets its resource limits, drops to the
  unprivileged user when one is given, redirects its output to a file in its scratch
  folder, and runs :func:`flowcourse.grading.runner.main` there;
- the supervisor waits for it, kills its whole process group when the wall-clock
  limit is reached, and writes ``exit.json`` (the exit status, whether it timed out)
  into the scratch folder, which the grader waits for.

Each answer therefore runs in a fresh copy of the server's memory: nothing one answer
changes (a patched module, a stashed reference) reaches another.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["serve"]


def serve() -> None:
    """Read one JSON request per line from stdin; answer each with the supervisor's pid."""
    import torch

    import flowcourse.checks  # noqa: F401 - imported once here, not in every answer
    from flowcourse.exercises.registry import all_questions
    from flowcourse.grading import runner  # noqa: F401

    torch.set_num_threads(1)
    all_questions()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    requests, replies = sys.stdin, sys.stdout
    replies.write(json.dumps({"ready": os.getpid()}) + "\n")
    replies.flush()
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _supervise(request)  # never returns
        replies.write(json.dumps({"supervisor": pid}) + "\n")
        replies.flush()


def _supervise(request: dict[str, Any]) -> None:
    scratch = Path(request["scratch"])
    status: dict[str, Any] = {"timed_out": False}
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        pid = os.fork()
        if pid == 0:
            _answer(request)  # never returns

        def time_is_up(signum: int, frame: object) -> None:
            status["timed_out"] = True
            _kill(pid)

        signal.signal(signal.SIGALRM, time_is_up)
        signal.alarm(int(request["wall_s"]) + 1)
        _, code = os.waitpid(pid, 0)
        signal.alarm(0)
        status["exit_code"] = os.waitstatus_to_exitcode(code)
        _kill(pid)  # and whatever it left running
    except BaseException as error:  # the supervisor must always report
        status["error"] = repr(error)
    finally:
        try:
            (scratch / "exit.json").write_text(json.dumps(status), encoding="utf-8")
        finally:
            os._exit(0)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _answer(request: dict[str, Any]) -> None:
    code = 1
    try:
        scratch = request["scratch"]
        os.setsid()
        _set_limits(request["limits"])
        output = os.open(os.path.join(scratch, "stdout.txt"), os.O_WRONLY | os.O_CREAT, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.closerange(3, 4096)
        user = request.get("user")
        if user:
            os.setgroups([])
            os.setgid(user[1])
            os.setuid(user[0])
        if os.geteuid() != 0:  # the kernel does not apply RLIMIT_NPROC to root
            processes = _count_processes() + int(request["limits"]["processes"])
            resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        os.chdir(scratch)
        os.environ.clear()
        os.environ.update(request["environment"])
        from flowcourse.grading.runner import main

        main(scratch)
        code = 0
    finally:
        os._exit(code)


def _set_limits(limits: dict[str, Any]) -> None:
    memory = int(limits["memory_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = 2 * int(limits["time_s"]) + 10
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    size = int(limits["file_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _count_processes() -> int:
    uid, count = os.geteuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return count


if __name__ == "__main__":
    serve()
