"""What an anonymous client can make a worker do with its headers and its pace, against a real
uvicorn server with tracing on (as compose runs it) and JSON logs:

- malformed trace-context headers (an 8,000-byte broken `baggage`, an oversized or broken
  `tracestate`, a repeated `traceparent`) are answered normally, and make at most a bounded
  number of log lines per request, each a valid JSON object of bounded size;
- a flood of them leaves the worker's memory within a stated bound, and what was dropped is
  counted in /metrics and said in the log;
- with the tracing backend dead, SIGTERM under load ends the worker well within Docker's 10 s
  stop grace period, and the spans it could not deliver are counted and logged once;
- a client that never finishes its headers is disconnected within HEADER_TIMEOUT, one that
  sends too many is refused with 431, while normal requests go on being served.
"""

import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest
from test_metrics import scrape, value

from bank_api.observability import log_limits
from bankops.otlp_receiver import OtlpReceiver
from bankops.processes import free_port
from helpers import LiveServer, open_account

pytestmark = pytest.mark.slow

TRACED_JSON = {"LOG_FORMAT": "json", "OTEL_TRACES_SAMPLER": "always_on",
               "OTEL_BSP_SCHEDULE_DELAY": "100"}
BROKEN_BAGGAGE = "=," * 4000  # 8,000 bytes, 4,000 malformed entries
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
HOSTILE_HEADERS = {
    "baggage": [("traceparent", TRACEPARENT), ("baggage", BROKEN_BAGGAGE)],
    "tracestate, oversized": [("tracestate", "a=b," * 3000)],
    "tracestate, broken entries": [
        ("traceparent", TRACEPARENT),
        ("tracestate", ",".join(f"{'K' * 4}{i}=\t" for i in range(60))[:500])],
    "traceparent, repeated": [
        ("traceparent", TRACEPARENT),
        ("traceparent", "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01")],
    "traceparent, huge": [("traceparent", "00-" + "f" * 20_000)],
}
FLOOD_HEADERS = {"traceparent": TRACEPARENT, "baggage": BROKEN_BAGGAGE}
# A line: a few hundred bytes of fields plus at most MAX_MESSAGE_CHARS of message.
MAX_LINE_BYTES = log_limits.MAX_MESSAGE_CHARS + 2_000
# The stated bound (README, "Reliability"): a flood of hostile headers grows a worker's
# resident memory by less than this.
FLOOD_RSS_GROWTH = 64 * 2**20


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def json_lines(server: LiveServer) -> list[dict]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def check_every_line(server: LiveServer) -> None:
    for line in server.log().splitlines():
        if line.strip():
            json.loads(line)  # every line a JSON object: nothing raw, nothing cut in two
            assert len(line.encode()) <= MAX_LINE_BYTES, line[:200]


@pytest.mark.parametrize("propagators", ["", "tracecontext,baggage"])
def test_malformed_context_headers_make_a_bounded_number_of_valid_lines(
        database_url: str, receiver: OtlpReceiver, propagators: str) -> None:
    """With the default propagators (baggage is not read) and with baggage turned on (its
    parser warns per bad entry, the worst case), each request writes at most
    LINES_PER_REQUEST lines, all valid JSON of bounded size, and gets a normal answer."""
    server = LiveServer(database_url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                        OTEL_PROPAGATORS=propagators, **TRACED_JSON)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            account = open_account(http)
            for case, headers in HOSTILE_HEADERS.items():
                request_id = f"hostile-{abs(hash(case))}"
                response = http.get(f"/accounts/{account['id']}",
                                    headers=[("x-request-id", request_id), *headers])
                assert response.status_code == 200, (case, response.text)
                time.sleep(0.3)  # the background writer
                lines = [line for line in json_lines(server)
                         if line.get("request_id") == request_id]
                assert 1 <= len(lines) <= log_limits.LINES_PER_REQUEST, (case, len(lines))
                assert any(line.get("event") == "request" for line in lines), case
        check_every_line(server)
        if propagators:  # the baggage parser did warn, and was cut short
            assert value(scrape(server.url), "bank_log_records_dropped_total",
                         reason="request_cap") > 0
    finally:
        server.stop()


def worker_rss(server: LiveServer) -> int:
    return psutil.Process(server.pid).memory_info().rss


def test_a_flood_of_hostile_headers_leaves_memory_bounded_and_counts_what_it_dropped(
        database_url: str, receiver: OtlpReceiver) -> None:
    """Eight connections sending broken baggage as fast as they can for 12 s, with baggage
    turned on (before the limits: hundreds of MB held afterwards)."""
    server = LiveServer(database_url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                        OTEL_PROPAGATORS="tracecontext,baggage", **TRACED_JSON)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(50):  # warm up: imports, pools, first allocations
                http.get("/accounts", headers=FLOOD_HEADERS)
        before = worker_rss(server)
        deadline = time.monotonic() + 12
        answered = []

        def flood() -> None:
            count = 0
            with httpx.Client(base_url=server.url, timeout=30) as own:
                while time.monotonic() < deadline:
                    response = own.get("/accounts", headers=FLOOD_HEADERS)
                    assert response.status_code < 500
                    count += 1
            answered.append(count)

        threads = [threading.Thread(target=flood) for _ in range(8)]
        for thread in threads:
            thread.start()
        peak = before
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, worker_rss(server))
            time.sleep(0.2)
        time.sleep(1)
        after = worker_rss(server)
        print(f"flood: {sum(answered)} requests; worker RSS {before >> 20} MB before, "
              f"peak {peak >> 20} MB, {after >> 20} MB after")
        assert sum(answered) > 500, "the flood did not happen"
        assert peak - before < FLOOD_RSS_GROWTH
        assert after - before < FLOOD_RSS_GROWTH
        metrics = scrape(server.url)
        dropped = sum(value(metrics, "bank_log_records_dropped_total", reason=reason) or 0
                      for reason in ("request_cap", "rate_limit", "queue_full"))
        assert dropped > sum(answered)  # 4,000 warnings a request were asked for
        time.sleep(log_limits.REPORT_EVERY + 0.5)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            http.get("/accounts")  # a line after the interval brings the report
        time.sleep(0.5)
        reports = [line for line in json_lines(server)
                   if line.get("event") == "log_records_dropped"]
        assert reports and all(line["dropped"] > 0 for line in reports)
        check_every_line(server)
    finally:
        server.stop()


def test_sigterm_with_a_dead_tracing_backend_ends_within_the_stop_grace(
        database_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    server = LiveServer(database_url, OTEL_EXPORTER_OTLP_ENDPOINT=dead, **TRACED_JSON)
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as own:
            while not stop.is_set():
                try:
                    own.get("/accounts")
                except httpx.HTTPError:
                    return  # the server went away: the point of the test

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(4)  # spans pile up; the exporter is retrying against nothing
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        took = time.monotonic() - started
        print(f"SIGTERM to exit with the tracing backend down, under load: {took:.1f} s")
        assert code == 0
        assert took < 8, f"took {took:.1f} s"
        dropped = [line for line in json_lines(server) if line.get("event") == "spans_dropped"]
        assert len(dropped) == 1 and dropped[0]["spans"] > 0
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.stop()


def read_response(connection: socket.socket) -> bytes:
    """One whole HTTP/1.1 answer with a content-length, as sent."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += connection.recv(4096)
    return head + b"\r\n\r\n" + body


# Opens a socket to the server under test that the test's cleanup closes.
Connect = Callable[[], socket.socket]
SLOW_CLIENTS = 20
SLOW_HEAD = b"GET /accounts HTTP/1.1\r\n"  # dripped one byte a second, never finished


def test_slow_or_oversized_request_heads_are_cut_off_while_others_are_served(
        database_url: str) -> None:
    server = LiveServer(database_url, HEADER_TIMEOUT="2", MAX_HEADER_BYTES="8192",
                        MAX_CONNECTIONS="40")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(server.stop)

        def connect() -> socket.socket:
            return cleanup.enter_context(socket.create_connection(("127.0.0.1", server.port)))

        check_slow_and_silent_heads_are_cut_off(server, connect)
        check_an_oversized_head_is_refused_with_431(connect)
        check_a_stalled_second_request_is_cut_off(connect)
        check_connections_past_the_limit_are_closed(server, connect)

        metrics = scrape(server.url)
        assert value(metrics, "bank_http_request_heads_refused_total",
                     reason="too_many_connections") >= 5
        # The slow ones, the silent one and the stalled kept-alive one.
        assert value(metrics, "bank_http_request_heads_refused_total",
                     reason="header_timeout") >= SLOW_CLIENTS + 2
        assert value(metrics, "bank_http_request_heads_refused_total",
                     reason="header_too_large") == 1


def check_slow_and_silent_heads_are_cut_off(server: LiveServer, connect: Connect) -> None:
    """Clients that send their head a byte a second, or send nothing, are disconnected
    within HEADER_TIMEOUT (2 s), while normal requests go on being served."""
    slow = [connect() for _ in range(SLOW_CLIENTS)]
    silent = connect()  # connects, never sends a byte
    closed_at: dict[int, float] = {}  # slow connection's index -> seconds until it was closed
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=5) as http:
        for second in range(6):
            send_next_head_byte(slow, SLOW_HEAD[second:second + 1], closed_at, started)
            # Normal requests are served meanwhile.
            assert http.get("/health/live").status_code == 200
            assert http.get("/accounts").status_code == 200
            time.sleep(1)
    note_closed_connections(slow, closed_at, started)
    silent.settimeout(0.5)
    assert silent.recv(1) == b"", "a silent connection is closed too"
    assert len(closed_at) == len(slow), "every slow connection was closed"
    assert max(closed_at.values()) < 2 + 3  # HEADER_TIMEOUT, and the test's own pace


def send_next_head_byte(slow: list[socket.socket], byte: bytes,
                        closed_at: dict[int, float], started: float) -> None:
    """Send `byte` on each slow connection still open; a failed send means the server
    closed it, so note when."""
    for i, connection in enumerate(slow):
        if i not in closed_at:
            try:
                connection.sendall(byte)
            except OSError:
                closed_at[i] = time.monotonic() - started


def note_closed_connections(slow: list[socket.socket], closed_at: dict[int, float],
                            started: float) -> None:
    """Note the slow connections the server has closed since the last send (reading gives
    b"" or fails), keeping the earlier time of those already noted."""
    for i, connection in enumerate(slow):
        connection.settimeout(0.5)
        try:
            if connection.recv(1) == b"":
                closed_at.setdefault(i, time.monotonic() - started)
        except OSError:
            closed_at.setdefault(i, time.monotonic() - started)


def check_an_oversized_head_is_refused_with_431(connect: Connect) -> None:
    """A head past MAX_HEADER_BYTES gets the API's own 431 problem, security headers included."""
    big = connect()
    big.sendall(b"GET /accounts HTTP/1.1\r\nHost: x\r\n")
    with contextlib.suppress(OSError):  # closed while sending: the answer is in the buffer
        for _ in range(16):
            big.sendall(b"X-Big: " + b"a" * 1000 + b"\r\n")
    big.settimeout(5)
    answer = big.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/problem+json" in head
    assert b"x-content-type-options: nosniff" in head  # the API's security headers
    assert json.loads(body)["code"] == "headers_too_large"


def check_a_stalled_second_request_is_cut_off(connect: Connect) -> None:
    """A kept-alive connection that starts a second request and stalls is cut off too."""
    kept = connect()
    kept.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    kept.settimeout(5)
    assert read_response(kept).startswith(b"HTTP/1.1 200")
    kept.sendall(b"GET /acc")
    assert kept.recv(1) == b""  # within 2 s; the 5 s timeout would raise


def check_connections_past_the_limit_are_closed(server: LiveServer, connect: Connect) -> None:
    """Past MAX_CONNECTIONS (40), a connection is closed as soon as it opens; once some
    close, new ones are served again."""
    crowd = [connect() for _ in range(45)]
    time.sleep(0.5)  # well before HEADER_TIMEOUT would close any of them
    closed = 0
    for connection in crowd:
        connection.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # still open
            closed += connection.recv(1) == b""
    assert closed == 5, "the connections past the limit were closed at once"
    for connection in crowd:
        connection.close()
    time.sleep(0.5)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.get("/health/live").status_code == 200
