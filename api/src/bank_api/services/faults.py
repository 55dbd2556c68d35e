"""The fault switch for demos: added latency and a rate of 500 answers on chosen routes.

Off by default. An operator with ADMIN_TOKEN sets it with PUT /admin/faults; the setting is
one database row, so every worker of every replica picks it up within a second
(api/fault_injection.py applies it), and a class can watch the burn-rate pages
(slo-rules.yml) fire, then clear.
"""

from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from bank_api.models import FaultInjection
from bank_api.observability import events


@dataclass(frozen=True)
class Faults:
    latency_ms: int = 0
    error_rate: float = 0.0
    routes: tuple[str, ...] = ()  # route templates; empty means every route

    @property
    def active(self) -> bool:
        """Whether there is anything to inject at all."""
        return self.latency_ms > 0 or self.error_rate > 0

    def applies_to(self, route: str) -> bool:
        return self.active and (not self.routes or route in self.routes)


OFF = Faults()


def load(engine: Engine) -> Faults:
    with engine.connect() as connection:
        row = connection.execute(select(FaultInjection)).first()
    if row is None:
        return OFF
    return Faults(row.latency_ms, row.error_rate, tuple(row.routes))


def save(session: Session, faults: Faults) -> Faults:
    """Store the setting (the single row); every process reads it within a second."""
    values = {"latency_ms": faults.latency_ms, "error_rate": faults.error_rate,
              "routes": list(faults.routes), "updated_at": func.now()}
    session.execute(insert(FaultInjection).values(id=1, **values)
                    .on_conflict_do_update(index_elements=["id"], set_=values))
    session.commit()
    events.fault_switch_changed(faults.latency_ms, faults.error_rate, list(faults.routes))
    return faults
