#!/usr/bin/env python3
"""A stand-in kubelet for kubecache's tests: serves, over HTTPS, the kubelet API paths
kubecache calls, speaking the kubelet's stream protocols, and the same handler over plain
HTTP (what a pod's port would be).

- GET /containerLogs/{ns}/{pod}/{container}: five lines ("{ns}/{pod}/{container} line N"),
  honouring tailLines, timestamps and limitBytes; with follow=true a line every 50 ms until
  the client goes away (recorded as a "follow-closed" event). Container "waiting" answers
  400 like a kubelet whose container has not started; container "bulk" streams limitBytes
  bytes (default 64 MiB) as fast as the reader takes them.
- /exec/{ns}/{pod}/{container}?command=...: SPDY/3.1 (stream protocol v4.channel.k8s.io)
  or WebSocket (v4.channel.k8s.io) upgrades; runs the command (a real process), stdin,
  stdout and stderr streamed, the exit status on the error stream as a v1 Status.
- /attach/{ns}/{pod}/{container}: as exec, for the container's "main process", which prints
  "attached to {container}" and echoes its stdin.
- /portForward/{ns}/{pod}: SPDY/3.1 (portforward.k8s.io); each data stream is connected to
  127.0.0.1:{port}. A WebSocket upgrade is refused (400), as by a kubelet without the
  tunnelling protocol: kubectl >= 1.30 then falls back to SPDY.
- /ws-echo: a WebSocket echo (for the proxies' upgrade pass-through).
- anything else: a JSON echo of the request (method, path, query, headers, body size and
  SHA-256), for the proxies.

Every request is appended to --record as a JSON line (method, path, query, headers, client
certificate subject), and so is every upgrade made (path, upgrade, negotiated protocol) and
every follow stream the client left; stdout gets "kubelet https PORT http PORT" once
listening.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import ssl
import struct
import sys
import urllib.parse
import zlib


# The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1).
SPDY3_DICTIONARY = (
    b'\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05'
    b'trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-enco'
    b'ding\x00\x00\x00\x0faccept-language\x00\x00\x00\raccept-ranges\x00\x00\x00\x03age\x00'
    b'\x00\x00\x05allow\x00\x00\x00\rauthorization\x00\x00\x00\rcache-control\x00\x00\x00\nco'
    b'nnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10'
    b'content-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-lo'
    b'cation\x00\x00\x00\x0bcontent-md5\x00\x00\x00\rcontent-range\x00\x00\x00\x0cconten'
    b't-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04f'
    b'rom\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since\x00\x00\x00\r'
    b'if-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since'
    b'\x00\x00\x00\rlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00'
    b'\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authoriza'
    b'tion\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06serve'
    b'r\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgra'
    b'de\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10ww'
    b'w-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200'
    b' OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\ns'
    b'et-cookie\x00\x00\x00\nkeep-alive\x00\x00\x00\x06origin100101201202205'
    b'206300302303304305306307402405406407408409410411'
    b'412413414415416417502504505203 Non-Authoritative'
    b' Information204 No Content301 Moved Permanently4'
    b'00 Bad Request401 Unauthorized403 Forbidden404 N'
    b'ot Found500 Internal Server Error501 Not Impleme'
    b'nted503 Service UnavailableJan Feb Mar Apr May J'
    b'un Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, W'
    b'ed, Thu, Fri, Sat, Sun, GMTchunked,text/html,ima'
    b'ge/png,image/jpg,image/gif,application/xml,appli'
    b'cation/xhtml+xml,text/plain,text/javascript,publ'
    b'icprivatemax-age=gzip,deflate,sdchcharset=utf-8c'
    b'harset=iso-8859-1,utf-,*,enq=0.'
)


RECORD = None


def record(entry):
    with open(RECORD, "a") as f:
        f.write(json.dumps(entry) + "\n")


# ---------------------------------------------------------------- HTTP/1.1


class Request:
    def __init__(self, method, target, headers, peer_cn):
        self.method = method
        self.target = target
        parsed = urllib.parse.urlsplit(target)
        self.path = parsed.path
        self.raw_query = parsed.query
        self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        self.headers = headers  # [(lower-case name, value)]
        self.peer_cn = peer_cn

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_values(self, name):
        """Every value of a header, comma-separated lists split."""
        values = []
        for k, v in self.headers:
            if k == name:
                values.extend(p.strip() for p in v.split(",") if p.strip())
        return values

    def param(self, name, default=None):
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name):
        return self.param(name, "") in ("1", "true", "True")


async def read_request(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, value = line.split(":", 1)
            headers.append((name.strip().lower(), value.strip()))
    peer_cn = None
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is not None:
        cert = ssl_object.getpeercert()
        if cert:
            for rdn in cert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        peer_cn = value
    return Request(method, target, headers, peer_cn)


async def read_body(reader, request):
    """The request body (Content-Length or chunked), as a stream of chunks."""
    length = request.header("content-length")
    if length is not None:
        left = int(length)
        while left > 0:
            chunk = await reader.read(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
    elif (request.header("transfer-encoding") or "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)


def response_head(status, reason, headers):
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def respond(writer, status, reason, body, content_type="text/plain"):
    writer.write(
        response_head(
            status,
            reason,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
        )
        + body
    )
    await writer.drain()


# ---------------------------------------------------------------- logs


async def container_logs(request, writer, ns, pod, container):
    if container == "waiting":
        message = f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating'
        await respond(writer, 400, "Bad Request", message.encode())
        return
    writer.write(
        response_head(
            200, "OK", [("Content-Type", "text/plain"), ("Connection", "close")]
        )
    )
    limit = int(request.param("limitBytes", "0") or 0)
    if container == "bulk":
        left = limit or 64 << 20
        chunk = b"x" * 65535 + b"\n"
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            writer.write(piece)
            await writer.drain()
            left -= len(piece)
        return
    lines = [f"{ns}/{pod}/{container} line {i}" for i in range(1, 6)]
    tail = request.param("tailLines")
    if tail is not None:
        lines = lines[len(lines) - int(tail):] if int(tail) else []
    if request.flag("timestamps"):
        lines = [f"2024-01-01T00:00:0{i}.000000000Z {l}" for i, l in enumerate(lines, 1)]
    out = "".join(l + "\n" for l in lines).encode()
    if limit:
        out = out[:limit]
    writer.write(out)
    await writer.drain()
    if not request.flag("follow"):
        return
    n = 0
    try:
        while True:
            n += 1
            writer.write(f"{ns}/{pod}/{container} follow {n}\n".encode())
            await writer.drain()
            await asyncio.sleep(0.05)
            if writer.transport.is_closing():
                raise ConnectionResetError("closing")
    except (ConnectionError, OSError):
        record({"event": "follow-closed", "path": request.path})


# ---------------------------------------------------------------- SPDY/3.1

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9,
)
FLAG_FIN = 0x01


class Spdy:
    """One SPDY/3.1 session, server side: header blocks are zlib-compressed with the
    SPDY/3 dictionary, one compression context per direction for the session."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.inflate = zlib.decompressobj(zdict=SPDY3_DICTIONARY)
        self.deflate = zlib.compressobj(zdict=SPDY3_DICTIONARY)
        self.lock = asyncio.Lock()

    async def read_frame(self):
        """(control, type_or_stream, flags, payload), or None at the end."""
        try:
            head = await self.reader.readexactly(8)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        first, flags_length = struct.unpack(">II", head)
        flags, length = flags_length >> 24, flags_length & 0xFFFFFF
        payload = await self.reader.readexactly(length) if length else b""
        if first & 0x80000000:
            return True, first & 0xFFFF, flags, payload
        return False, first & 0x7FFFFFFF, flags, payload

    def headers(self, block):
        raw = self.inflate.decompress(block)
        (count,) = struct.unpack(">I", raw[:4])
        at, out = 4, {}
        for _ in range(count):
            (n,) = struct.unpack(">I", raw[at:at + 4])
            name = raw[at + 4:at + 4 + n].decode()
            at += 4 + n
            (n,) = struct.unpack(">I", raw[at:at + 4])
            value = raw[at + 4:at + 4 + n].decode()
            at += 4 + n
            out[name.lower()] = value
        return out

    def header_block(self, headers):
        raw = struct.pack(">I", len(headers))
        for name, value in headers.items():
            raw += struct.pack(">I", len(name)) + name.encode()
            raw += struct.pack(">I", len(value)) + value.encode()
        return self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    async def control(self, kind, flags, payload):
        async with self.lock:
            head = struct.pack(">HHI", 0x8003, kind, (flags << 24) | len(payload))
            self.writer.write(head + payload)
            await self.writer.drain()

    async def reply(self, stream_id):
        async with self.lock:
            payload = struct.pack(">I", stream_id) + self.header_block({})
            head = struct.pack(">HHI", 0x8003, SYN_REPLY, len(payload))
            self.writer.write(head + payload)
            await self.writer.drain()

    async def data(self, stream_id, data, fin=False):
        async with self.lock:
            for at in range(0, max(len(data), 1), 65536):
                piece = data[at:at + 65536]
                last = at + 65536 >= len(data)
                flags = FLAG_FIN if (fin and last) else 0
                self.writer.write(struct.pack(">II", stream_id, (flags << 24) | len(piece)) + piece)
            await self.writer.drain()

    async def goaway(self, last_stream):
        await self.control(GOAWAY, 0, struct.pack(">II", last_stream, 0))


def negotiate(offered, supported):
    for protocol in offered:
        if protocol in supported:
            return protocol
    return None


async def upgrade_spdy(request, writer, supported):
    """Answers 101 with the chosen stream protocol, or 403 when none fits (as the
    kubelet's httpstream handshake)."""
    offered = request.header_values("x-stream-protocol-version")
    chosen = negotiate(offered, supported)
    if chosen is None:
        message = f"unable to upgrade: unable to negotiate protocol: client supports {offered}, server supports {supported}"
        await respond(writer, 403, "Forbidden", message.encode())
        return None
    record({"event": "upgrade", "path": request.path, "upgrade": "SPDY/3.1", "protocol": chosen})
    writer.write(
        response_head(
            101,
            "Switching Protocols",
            [
                ("Connection", "Upgrade"),
                ("Upgrade", "SPDY/3.1"),
                ("X-Stream-Protocol-Version", chosen),
            ],
        )
    )
    await writer.drain()
    return chosen


def exit_status(code):
    """The v4 error stream's v1 Status for an exit code."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def command_of(request, kind, container):
    if kind == "exec":
        return request.query.get("command", [])
    if request.flag("stdin"):
        return ["sh", "-c", f"echo attached to {container}; exec cat"]
    return ["sh", "-c", f"echo attached to {container}"]


async def pump(source, send):
    while True:
        chunk = await source.read(65536)
        if not chunk:
            return
        await send(chunk)


async def exec_spdy(request, reader, writer, kind, container):
    if not (request.flag("stdin") or request.flag("stdout") or request.flag("stderr")):
        await respond(writer, 400, "Bad Request", b"you must specify at least 1 of stdin, stdout, stderr")
        return
    if await upgrade_spdy(request, writer, ["v4.channel.k8s.io"]) is None:
        return
    session = Spdy(reader, writer)
    wanted = {"error"}
    for name in ("stdin", "stdout", "stderr"):
        if request.flag(name):
            wanted.add(name)
    if request.flag("tty"):
        wanted.add("resize")
    streams = {}
    last_stream = 0
    started = asyncio.Event()
    # What the client sent on stdin (None: its end), fed to the process once it runs.
    stdin = asyncio.Queue()

    async def feed(process):
        while True:
            chunk = await stdin.get()
            if chunk is None:
                process.stdin.close()
                return
            process.stdin.write(chunk)
            await process.stdin.drain()

    async def run():
        await started.wait()
        process = await asyncio.create_subprocess_exec(
            *command_of(request, kind, container),
            stdin=asyncio.subprocess.PIPE if "stdin" in streams else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        if "stdin" in streams:
            asyncio.ensure_future(feed(process))
        outputs = []
        for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
            if name in streams:
                sid = streams[name]
                outputs.append(pump(pipe, lambda c, sid=sid: session.data(sid, c)))
            else:
                outputs.append(pump(pipe, lambda c: asyncio.sleep(0)))
        await asyncio.gather(*outputs)
        code = await process.wait()
        for name in ("stdout", "stderr"):
            if name in streams:
                await session.data(streams[name], b"", fin=True)
        status = json.dumps(exit_status(code)).encode()
        await session.data(streams["error"], status, fin=True)
        await session.goaway(last_stream)
        writer.close()

    runner = asyncio.ensure_future(run())
    while True:
        frame = await session.read_frame()
        if frame is None:
            break
        control, kind_or_id, flags, payload = frame
        if control and kind_or_id == SYN_STREAM:
            (stream_id,) = struct.unpack(">I", payload[:4])
            headers = session.headers(payload[10:])
            streams[headers.get("streamtype", "")] = stream_id & 0x7FFFFFFF
            last_stream = max(last_stream, stream_id)
            await session.reply(stream_id)
            if wanted.issubset(streams):
                started.set()
        elif control and kind_or_id == PING:
            await session.control(PING, 0, payload)
        elif control and kind_or_id == GOAWAY:
            break
        elif not control:
            if streams.get("stdin") == kind_or_id:
                if payload:
                    stdin.put_nowait(payload)
                if flags & FLAG_FIN:
                    stdin.put_nowait(None)
    try:
        await asyncio.wait_for(runner, 30)
    except Exception:
        pass


async def port_forward_spdy(request, reader, writer):
    if await upgrade_spdy(request, writer, ["portforward.k8s.io"]) is None:
        return
    session = Spdy(reader, writer)
    errors = {}  # requestid -> error stream id
    sockets = {}  # data stream id -> writer to the port
    tasks = []

    async def connect(stream_id, port, request_id):
        try:
            port_reader, port_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            message = f"an error occurred forwarding {port} -> {port}: {e}"
            if request_id in errors:
                await session.data(errors[request_id], message.encode(), fin=True)
            await session.data(stream_id, b"", fin=True)
            return None
        sockets[stream_id] = port_writer

        async def back():
            await pump(port_reader, lambda c: session.data(stream_id, c))
            await session.data(stream_id, b"", fin=True)
            # As the kubelet, the pair's error stream closes with it: the client waits
            # for that before it closes its local connection.
            if request_id in errors:
                await session.data(errors.pop(request_id), b"", fin=True)

        tasks.append(asyncio.ensure_future(back()))
        return port_writer

    pending = {}
    while True:
        frame = await session.read_frame()
        if frame is None:
            break
        control, kind_or_id, flags, payload = frame
        if control and kind_or_id == SYN_STREAM:
            (stream_id,) = struct.unpack(">I", payload[:4])
            headers = session.headers(payload[10:])
            await session.reply(stream_id)
            request_id = headers.get("requestid", "")
            if headers.get("streamtype") == "error":
                errors[request_id] = stream_id
            else:
                pending[stream_id] = asyncio.ensure_future(
                    connect(stream_id, int(headers.get("port", "0")), request_id)
                )
        elif control and kind_or_id == PING:
            await session.control(PING, 0, payload)
        elif control and kind_or_id == GOAWAY:
            break
        elif control and kind_or_id == RST_STREAM:
            (stream_id,) = struct.unpack(">I", payload[:4])
            port_writer = sockets.pop(stream_id, None)
            if port_writer:
                port_writer.close()
        elif not control:
            stream_id = kind_or_id
            if stream_id in pending:
                port_writer = await pending[stream_id]
                if port_writer is None:
                    continue
                if payload:
                    port_writer.write(payload)
                    await port_writer.drain()
                if flags & FLAG_FIN and port_writer.can_write_eof():
                    port_writer.write_eof()
    for task in tasks:
        task.cancel()
    writer.close()


# ---------------------------------------------------------------- WebSocket

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def upgrade_websocket(request, writer, supported):
    offered = request.header_values("sec-websocket-protocol")
    chosen = negotiate(offered, supported) if supported else None
    if supported and chosen is None:
        await respond(writer, 400, "Bad Request", f"unsupported subprotocols {offered}".encode())
        return False
    record({"event": "upgrade", "path": request.path, "upgrade": "websocket", "protocol": chosen})
    key = request.header("sec-websocket-key") or ""
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    headers = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Accept", accept),
    ]
    if chosen:
        headers.append(("Sec-WebSocket-Protocol", chosen))
    writer.write(response_head(101, "Switching Protocols", headers))
    await writer.drain()
    return True


async def ws_read(reader):
    """(opcode, payload) of the next message, or None at the end."""
    try:
        b0, b1 = await reader.readexactly(2)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack(">H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack(">Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else None
    payload = bytearray(await reader.readexactly(length))
    if mask:
        for i in range(len(payload)):
            payload[i] ^= mask[i % 4]
    return b0 & 0x0F, bytes(payload)


def ws_frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack(">BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
    return head + payload


async def exec_websocket(request, reader, writer, kind, container):
    if not await upgrade_websocket(request, writer, ["v4.channel.k8s.io"]):
        return
    lock = asyncio.Lock()

    async def send(channel, data):
        async with lock:
            writer.write(ws_frame(2, bytes([channel]) + data))
            await writer.drain()

    # The kubelet opens every channel with an empty message.
    for channel in (1, 2, 3):
        await send(channel, b"")
    process = await asyncio.create_subprocess_exec(
        *command_of(request, kind, container),
        stdin=asyncio.subprocess.PIPE if request.flag("stdin") else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def inbound():
        while True:
            message = await ws_read(reader)
            if message is None or message[0] == 8:
                break
            opcode, payload = message
            if payload and payload[0] == 0 and process.stdin:
                process.stdin.write(payload[1:])
                await process.stdin.drain()

    reading = asyncio.ensure_future(inbound())
    await asyncio.gather(
        pump(process.stdout, lambda c: send(1, c)),
        pump(process.stderr, lambda c: send(2, c)),
    )
    code = await process.wait()
    await send(3, json.dumps(exit_status(code)).encode())
    async with lock:
        writer.write(ws_frame(8, struct.pack(">H", 1000)))
        await writer.drain()
    reading.cancel()
    writer.close()


async def websocket_echo(request, reader, writer):
    if not await upgrade_websocket(request, writer, None):
        return
    while True:
        message = await ws_read(reader)
        if message is None:
            break
        opcode, payload = message
        if opcode == 8:
            writer.write(ws_frame(8, payload))
            await writer.drain()
            break
        writer.write(ws_frame(opcode, payload))
        await writer.drain()
    writer.close()


# ---------------------------------------------------------------- dispatch


async def echo(request, reader, writer):
    digest = hashlib.sha256()
    size = 0
    async for chunk in read_body(reader, request):
        digest.update(chunk)
        size += len(chunk)
    body = json.dumps(
        {
            "method": request.method,
            "path": request.path,
            "query": request.raw_query,
            "headers": {k: v for k, v in request.headers},
            "bodyBytes": size,
            "bodySha256": digest.hexdigest(),
        }
    ).encode()
    await respond(writer, 200, "OK", body, "application/json")


async def handle(reader, writer):
    try:
        request = await read_request(reader, writer)
        record(
            {
                "method": request.method,
                "path": request.path,
                "query": request.raw_query,
                "headers": {k: v for k, v in request.headers},
                "clientCN": request.peer_cn,
            }
        )
        parts = request.path.strip("/").split("/")
        upgrade = (request.header("upgrade") or "").lower()
        if parts[0] == "containerLogs" and len(parts) == 4:
            await container_logs(request, writer, *parts[1:])
        elif parts[0] in ("exec", "attach") and len(parts) == 4:
            if upgrade == "spdy/3.1":
                await exec_spdy(request, reader, writer, parts[0], parts[3])
            elif upgrade == "websocket":
                await exec_websocket(request, reader, writer, parts[0], parts[3])
            else:
                await respond(writer, 400, "Bad Request", b"Upgrade request required")
        elif parts[0] == "portForward" and len(parts) == 3:
            if upgrade == "spdy/3.1":
                await port_forward_spdy(request, reader, writer)
            else:
                await respond(writer, 400, "Bad Request", b"Upgrade request required")
        elif parts[0] == "ws-echo" and upgrade == "websocket":
            await websocket_echo(request, reader, writer)
        else:
            await echo(request, reader, writer)
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    global RECORD
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca")
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    RECORD = args.record
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        context.load_verify_locations(args.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    secure = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    plain = await asyncio.start_server(handle, "127.0.0.1", 0)
    https_port = secure.sockets[0].getsockname()[1]
    http_port = plain.sockets[0].getsockname()[1]
    print(f"kubelet https {https_port} http {http_port}", flush=True)
    # Exit with the test that started us (its end closes our stdin).
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: gone.set() if not os.read(sys.stdin.fileno(), 1024) else None)
    await gone.wait()


if __name__ == "__main__":
    asyncio.run(main())
