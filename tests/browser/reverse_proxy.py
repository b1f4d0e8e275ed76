"""A tiny reverse proxy for the tests: ``http://127.0.0.1:<port>/pacs/...`` -> ``<upstream>/...``.

Anything outside the prefix is a 404, so a page or script that reaches for an absolute ``/anonymizer/...`` URL fails
the way it would behind a real proxy that serves Orthanc under a path.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business, never forwarded.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


class PrefixProxy:
    """Serves ``upstream`` under ``prefix`` on a free loopback port until :meth:`stop`."""

    def __init__(self, upstream: str, prefix: str = "/pacs") -> None:
        self.prefix = prefix.rstrip("/")
        target = urlsplit(upstream)
        self.upstream_host = target.hostname or "127.0.0.1"
        self.upstream_port = target.port or 80
        self.requests: list[str] = []
        """Every path the proxy was asked for, in order (for assertions)."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # the tests read `requests`; paths may carry resource IDs, nothing else

            def _forward(self) -> None:
                proxy.requests.append(self.path)
                if not (self.path == proxy.prefix or self.path.startswith(proxy.prefix + "/")):
                    self._answer(404, b"outside the proxied prefix\n", {"Content-Type": "text/plain"})
                    return
                path = self.path[len(proxy.prefix) :] or "/"
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
                headers["X-Forwarded-Prefix"] = proxy.prefix
                connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                try:
                    connection.request(self.command, path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    answer_headers = {
                        k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP | {"content-length"}
                    }
                    location = answer_headers.get("Location")
                    if location and location.startswith("/"):
                        answer_headers["Location"] = proxy.prefix + location
                    self._answer(response.status, data, answer_headers)
                finally:
                    connection.close()

            def _answer(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="prefix-proxy", daemon=True)

    def start(self) -> PrefixProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
