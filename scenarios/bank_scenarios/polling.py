"""Something done every second in a thread of its own, until stopped: the narration and
the watch on Alertmanager during a run."""

from __future__ import annotations

import threading


class Poller:
    def __init__(self, name: str, every: float = 1.0) -> None:
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def poll(self) -> None:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.every)
