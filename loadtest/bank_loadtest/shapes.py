"""Load shapes: how many users run at each moment of a test, chosen by environment.

    LOAD_SHAPE       steady | ramp | spike | step | smoke (unset: Locust's -u/-r/-t options)
    LOAD_USERS       peak users (default 20; smoke 3)
    LOAD_DURATION    whole test, e.g. 90, 60s, 5m, 1h30m (default 60s; smoke 20s)
    LOAD_SPAWN_RATE  users started per second (default: the peak reached in about 5 s)

Every shape ends by itself after LOAD_DURATION (tick() returns None), so a run's length does
not depend on --run-time.
"""

import math
import os

from locust import LoadTestShape
from locust.util.timespan import parse_timespan


class ShapeSettings:
    def __init__(self, users: int, duration: float, spawn_rate: float) -> None:
        if users < 1 or duration <= 0 or spawn_rate <= 0:
            raise ValueError("LOAD_USERS, LOAD_DURATION and LOAD_SPAWN_RATE must be positive")
        self.users, self.duration, self.spawn_rate = users, duration, spawn_rate

    @classmethod
    def from_environment(cls, default_users: int = 20, default_duration: str = "60s"):
        users = int(os.environ.get("LOAD_USERS") or default_users)
        duration = parse_timespan(os.environ.get("LOAD_DURATION") or default_duration)
        spawn_rate = float(os.environ.get("LOAD_SPAWN_RATE") or max(1.0, users / 5))
        return cls(users, duration, spawn_rate)


class SettingsShape(LoadTestShape):
    """A shape driven by ShapeSettings; subclasses say how many users at time t."""

    abstract = True
    default_users = 20
    default_duration = "60s"

    def __init__(self) -> None:
        super().__init__()
        self.settings = ShapeSettings.from_environment(self.default_users, self.default_duration)

    def users_at(self, t: float) -> tuple[int, float]:
        raise NotImplementedError

    def tick(self):
        t = self.get_run_time()
        if t >= self.settings.duration:
            return None
        return self.users_at(t)


class Steady(SettingsShape):
    """Start the users, keep them: a plateau to read steady-state latency from."""

    def users_at(self, t):
        return self.settings.users, self.settings.spawn_rate


class Smoke(Steady):
    """A few users for a few seconds: does everything answer? (CI)"""

    default_users = 3
    default_duration = "20s"


class Ramp(SettingsShape):
    """Grow linearly from one user to the peak over the whole run: where does latency bend?"""

    def users_at(self, t):
        users = max(1, math.ceil(self.settings.users * t / self.settings.duration))
        return users, self.settings.spawn_rate


class Spike(SettingsShape):
    """A fifth of the peak, then the full peak for the middle fifth of the run, then back.

    Users arrive as fast as the peak allows: the point is a sudden burst and the recovery.
    """

    def users_at(self, t):
        base = max(1, self.settings.users // 5)
        in_spike = 0.4 <= t / self.settings.duration < 0.6
        return (self.settings.users if in_spike else base), float(self.settings.users)


class Step(SettingsShape):
    """Four equal plateaus at a quarter, half, three quarters and all of the peak users."""

    steps = 4

    def users_at(self, t):
        step = min(self.steps - 1, int(t * self.steps / self.settings.duration))
        users = max(1, math.ceil(self.settings.users * (step + 1) / self.steps))
        return users, self.settings.spawn_rate


SHAPES: dict[str, type[SettingsShape]] = {
    "steady": Steady, "ramp": Ramp, "spike": Spike, "step": Step, "smoke": Smoke,
}


def selected_shape() -> type[SettingsShape] | None:
    """The shape named by LOAD_SHAPE, or None to let Locust's own options drive the run."""
    name = os.environ.get("LOAD_SHAPE", "").strip().lower()
    if not name or name == "none":
        return None
    if name not in SHAPES:
        raise ValueError(f"LOAD_SHAPE={name!r}: choose one of {', '.join(SHAPES)}")
    return SHAPES[name]
