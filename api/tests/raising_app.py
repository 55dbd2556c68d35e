"""The real app plus one route that raises: the only way to see, on a real server, what an
unexpected exception does to the answer, the log and the trace. Run by test_logs_and_traces.py
with `uvicorn raising_app:create --factory`."""

from fastapi import FastAPI

from bank_api.core.config import get_settings
from bank_api.main import create_app
from bank_api.observability import logs

PATH = "/accounts/{account_id}/explode"


def create() -> FastAPI:
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)
    app = create_app(settings)

    @app.get(PATH)
    async def explode(account_id: int) -> None:
        raise RuntimeError("a bug, on purpose")

    return app
