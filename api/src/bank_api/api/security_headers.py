"""Security headers on every answer. The API serves JSON only, so the strictest content
policy applies; the interactive docs page is the exception (it loads Swagger UI's scripts).

Applied by the request layer (api/request_layer.py) to each answer's start message; a header
the answer already has is left as it is.
"""

from bank_api.api.paths import DOC_PAGES

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"

# As ASGI sends them: lower-case names, bytes.
_RAW = [(name.lower().encode(), value.encode()) for name, value in HEADERS.items()]
_RAW_CSP = (b"content-security-policy", API_CSP.encode())
_NAMES = frozenset(name for name, _ in [*_RAW, _RAW_CSP])


def add(raw_headers: list[tuple[bytes, bytes]], path: str) -> None:
    """Append the headers `raw_headers` (an answer's, as ASGI holds them) lacks."""
    present = {name.lower() for name, _ in raw_headers}
    if present.isdisjoint(_NAMES):  # the usual case: none of them yet
        raw_headers += _RAW
    else:
        raw_headers.extend(pair for pair in _RAW if pair[0] not in present)
    if _RAW_CSP[0] not in present and not path.startswith(DOC_PAGES):
        raw_headers.append(_RAW_CSP)
