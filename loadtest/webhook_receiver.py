#!/usr/bin/env python3
"""A webhook receiver for the k6 funnel (loadtest/smoke): records every delivery as it
came, and answers 204.

    python3 loadtest/webhook_receiver.py PORT_FILE

It listens on a free port of 127.0.0.1, writes the port to PORT_FILE, and keeps every
POST to /hook (its webhook-id, webhook-timestamp and webhook-signature headers and its
body, as text). GET /received answers them all, in the order they arrived, as JSON: the
funnel's teardown verifies the signatures with the endpoint's secret and checks that
every committed reservation's events arrived, in order. Python's standard library only,
so the smoke test installs nothing for it.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = []
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        if self.path != "/hook":
            self.send_response(404)
            self.end_headers()
            return
        delivery = {
            "id": self.headers.get("webhook-id"),
            "timestamp": self.headers.get("webhook-timestamp"),
            "signature": self.headers.get("webhook-signature"),
            "body": body,
        }
        with lock:
            received.append(delivery)
        self.send_response(204)
        self.end_headers()

    def do_GET(self):
        if self.path != "/received":
            self.send_response(404)
            self.end_headers()
            return
        with lock:
            answer = json.dumps(received).encode("utf-8")
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as port_file:
        port_file.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
