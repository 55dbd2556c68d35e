"""Refuse request bodies above settings.max_body_bytes with 413, before they are read whole.

Applied by the request layer (api/request_layer.py). A declared Content-Length is checked up
front; the server then reads exactly that many bytes, so nothing more needs counting. A body
sent without one (chunked) is counted as it streams: past the limit the app gets an empty end
of body, and whatever it answers to that is replaced by the 413, so a client can never make
the server buffer an unbounded body.
"""

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from bank_api.api.problems import problem


class BodyLimit:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def declared_too_large(self, content_length: bytes) -> bool:
        return not content_length.isdigit() or int(content_length) > self.max_bytes

    def too_large(self) -> Response:
        return problem(413, "payload_too_large", "Request body too large",
                       f"request bodies are limited to {self.max_bytes} bytes")

    def guard(self, scope: Scope, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """receive and send for a body of unknown length: counted, and refused past the
        limit."""
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
                await self.too_large()(scope, receive, send)

        return limited_receive, guarded_send
