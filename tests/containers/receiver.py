"""A webhook receiver that runs in its own container beside the stack (standard library only):
it answers every POST with 200 and keeps what it was sent, which GET /deliveries returns."""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELIVERIES: list[dict[str, object]] = []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        DELIVERIES.append({"path": self.path, "headers": dict(self.headers.items()),
                           "body": body.decode()})  # fmt: skip
        self._answer(200, b"")

    def do_GET(self) -> None:
        self._answer(200, json.dumps(DELIVERIES).encode())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
