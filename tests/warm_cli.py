"""`repro` commands run in processes forked from one that has already imported what they import.

A `repro run` or `repro eval` of the tiny model spends about 8 CPU-seconds importing torch,
transformers and repro before it does any work, and the suite runs a few hundred commands. Each
test process (each xdist worker) therefore keeps a warm server for its environment: it imports
repro's CLI, sets up the process as `repro.cli.main.prepare_process` does, imports the libraries
the commands load, and then forks one child per command. The child is a new process as the
user's would be: its own session (killed as a group on a timeout), working directory,
environment, standard streams, random state and exit status. It runs the installed entry
point's `main` and exits as the interpreter does (threads joined, atexit handlers run, streams
flushed), without tearing down the modules it was handed.

What a fork cannot give is a different environment at import time. A command whose environment
differs from the server's in anything but the variables below, which repro and its libraries
read only when they run, goes to a fresh process instead, as does every command when
`REPRO_TEST_FRESH_CLI=1` (the whole suite through real entry points; slower, same tests).
Tests about the process itself (what it imports, how it starts) ask `run_cli` for a fresh one.
tests/test_warm_cli.py holds forked commands to fresh ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

REPRO = Path(sys.executable).parent / "repro"
ROOT = Path(__file__).resolve().parent.parent  # the checkout: the server imports tests.warm_cli

# Read when a command runs, never when a module is imported (checked: repro.paths reads
# REPRO_CACHE and REPRO_SHARED in functions; REPRO_HOME at import, so it is not here).
RUNTIME_VARIABLES = ("COLUMNS", "NETRC", "OPENAI_API_KEY", "PATH", "TMPDIR", "TORCH_EXTENSIONS_DIR")
RUNTIME_PREFIXES = ("PYTEST_", "REPRO_", "SLURM_", "WANDB_")
IMPORT_TIME = ("REPRO_HOME",)

# What the heavy commands (run, eval, train, diagnose, data, check-tokenizer) import. vLLM and
# DeepSpeed are left to the commands that need them: importing either changes process state
# (vLLM's environment, DeepSpeed's accelerator detection) that a fork would hand on.
PRELOAD = (
    "torch",
    "transformers",
    "transformers.models.llama.modeling_llama",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.auto.modeling_auto",
    "transformers.tokenization_utils_tokenizers",
    "transformers.generation.utils",
    "repro.runs.pipeline.run",
    "repro.evaluation.runner",
    "repro.train.launch",
    "repro.data.preference",
    "repro.runs.analysis.compare",
    "repro.runs.analysis.diagnosis",
)
NEVER_PRELOADED = ("vllm", "deepspeed")


def _import_time_environment(env: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in env.items()
        if k in IMPORT_TIME or not (k in RUNTIME_VARIABLES or k.startswith(RUNTIME_PREFIXES))
    }


class WarmServer:
    """One forking server for one environment (at import time); `run` is `subprocess.run`'s
    shape: a CompletedProcess with the exit status and both streams as text."""

    def __init__(self, env: dict[str, str]) -> None:
        self.key = _import_time_environment(env)
        self.last_pid = 0  # the last command's process (and process group)
        self._pending = b""  # what the server said past the last full line
        start = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests.warm_cli import serve; serve()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", start], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd="/"
        )
        ready = self._read(timeout=300)
        if ready is None or not ready.get("ready"):
            self.close()
            raise RuntimeError(f"the warm repro server did not start: {ready}")

    def matches(self, env: dict[str, str]) -> bool:
        return self.proc.poll() is None and _import_time_environment(env) == self.key

    def _read(self, timeout: float) -> dict | None:
        """The server's next message; None if none came within `timeout` seconds."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._pending:
            if not select.select([fd], [], [], timeout)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return {"lost": True}
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def run(
        self, args: list[str], env: dict[str, str], cwd: str, timeout: float
    ) -> subprocess.CompletedProcess:
        assert self.proc.stdin is not None
        argv = [str(REPRO), *args]
        with tempfile.TemporaryDirectory(prefix="repro-warm-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            request = {"argv": argv, "env": env, "cwd": cwd, "stdout": str(out), "stderr": str(err)}
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            started = self._read(timeout=60)
            if not started or "pid" not in started:
                raise RuntimeError(f"the warm repro server did not start the command: {started}")
            self.last_pid = started["pid"]
            ended = self._read(timeout=timeout)
            if ended is None:  # as subprocess does: the whole group goes, then the timeout is raised
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(started["pid"], signal.SIGKILL)
                self._read(timeout=60)
                raise subprocess.TimeoutExpired(argv, timeout)
            if "status" not in ended:
                raise RuntimeError(f"the warm repro server lost the command: {ended}")
            code = os.waitstatus_to_exitcode(ended["status"])
            return subprocess.CompletedProcess(argv, code, out.read_text("utf-8"), err.read_text("utf-8"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


_servers: list[WarmServer] = []  # the most recently used last
_seen: dict[tuple, int] = {}
KEEP = 2


def server_for(env: dict[str, str]) -> WarmServer | None:
    """The warm server for this environment; None where the command runs fresh: always under
    REPRO_TEST_FRESH_CLI=1, and the first time an import-time environment is seen (a test that
    points HOME at its own folder would otherwise start a server for one command). A server
    starts at an environment's second command; the two most recently used are kept."""
    if os.environ.get("REPRO_TEST_FRESH_CLI") == "1":
        return None
    for server in _servers:
        if server.matches(env):
            _servers.remove(server)
            _servers.append(server)
            return server
    key = tuple(sorted(_import_time_environment(env).items()))
    _seen[key] = _seen.get(key, 0) + 1
    if _seen[key] < 2:
        return None
    while len(_servers) >= KEEP:
        _servers.pop(0).close()
    try:
        _servers.append(WarmServer(env))
    except RuntimeError as exc:  # the suite goes on with fresh processes, and says why
        warnings.warn(f"repro commands run fresh: {exc}", stacklevel=2)
        os.environ["REPRO_TEST_FRESH_CLI"] = "1"
        return None
    return _servers[-1]


# --- the server side (runs in its own process) --------------------------------------------------


def _preload() -> None:
    """Import what the commands import, after setting up the process as `main` does first."""
    import importlib

    importlib.import_module("repro.cli.main").prepare_process()
    for name in PRELOAD:
        importlib.import_module(name)
    loaded = [name for name in NEVER_PRELOADED if name in sys.modules]
    if loaded:
        raise RuntimeError(f"the preload imported {', '.join(loaded)}")


def _child(request: dict) -> None:
    """In the forked child: become the command's process, run the entry point, and exit."""
    os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # TMPDIR is read again
    signal.signal(signal.SIGINT, signal.default_int_handler)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    # A fresh process draws its own random state; a fork would share the server's.
    import numpy
    import torch

    numpy.random.seed()
    torch.seed()
    sys.argv = request["argv"]
    # A console script's path: its own folder first, no working directory, not this checkout.
    sys.path[:] = [str(Path(request["argv"][0]).parent)] + [p for p in sys.path[2:] if p]
    from repro.cli import main

    try:
        code = main()
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # as the interpreter does with an uncaught exception
        sys.excepthook(*sys.exc_info())
        code = 1
    _exit(code)


def _exit(code: object) -> None:
    """The interpreter's exit, without tearing down the server's thousands of modules (a second
    of CPU that a fresh process spends too, but not on anything a test can see): threads
    joined, atexit handlers run, streams flushed, as Py_FinalizeEx does first."""
    import atexit
    import threading

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    threading._shutdown()  # noqa: SLF001  (what the interpreter calls before atexit)
    atexit._run_exitfuncs()  # noqa: SLF001
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status & 0xFF)


def serve() -> None:
    """Read one request a line on stdin; answer {"pid"} when its child starts and {"status"}
    when it ends. Output before the first request would mean the imports printed something a
    fresh command would print itself: the server refuses to start."""
    control_in = os.fdopen(os.dup(0), "rb")
    control_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    with tempfile.TemporaryFile() as said:
        os.dup2(said.fileno(), 1)
        os.dup2(said.fileno(), 2)
        try:
            _preload()
            problem = ""
        except Exception as exc:  # noqa: BLE001  (said to the test process, which runs fresh)
            problem = f"{type(exc).__name__}: {exc}"
        sys.stdout.flush()
        sys.stderr.flush()
        said.seek(0)
        printed = said.read().decode(errors="replace")
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    if printed:
        problem = problem or f"importing printed: {printed[:300]!r}"

    def answer(message: dict) -> None:
        os.write(control_out, (json.dumps(message) + "\n").encode())

    answer({"ready": not problem, "problem": problem})
    if problem:
        return
    for line in control_in:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            control_in.close()
            os.close(control_out)
            os.close(devnull)
            _child(request)
        answer({"pid": pid})
        _, status = os.waitpid(pid, 0)
        answer({"status": status})
