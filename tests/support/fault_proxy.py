"""A loopback reverse proxy in front of a test registry, with programmable faults.

    proxy = FaultProxy(registry.url).start()          # listens on 127.0.0.1:<free port>
    proxy.add("PUT", r"/blobs/uploads/", "drop", after_bytes=1 << 20)   # cut the first blob PUT
    proxy.add("POST", r"/blobs/uploads/", "status", status=503, count=2)  # 503 twice, then pass
    proxy.add("POST", r"/blobs/uploads/", "status", status=429, headers={"Retry-After": "1"})
    proxy.add("HEAD", r"/manifests/", "stall", seconds=5)             # longer than timeout: 2
    ...push to proxy.host instead of registry.host, with plain_http...
    proxy.seen                                          # every request, in arrival order
    proxy.stop()

What it does:

- Forwards every request to the registry (one upstream connection per request) and streams
  the bodies both ways in 64 KiB blocks: a 200 MiB blob never sits in memory.
- Rewrites ``Location`` headers that name the registry's own address to the proxy's, so a
  client that follows the upload URL keeps going through the proxy. (The upstream request
  carries the registry's ``Host``, as a plain reverse proxy would.)
- Applies the first fault whose method and path regex match a request (and whose body, by its
  Content-Length, has at least ``min_body`` bytes), ``count`` times (after ``skip`` matching
  requests were let through); after that the request passes untouched.

Fault kinds:

``drop``    Forward the request line, headers and ``after_bytes`` bytes of its body, then cut
            both connections (the client's with a TCP reset): a connection lost mid-upload.
``status``  Read the request body, answer ``status`` (503, 429, ...) with ``headers``
            (e.g. ``{"Retry-After": "1"}``) and a distribution-style JSON error; nothing
            reaches the registry.
``stall``   Read the request, then wait ``seconds`` (at most ``MAX_STALL``); then drop the
            connection without answering (``forward=False``, the default: nothing reached the
            registry) or forward it and answer late (``forward=True``: the registry acted,
            the client gave up long ago).
``hook``    Forward the request untouched; only its ``before``/``after`` callbacks act.

Every kind takes ``before`` and ``after``: callables run when the fault is taken (before the
proxy reads the body, answers or forwards) and once the proxy is done with the request. A test
changes the registry's state for exactly that request with them (holding open a race window of
the registry's own), or has another client act while this one waits for its answer.

Bounded: at most ``max_connections`` connections are served at once (more wait, then are
refused), every stall is capped and interrupted by ``stop()``, upstream sockets have a timeout,
and the proxy stops by itself after ``max_lifetime`` seconds (default 600) or at interpreter
exit, whichever comes first. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import atexit
import collections
import http.client
import json
import re
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

BLOCK = 64 * 1024
MAX_STALL = 60.0
HOP_BY_HOP = frozenset((
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "proxy-connection",
))
KINDS = ("drop", "status", "stall", "hook")

Seen = collections.namedtuple("Seen", "index method uri path status fault bytes_in started answered finished")
"""One request the proxy received.

``status``: what the client was answered (None when the connection was cut or stalled away);
``fault``: the kind applied (``drop``, ``status``, ``stall``) or None when passed through;
``bytes_in``: request body bytes read from the client; ``started``: time.monotonic() when the
request line arrived; ``answered``: just before the first byte of the answer went out (None when
none did), so a client's wait after an answer is ``next.started - answered``; ``finished``: when
the proxy was done with it.
"""


class Fault:
    """One programmed fault; ``hits`` counts the times it was applied."""

    def __init__(self, method, path, kind, count=1, skip=0, min_body=0, after_bytes=0, status=503, headers=None,
                 seconds=5.0, forward=False, before=None, after=None):
        # pylint: disable=too-many-arguments
        if kind not in KINDS:
            raise ValueError("fault kind must be one of %s, not %r" % (", ".join(KINDS), kind))
        self.method = method.upper() if method else None
        self.path = re.compile(path)
        self.kind = kind
        self.count = int(count)
        self.skip = int(skip)
        self.min_body = int(min_body)
        self.after_bytes = int(after_bytes)
        self.status = int(status)
        self.headers = dict(headers or {})
        self.seconds = min(float(seconds), MAX_STALL)
        self.forward = bool(forward)
        self.before = before
        self.after = after
        self.matched = 0
        self.hits = 0
        self.errors = []  # exceptions the hooks raised (the request goes on regardless)

    def call(self, hook):
        if hook is None:
            return
        try:
            hook()
        except Exception as exc:  # pylint: disable=broad-except
            self.errors.append(exc)

    def matches(self, method, path, length=0):
        return ((self.method is None or self.method == method) and bool(self.path.search(path))
                and length >= self.min_body)

    def __repr__(self):
        return "Fault(%s %s %s, hits=%d/%d)" % (self.method or "*", self.path.pattern, self.kind, self.hits, self.count)


class _Aborted(Exception):
    """The proxy cut the connection on purpose (or the upstream went away)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, handler, proxy):
        self.proxy = proxy
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        # Bounded: wait a while for a free slot, then refuse the connection.
        if not self.proxy._slots.acquire(timeout=30):  # pylint: disable=protected-access
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.proxy._slots.release()  # pylint: disable=protected-access
            raise

    def process_request_thread(self, request, client_address):
        with self.proxy._track(request):  # pylint: disable=protected-access
            try:
                super().process_request_thread(request, client_address)
            finally:
                self.proxy._slots.release()  # pylint: disable=protected-access

    def handle_error(self, request, client_address):
        pass  # cut connections are the point of this server; keep pytest's output clean


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "onmetal-fault-proxy"
    timeout = 120  # an idle keep-alive client connection is closed after this

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    # every method goes the same way
    def do_GET(self):
        self._proxy()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # -- request body --------------------------------------------------------------------

    def _body_reader(self):
        """Yields the request body in blocks (Content-Length or chunked)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise _Aborted("client went away inside a chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    block = self.rfile.read(min(BLOCK, left))
                    if not block:
                        raise _Aborted("client went away inside a chunk")
                    left -= len(block)
                    yield block
                self.rfile.readline(3)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                block = self.rfile.read(min(BLOCK, left))
                if not block:
                    raise _Aborted("client went away inside the body")
                left -= len(block)
                yield block

    def _drain_body(self):
        count = 0
        for block in self._body_reader():
            count += len(block)
        return count

    # -- helpers -------------------------------------------------------------------------

    def _reset(self):
        """Cut the client connection with a TCP reset (SO_LINGER 0), as a dying peer would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    def _answer(self, status, headers=None, body=b""):
        self._entry["answered"] = time.monotonic()
        self.send_response_only(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- the request ---------------------------------------------------------------------

    def _proxy(self):
        started = time.monotonic()
        proxy = self.server.proxy
        path = self.path.split("?", 1)[0]
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        fault = proxy._take_fault(self.command, path, length)  # pylint: disable=protected-access
        self._entry = entry = {"method": self.command, "uri": self.path, "path": path, "status": None,
                               "fault": fault.kind if fault else None, "bytes_in": 0, "started": started,
                               "answered": None}
        try:
            if fault is not None:
                fault.call(fault.before)
            if fault is not None and fault.kind == "status":
                entry["bytes_in"] = self._drain_body()
                body = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "fault proxy: status %d" % fault.status,
                                               "detail": None}]}).encode()
                self._answer(fault.status, fault.headers, body)
                entry["status"] = fault.status
                return
            if fault is not None and fault.kind == "stall":
                if not fault.forward:
                    entry["bytes_in"] = self._drain_body()
                    proxy._stopping.wait(fault.seconds)  # pylint: disable=protected-access
                    self._reset()
                    return
            entry["status"] = self._forward(fault, entry)
        except (_Aborted, OSError, http.client.HTTPException):
            self._reset()
        finally:
            if fault is not None:
                fault.call(fault.after)
            entry["finished"] = time.monotonic()
            proxy._record(entry)  # pylint: disable=protected-access

    def _forward(self, fault, entry):
        proxy = self.server.proxy
        upstream = proxy._connect()  # pylint: disable=protected-access
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            upstream.putheader("Host", proxy.upstream_host)
            chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            for name, value in self.headers.items():
                if name.lower() in HOP_BY_HOP or name.lower() == "host":
                    continue
                upstream.putheader(name, value)
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.endheaders()
            for block in self._body_reader():
                if fault is not None and fault.kind == "drop":
                    room = fault.after_bytes - entry["bytes_in"]
                    if room <= len(block):
                        if room > 0:
                            upstream.send(block[:room])
                            entry["bytes_in"] += room
                        raise _Aborted("drop fault after %d bytes" % entry["bytes_in"])
                entry["bytes_in"] += len(block)
                upstream.send(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            if fault is not None and fault.kind == "drop":
                raise _Aborted("drop fault at the end of the body (%d bytes)" % entry["bytes_in"])
            if chunked:
                upstream.send(b"0\r\n\r\n")
            response = upstream.getresponse()
            if fault is not None and fault.kind == "stall":  # forward=True: the registry acted, answer late
                proxy._stopping.wait(fault.seconds)  # pylint: disable=protected-access
                raise _Aborted("stall fault")
            self._relay(response)
            return response.status
        finally:
            upstream.close()

    def _relay(self, response):
        proxy = self.server.proxy
        self._entry["answered"] = time.monotonic()
        self.send_response_only(response.status, response.reason)
        length = None
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in HOP_BY_HOP:
                continue
            if lower == "content-length":
                length = value
            if lower == "location":
                value = proxy.rewrite_location(value)
            self.send_header(name, value)
        bodiless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        chunked = not bodiless and length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        if response.will_close:
            self.close_connection = True
        self.end_headers()
        if bodiless:
            return
        while True:
            block = response.read(BLOCK)
            if not block:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class FaultProxy:
    """A reverse proxy on 127.0.0.1:<free port> for ``upstream`` (``http(s)://127.0.0.1:PORT``)."""

    def __init__(self, upstream, ca_path=None, max_connections=32, max_lifetime=600.0, upstream_timeout=120.0):
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only fronts loopback registries, not %s" % upstream)
        self.upstream = upstream.rstrip("/")
        self.upstream_scheme = parts.scheme
        self.upstream_host = parts.netloc
        self._upstream_address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        self._ssl = ssl.create_default_context(cafile=ca_path) if parts.scheme == "https" else None
        self.upstream_timeout = upstream_timeout
        self.max_lifetime = max_lifetime
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._faults = []
        self._seen = []
        self._connections = set()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self._timer = None
        self._stopped = False

    # -- addresses -----------------------------------------------------------------------

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def host(self):
        """``127.0.0.1:PORT``: the registry part of a reference through the proxy."""
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://%s" % self.host

    def rewrite_location(self, value):
        """An absolute URL on the registry's address becomes one on the proxy's."""
        for prefix in ("%s://%s" % (self.upstream_scheme, self.upstream_host),):
            if value.startswith(prefix):
                return self.url + value[len(prefix):]
        return value

    # -- faults and records ----------------------------------------------------------------

    def add(self, method, path, kind, **kwargs):
        """Program a fault (see the module docstring); returns it (``.hits`` counts uses)."""
        fault = Fault(method, path, kind, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self):
        """Forget every fault (records stay)."""
        with self._lock:
            self._faults = []

    def _take_fault(self, method, path, length=0):
        with self._lock:
            for fault in self._faults:
                if fault.hits >= fault.count or not fault.matches(method, path, length):
                    continue
                fault.matched += 1
                if fault.matched <= fault.skip:
                    continue
                fault.hits += 1
                return fault
        return None

    def _record(self, entry):
        with self._lock:
            entry.setdefault("finished", time.monotonic())
            self._seen.append(Seen(index=len(self._seen), **entry))

    @property
    def seen(self):
        """Every request received so far (a copy), in the order the proxy finished them."""
        with self._lock:
            return list(self._seen)

    def requests(self, method=None, path=None):
        """The recorded requests with this method and a path matching this regex."""
        pattern = re.compile(path) if path else None
        return [s for s in self.seen if (method is None or s.method == method.upper())
                and (pattern is None or pattern.search(s.path))]

    # -- connections -----------------------------------------------------------------------

    def _connect(self):
        if self._ssl is not None:
            return http.client.HTTPSConnection(*self._upstream_address, timeout=self.upstream_timeout, context=self._ssl)
        return http.client.HTTPConnection(*self._upstream_address, timeout=self.upstream_timeout)

    class _Tracked:
        def __init__(self, proxy, sock):
            self.proxy, self.sock = proxy, sock

        def __enter__(self):
            with self.proxy._lock:  # pylint: disable=protected-access
                self.proxy._connections.add(self.sock)  # pylint: disable=protected-access

        def __exit__(self, *exc):
            with self.proxy._lock:  # pylint: disable=protected-access
                self.proxy._connections.discard(self.sock)  # pylint: disable=protected-access

    def _track(self, sock):
        return self._Tracked(self, sock)

    # -- life ------------------------------------------------------------------------------

    def start(self):
        if self._server is not None:
            return self
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fault-proxy-%d" % self.port, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        atexit.register(self.stop)
        return self

    def stop(self):
        """Stop serving, end stalls, cut every open connection and wait (bounded) for the handlers. Idempotent."""
        with self._lock:
            if self._stopped or self._server is None:
                return
            self._stopped = True
        self._stopping.set()
        atexit.unregister(self.stop)
        current = threading.current_thread()
        if self._timer is not None and self._timer is not current:
            self._timer.cancel()
        if self._thread is not None and self._thread.is_alive() and self._thread is not current:
            self._server.shutdown()
            self._thread.join(5)
        deadline = time.monotonic() + 5
        while True:
            with self._lock:
                connections = list(self._connections)
            if not connections or time.monotonic() > deadline:
                break
            for sock in connections:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            time.sleep(0.05)
        self._server.server_close()

    @property
    def running(self):
        return self._server is not None and not self._stopped

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def __repr__(self):
        return "FaultProxy(%s -> %s, faults=%r)" % (self.url if self._server else "(not started)", self.upstream, self._faults)
