#!/usr/bin/env python3
"""Throughput of the kubelet streams through kubecache against the fake kubelet reached
directly, in one run (docs/PERFORMANCE.md, "Kubelet streams"):

- `logs -f`: the fake kubelet's "bulk" container log (limitBytes of 'x'), read over HTTPS
  from /containerLogs directly, then through kubecache's pods/log (HTTP, insecure port);
- port-forward: one SPDY/3.1 portforward.k8s.io stream to a local TCP source that writes
  N bytes, opened by the same Python SPDY client on the kubelet's /portForward directly,
  then through kubecache's pods/portforward (passed through to the kubelet).

Same client both ways, so the ratio is kubecache's cost. Usage:
  python3 scripts/bench_streams.py [--mib 256] [--runs 3] [--kubecache target/release/kubecache]
"""

import argparse
import asyncio
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "server", "tests", "kubelet"))
import fake_kubelet as spdy  # noqa: E402  (its SPDY framing, reused as a client)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_kubelet(directory):
    cert, key = os.path.join(directory, "k.pem"), os.path.join(directory, "k.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=kubelet", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "server/tests/kubelet/fake_kubelet.py"),
         "--cert", cert, "--key", key, "--record", os.devnull],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    words = process.stdout.readline().split()
    return process, int(words[2])


def start_kubecache(binary):
    port = free_port()
    process = subprocess.Popen(
        [binary, "serve", "--insecure-port", str(port), "--secure-port", "0",
         "--allow-loopback-proxy-targets"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    for line in process.stdout:
        if "serving" in line:
            break
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return process, f"http://127.0.0.1:{port}"


def call(url, method, path, body, content_type="application/json"):
    request = urllib.request.Request(
        url + path, method=method, data=json.dumps(body).encode(),
        headers={"Content-Type": content_type},
    )
    with urllib.request.urlopen(request) as response:
        return response.read()


def register(url, kubelet_port):
    call(url, "POST", "/api/v1/nodes", {"metadata": {"name": "n"}})
    call(url, "PATCH", "/api/v1/nodes/n/status", {"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
    }}, "application/merge-patch+json")
    call(url, "POST", "/api/v1/namespaces/default/pods", {
        "metadata": {"name": "web"},
        "spec": {"nodeName": "n", "containers": [{"name": "bulk", "image": "x"}]},
    })


def read_all(response):
    total = 0
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            return total
        total += len(chunk)


def timed(read):
    started = time.perf_counter()
    size = read()
    return size, time.perf_counter() - started


def logs_direct(kubelet_port, size):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{kubelet_port}/containerLogs/default/web/bulk?follow=true&limitBytes={size}"
    with urllib.request.urlopen(url, context=context) as response:
        return read_all(response)


def logs_via(url, size):
    path = f"/api/v1/namespaces/default/pods/web/log?follow=true&limitBytes={size}"
    with urllib.request.urlopen(url + path) as response:
        return read_all(response)


def source(size):
    """A TCP server that writes `size` bytes to each connection, then closes: the pod's
    port for the port-forward runs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve():
        block = b"y" * (1 << 20)
        while True:
            connection, _ = server.accept()
            left = size
            while left > 0:
                connection.sendall(block[: min(left, len(block))])
                left -= min(left, len(block))
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


async def port_forward(host, port, path, tls, target_port):
    """One SPDY/3.1 portforward.k8s.io session: error and data streams to `target_port`;
    the bytes read until the data stream ends."""
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\n"
        "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n"
        "Content-Length: 0\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    session = spdy.Spdy(reader, writer)
    for stream_id, kind in ((1, "error"), (3, "data")):
        block = session.header_block(
            {"streamtype": kind, "port": str(target_port), "requestid": "0"}
        )
        payload = struct.pack(">IIH", stream_id, 0, 0) + block
        await session.control(spdy.SYN_STREAM, 0, payload)
    total = 0
    while True:
        frame = await session.read_frame()
        if frame is None:
            break
        control, kind_or_id, flags, payload = frame
        if not control and kind_or_id == 3:
            total += len(payload)
            if flags & spdy.FLAG_FIN:
                break
    writer.close()
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kubecache", default=os.path.join(REPO, "target/debug/kubecache"))
    args = parser.parse_args()
    size = args.mib << 20
    with tempfile.TemporaryDirectory() as directory:
        kubelet, kubelet_port = start_kubelet(directory)
        server, url = start_kubecache(args.kubecache)
        try:
            register(url, kubelet_port)
            api_port = int(url.rsplit(":", 1)[1])
            target = source(size)
            cases = {
                "logs -f, direct": lambda: logs_direct(kubelet_port, size),
                "logs -f, via kubecache": lambda: logs_via(url, size),
                "port-forward, direct": lambda: asyncio.run(port_forward(
                    "127.0.0.1", kubelet_port, "/portForward/default/web", True, target)),
                "port-forward, via kubecache": lambda: asyncio.run(port_forward(
                    "127.0.0.1", api_port, "/api/v1/namespaces/default/pods/web/portforward",
                    False, target)),
            }
            best = {}
            for _ in range(args.runs):
                for name, case in cases.items():
                    got, seconds = timed(case)
                    assert got == size, (name, got, size)
                    best[name] = max(best.get(name, 0), size / seconds / (1 << 20))
            print(f"{args.mib} MiB per run, best of {args.runs} (MiB/s):")
            for name, rate in best.items():
                print(f"  {name:30} {rate:8.1f}")
            for kind in ("logs -f", "port-forward"):
                ratio = best[f"{kind}, via kubecache"] / best[f"{kind}, direct"]
                print(f"  {kind}: via kubecache / direct = {ratio:.0%}")
        finally:
            server.kill()
            kubelet.kill()


if __name__ == "__main__":
    main()
