#!/usr/bin/env python3
"""An admission webhook for kubecache's tests: HTTPS on loopback with the certificate and key
it is given, answering AdmissionReview v1 by path.

  /allow         allowed
  /mutate-label  allowed, with a JSONPatch adding the label `webhook-mutated: "true"`, a
                 warning and an audit annotation
  /deny          refused: 403 Forbidden, "no thanks"
  /hang          sleeps 5 s, then allows (for timeouts)

GET /stats answers {"connections": connections that carried a review, "reviews": reviews answered,
"last": the last review, "paths": reviews by path}. It prints `PORT <n>` once listening.

Usage: admission_webhook.py CERT_FILE KEY_FILE
"""

import base64
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {"connections": 0, "reviews": 0, "last": None, "paths": {}}


def answer(review, path):
    request = review.get("request") or {}
    response = {"uid": request.get("uid", ""), "allowed": True}
    if path == "/mutate-label":
        labels = ((request.get("object") or {}).get("metadata") or {}).get("labels")
        if labels is None:
            patch = [{"op": "add", "path": "/metadata/labels",
                      "value": {"webhook-mutated": "true"}}]
        else:
            patch = [{"op": "add", "path": "/metadata/labels/webhook-mutated",
                      "value": "true"}]
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        response["warnings"] = ["mutated by the test webhook"]
        response["auditAnnotations"] = {"mutated": "label"}
    elif path == "/deny":
        response["allowed"] = False
        response["status"] = {"code": 403, "reason": "Forbidden", "message": "no thanks"}
    elif path == "/hang":
        time.sleep(5)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": response}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            stats = dict(STATS)
        self.send_json(stats)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        review = json.loads(self.rfile.read(length) or b"{}")
        path = self.path.split("?", 1)[0]
        body = answer(review, path)
        with LOCK:
            if not getattr(self, "counted", False):
                self.counted = True
                STATS["connections"] += 1
            STATS["reviews"] += 1
            STATS["paths"][path] = STATS["paths"].get(path, 0) + 1
            STATS["last"] = review
        try:
            self.send_json(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass


def main():
    cert, key = sys.argv[1], sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
