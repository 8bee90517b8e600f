"""A small local shop API for the examples and tests (machines here have no internet).

    python example_dags/sample_api.py --port 8765 --latency-ms 20 --fail-every 7

`/customers` and `/orders?since=<id>` answer pages of JSON `{"data": [...], "next": url}`;
an order holds a list of 1 to 3 `items` (dlt loads them into the nested table `orders__items`).
`--fail-every N` makes every N-th request answer 503 (a transient error dlt's HTTP client
retries); `--latency-ms` delays every answer. Binds to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PAGE_SIZE = 20


class ShopApi(ThreadingHTTPServer):
    def __init__(self, port: int = 0, *, customers: int = 30, orders: int = 200,
                 latency_ms: int = 0, fail_every: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.customers, self.orders = customers, orders
        self.latency_ms, self.fail_every = latency_ms, fail_every
        self.requests = 0
        self.failures = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> "ShopApi":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def next_request_fails(self) -> bool:
        with self._lock:
            self.requests += 1
            fails = self.fail_every > 0 and self.requests % self.fail_every == 0
            self.failures += fails
            return fails


class _Handler(BaseHTTPRequestHandler):
    server: ShopApi

    def do_GET(self) -> None:
        time.sleep(self.server.latency_ms / 1000)
        if self.server.next_request_fails():
            self._send(503, {"error": "injected transient failure"})
            return
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        page = int(query.get("page", 0))
        if url.path == "/customers":
            rows = [{"id": i, "name": f"customer {i}"} for i in range(self.server.customers)]
        elif url.path == "/orders":
            since = int(query.get("since", -1))
            rows = [
                {"id": i, "customer_id": i % self.server.customers, "amount": (i * 7) % 90 + 10,
                 "items": [{"sku": f"sku-{(i * n) % 17}", "quantity": n}
                           for n in range(1, i % 3 + 2)]}
                for i in range(since + 1, self.server.orders)
            ]
        else:
            self._send(404, {"error": f"no such endpoint {url.path}"})
            return
        chunk = rows[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        more = (page + 1) * PAGE_SIZE < len(rows)
        next_query = "&".join(f"{k}={v}" for k, v in {**query, "page": page + 1}.items())
        body: dict[str, Any] = {
            "data": chunk,
            "next": f"{self.server.url}{url.path}?{next_query}" if more else None,
        }
        self._send(200, body)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--fail-every", type=int, default=0)
    args = parser.parse_args()
    api = ShopApi(args.port, latency_ms=args.latency_ms, fail_every=args.fail_every)
    print(f"shop API on {api.url}", flush=True)
    api.serve_forever()


if __name__ == "__main__":
    main()
