"""The fault switch for demos: added latency and a rate of 500 answers on chosen routes.

Off by default. An operator with ADMIN_TOKEN sets it with PUT /admin/faults; the setting is
one database row, so every worker of every replica picks it up within a second
(api/fault_injection.py applies it), and a class can watch the burn-rate pages
(slo-rules.yml) fire, then clear. A setting with a deadline (`duration_s`) reads as off once
the database's clock passes it: nobody has to be alive to turn it off.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from bank_api.models import FaultInjection
from bank_api.observability import events


@dataclass(frozen=True)
class Faults:
    latency_ms: int = 0
    error_rate: float = 0.0
    routes: tuple[str, ...] = ()  # route templates; empty means every route
    methods: tuple[str, ...] = ()  # GET, POST, ...; empty means every method
    expires_at: datetime | None = None  # off from then on; None: until turned off

    @property
    def active(self) -> bool:
        """Whether there is anything to inject at all."""
        return self.latency_ms > 0 or self.error_rate > 0

    def applies_to(self, route: str, method: str) -> bool:
        return (self.active and (not self.routes or route in self.routes)
                and (not self.methods or method in self.methods))


OFF = Faults()


def load(engine: Engine) -> Faults:
    """The setting in force: OFF when none was stored or its deadline has passed."""
    with engine.connect() as connection:
        row = connection.execute(
            select(FaultInjection).where(or_(FaultInjection.expires_at.is_(None),
                                             FaultInjection.expires_at > func.now()))
        ).first()
    if row is None:
        return OFF
    return Faults(row.latency_ms, row.error_rate, tuple(row.routes), tuple(row.methods),
                  row.expires_at)


def save(session: Session, faults: Faults, duration_s: int | None = None) -> Faults:
    """Store the setting (the single row), in force for duration_s seconds when given; every
    process reads it within a second."""
    expires = func.now() + timedelta(seconds=duration_s) if duration_s is not None else None
    values = {"latency_ms": faults.latency_ms, "error_rate": faults.error_rate,
              "routes": list(faults.routes), "methods": list(faults.methods),
              "expires_at": expires, "updated_at": func.now()}
    expires_at = session.execute(
        insert(FaultInjection).values(id=1, **values)
        .on_conflict_do_update(index_elements=["id"], set_=values)
        .returning(FaultInjection.expires_at)).scalar_one()
    session.commit()
    events.fault_switch_changed(faults.latency_ms, faults.error_rate, list(faults.routes),
                                list(faults.methods), duration_s)
    return Faults(faults.latency_ms, faults.error_rate, faults.routes, faults.methods,
                  expires_at)
