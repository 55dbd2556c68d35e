"""Child processes and ports, the one way every tool and test starts a server.

A `Service` is a command with its output in a log file. It starts, waits until a URL answers
(when it has one), and stops with SIGTERM, then SIGKILL after `timeout` seconds, together
with every process it started. It is built on mirakuru (the executor pytest-postgresql and
others rely on): the child runs in a session of its own (Ctrl-C in a terminal reaches only
the tool, which then stops its children in order), and every process it spawns is marked in
its environment, so none survives the stop, not even an orphaned worker. mirakuru also kills
what is left when the tool itself exits.

Free ports come from portpicker, which never hands out the same port twice in one process.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import portpicker
from mirakuru import HTTPExecutor, SimpleExecutor
from mirakuru.base import ENV_UUID
from mirakuru.exceptions import (
    AlreadyRunning,
    ProcessExitedWithError,
    ProcessFinishedWithError,
    TimeoutExpired,
)

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port nothing listens on now."""
    return portpicker.pick_unused_port()


def free_ports(count: int) -> list[int]:
    """`count` different free ports."""
    return [free_port() for _ in range(count)]


def tail(path: Path, lines: int = 40) -> str:
    """The end of a log file, for error messages."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class _Environment:
    """The child's environment: ours with `env` applied, a None value removing a variable
    (some programs change behaviour when a variable merely exists).

    A Service started inside a Service's child (the benchmark runs the load runner, which
    runs Locust) keeps its parent's mark beside its own: mirakuru finds marked processes by
    substring, so stopping the outer Service reaches the inner one's processes too, even when
    the child in between is gone."""

    def __init__(self, *args, env: Mapping[str, str | None], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env_changes = dict(env)

    @property
    def envvars(self) -> dict[str, str]:
        merged = super().envvars  # os.environ, plus mirakuru's marker
        inherited = os.environ.get(ENV_UUID)
        if inherited and inherited != merged[ENV_UUID]:
            merged[ENV_UUID] = f"{inherited} {merged[ENV_UUID]}"
        for name, value in self.env_changes.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        return merged


class _Executor(_Environment, SimpleExecutor):
    pass


class _HTTPExecutor(_Environment, HTTPExecutor):
    def __init__(self, *args, ready: Callable[[], bool], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ready = ready

    def after_start_check(self) -> bool:
        return super().after_start_check() and self.ready()


class Service:
    """One child process: `with Service(...) as s:` or start()/stop().

    name       what logs and errors call it
    argv       the command
    log_path   where its stdout and stderr go (appended)
    env        changes to this process's environment (None removes a variable)
    cwd        its working directory
    ready_url  started() returns once a GET of it answers 2xx; without one, at once
    ready      a further condition (called with no argument) before it counts as started
    timeout    seconds to start, and to stop before SIGKILL
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: Path,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        ready_url: str | None = None,
        ready=lambda: True,
        timeout: float = 60,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.cwd = cwd
        self.ready_url = ready_url
        self.ready = ready
        self.timeout = timeout
        self.returncode: int | None = None
        self.stopped = False  # by stop(), as opposed to exiting on its own
        self._log: BinaryIO | None = None
        self._executor: SimpleExecutor | None = None

    def start(self) -> Service:
        """Start, then wait for ready_url; on failure, stop and raise with the log's end."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.stopped, self.returncode = False, None
        self._log = self.log_path.open("ab")
        # Output to the log file: a pipe nobody reads would block the child once full.
        options = {"env": self.env, "cwd": str(self.cwd) if self.cwd else None,
                   "timeout": self.timeout, "stdin": subprocess.DEVNULL, "stdout": self._log,
                   "stderr": subprocess.STDOUT}
        if self.ready_url:
            self._executor = _HTTPExecutor(self.argv, self.ready_url, method="GET",
                                           ready=self.ready, request_timeout=2, **options)
        else:
            self._executor = _Executor(self.argv, **options)
        try:
            self._executor.start()
        except AlreadyRunning:
            self.stop()
            raise RuntimeError(f"{self.name}: something already answers {self.ready_url}; "
                               "stop it or choose another port") from None
        except (ProcessExitedWithError, TimeoutExpired) as error:
            self.stop()
            what = "exited" if isinstance(error, ProcessExitedWithError) else (
                f"did not answer {self.ready_url} within {self.timeout:.0f}s")
            raise RuntimeError(f"{self.name} {what}; {self.log_path}:\n{self.log_tail()}") \
                from None
        return self

    @property
    def process(self) -> subprocess.Popen | None:
        """The running child, or None."""
        return self._executor.process if self._executor else None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self._executor is not None and self._executor.running()

    def exited(self) -> bool:
        """It ran and ended on its own (not by stop())."""
        return self.process is not None and not self.running() and not self.stopped

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to end by itself; its exit code (TimeoutExpired from
        subprocess after `timeout` seconds)."""
        return self.process.wait(timeout)

    def signal(self, signum: int) -> None:
        """Send a signal to the child alone (not its process group)."""
        if self.running():
            os.kill(self.pid, signum)

    def stop(self) -> int | None:
        """SIGTERM to the child's process group, SIGKILL after the timeout, then to anything
        it started; its exit code (None when it never started)."""
        self.stopped = True
        process = self.process
        if process is not None and self._executor is not None:
            try:
                self._executor.stop()
            except ProcessFinishedWithError as finished:  # a non-zero exit is still an exit
                self.returncode = finished.exit_code
            else:
                self.returncode = process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.returncode

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
