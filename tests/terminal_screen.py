"""A command run in a real pseudo-terminal, its output drawn by a terminal emulator (pyte):
what a person at a terminal of that size would see, cursor movements and redraws included."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from dataclasses import dataclass

import pyte


@dataclass
class Screen:
    returncode: int
    lines: list[str]  # the screen's rows as shown, trailing blanks cut
    raw: bytes  # every byte the command wrote

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run_in_terminal(argv: list[str], env: dict[str, str], *, columns: int = 200,
                    rows: int = 100, interrupt_after: float | None = None,
                    timeout: float = 60) -> Screen:
    """Run argv with a pty of columns×rows as its terminal; with interrupt_after, press
    Ctrl-C (SIGINT) that many seconds after the start."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    environment = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                               env=environment | {"TERM": "xterm-256color"})
    os.close(slave)
    raw = bytearray()
    started = time.monotonic()
    interrupted = False
    try:
        while True:
            elapsed = time.monotonic() - started
            if interrupt_after is not None and not interrupted and elapsed > interrupt_after:
                process.send_signal(signal.SIGINT)
                interrupted = True
            if elapsed > timeout:
                process.kill()
                raise TimeoutError(f"{argv} still running after {timeout} s")
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the command ended and closed the terminal
                    chunk = b""
                if not chunk:
                    break
                raw += chunk
            elif process.poll() is not None:
                break
    finally:
        os.close(master)
    returncode = process.wait(timeout=10)
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(bytes(raw))
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return Screen(returncode, lines, bytes(raw))
