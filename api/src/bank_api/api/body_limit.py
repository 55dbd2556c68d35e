"""Refuse request bodies above settings.max_body_bytes with 413, before they are read whole.

A pure ASGI middleware: it checks Content-Length up front, and counts a body sent without one
as it streams. Past the limit the app gets an empty end of body, and whatever it answers to
that is replaced by the 413, so a client can never make the server buffer an unbounded body.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bank_api.api.problems import problem


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return

        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Message) -> None:
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refuse(scope, receive, send)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413, "payload_too_large", "Request body too large",
            f"request bodies are limited to {self.max_bytes} bytes",
        )
        await response(scope, receive, send)
