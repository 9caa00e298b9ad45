"""Notifications reach a webhook (a local HTTP server on 127.0.0.1) and are logged without one."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from tasks.retrain import notify


def test_webhook_receives_the_event() -> None:
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    assert notify.fn("model_promoted", "adult v2 promoted", url, {"version": 2}) is True
    thread.join(10)
    server.server_close()
    assert received == [{"event": "model_promoted", "message": "adult v2 promoted", "details": {"version": 2}}]
    assert notify.fn("model_promoted", "logged only", None) is False
