"""The scenario service: the catalogue over HTTP, one run at a time, its state as metrics.

    python -m bank_scenarios serve      (compose's `scenarios` service; the native stack's)

It alone holds what the faults need (the database owner's login, the API's admin token),
listens where only the stack reaches it (compose: not published; natively: 127.0.0.1), and
can do nothing but run the catalogue's scenarios, every fault of which undoes itself. The
Locust picker (loadtest/bank_loadtest/scenario_picker.py) and `python -m bank_scenarios run`
start runs here.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from bank_api.api.problems import PROBLEM_JSON, problem_body
from bank_scenarios import catalogue, mechanisms
from bank_scenarios.conductor import Busy, Conductor
from bank_scenarios.metrics import registry

log = logging.getLogger("bank_scenarios")


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scenario: str = Field(max_length=50)
    speed: float = Field(default=1.0, ge=0.1, le=10,
                         description="How much faster than the catalogue's timings")


def problem(status: int, code: str, detail: str) -> JSONResponse:
    """The API's own problem shape (bank_api.api.problems), titled from the code."""
    return JSONResponse(problem_body(status, code, code.replace("_", " ").capitalize(), detail),
                        status_code=status, media_type=PROBLEM_JSON)


router = APIRouter()


def _conductor(request: Request) -> Conductor:
    return request.app.state.conductor


def _scenario(request: Request, name: str) -> catalogue.Scenario:
    scenarios = request.app.state.scenarios
    if name not in scenarios:
        raise UnknownScenario(f"no scenario {name!r}; there are {sorted(scenarios)}")
    return scenarios[name]


class UnknownScenario(LookupError):
    pass


@router.get("/health")
def health():
    return {"status": "ok"}


@router.get("/scenarios")
def list_scenarios(request: Request):
    return {"scenarios": [s.summary() for s in request.app.state.scenarios.values()]}


@router.get("/scenarios/{name}")
def show(name: str, request: Request):
    return _scenario(request, name).describe()


@router.post("/runs", status_code=201)
def start(body: RunRequest, request: Request):
    scenario = _scenario(request, body.scenario)
    try:
        return _conductor(request).start(scenario, body.speed).to_json()
    except Busy as busy:
        return problem(409, "scenario_running", f"{busy} is running: stop it first "
                       "(DELETE /runs/current) or wait for its end")
    except SQLAlchemyError as exc:  # checking for leftover faults needs the database
        return problem(503, "database_unavailable",
                       f"cannot reach the database to start: {exc.__class__.__name__}")


@router.get("/runs/current")
def current(request: Request):
    run = _conductor(request).current
    if run is None:
        return problem(404, "no_run", "no scenario has run since the service started")
    return run.to_json()


@router.delete("/runs/current")
def stop(request: Request):
    run = _conductor(request).stop()
    if run is None:
        return problem(404, "no_run", "no scenario is running")
    return run.to_json()


@router.get("/metrics")
def export(request: Request):
    return Response(generate_latest(request.app.state.metrics),
                    media_type=CONTENT_TYPE_LATEST)


def create_app(targets: mechanisms.Targets) -> FastAPI:
    scenarios = catalogue.load_all()
    for scenario in scenarios.values():
        for fault in scenario.faults:
            mechanisms.check_fault(fault)
    conductor = Conductor(targets)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:  # a fault left by an earlier life of this service (its statement killed)
            for done in await run_in_threadpool(targets.heal):
                log.warning("at start: %s", done)
        except Exception as exc:  # the database may not be up yet; each run heals first
            log.warning("at start, could not check for leftover faults: %s", exc)
        yield
        await run_in_threadpool(conductor.stop, "stopped")

    app = FastAPI(title="Bank classroom scenarios", lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    app.state.scenarios, app.state.conductor = scenarios, conductor
    app.state.metrics = registry(conductor)
    app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "validation_error", "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    @app.exception_handler(UnknownScenario)
    async def unknown(request: Request, exc: UnknownScenario) -> JSONResponse:
        return problem(404, "unknown_scenario", str(exc))

    return app
