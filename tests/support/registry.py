"""Run a real registry (Debian's ``docker-registry``, CNCF distribution 2.8) on loopback for tests.

    reg = Registry(workdir, tls=True, auth=True).start()
    mark = reg.mark()
    ...push something...
    assert reg.writes_since(mark) == []      # "the second push sent nothing"
    reg.stop()

Each instance has its own storage folder, config and logs under ``workdir`` and listens on
127.0.0.1 only. ``stop()``/``start()`` (and ``kill()``, a crash) keep the port, the storage,
the TLS material, the password and the upload secret, so a test can crash the registry
mid-push and bring the same registry back.

Requests are read from distribution's access log (Apache combined format on its stdout,
``log.accesslog.disabled: false``): one line per request whatever its status, with method,
URI and status. The application log (JSON, on stderr) goes to ``registry.log``.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time

import requests

from .tls import make_tls_files

WRITE_METHODS = frozenset(("PUT", "POST", "PATCH", "DELETE"))
SYNC_PARAM = "onmetal-test-sync"

_ACCESS_RE = re.compile(
    r'^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>[A-Z]+) (?P<uri>\S+) (?P<proto>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-)'
    r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?'
)

Request = collections.namedtuple("Request", "method uri path status size user_agent line")
"""One logged request: ``path`` is ``uri`` without its query string; ``status`` an int."""


class RegistryUnavailable(RuntimeError):
    """A tool the registry needs is missing (``docker-registry``, or htpasswd for auth)."""


def find_registry_binary():
    """Path of distribution's registry binary, or None. ``ONMETAL_DOCKER_REGISTRY`` overrides."""
    override = os.environ.get("ONMETAL_DOCKER_REGISTRY")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("docker-registry") or shutil.which("registry")


def htpasswd_line(username, password):
    """A bcrypt htpasswd line (``user:$2y$...``) as distribution's htpasswd auth wants it."""
    tool = shutil.which("htpasswd")
    if tool:
        out = subprocess.run([tool, "-Bbn", username, password], check=True, capture_output=True,
                             text=True, stdin=subprocess.DEVNULL, timeout=30).stdout
        return out.strip().splitlines()[0]
    try:
        import bcrypt  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise RegistryUnavailable(
            "htpasswd (Debian package apache2-utils) is not installed and Python bcrypt is not "
            "available: cannot make the registry's password file") from None
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return "%s:%s" % (username, hashed)


def free_port(host="127.0.0.1"):
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent():
    """preexec_fn: have the kernel SIGKILL the registry if the test process dies (Linux)."""
    try:
        import ctypes  # pylint: disable=import-outside-toplevel
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pylint: disable=broad-except
        pass


class Registry:
    """A distribution registry process on 127.0.0.1 with its own storage, config and logs."""

    # pylint: disable=too-many-instance-attributes

    def __init__(self, workdir, tls=False, auth=False, username="onmetal", password=None,
                 port=None, binary=None, start_timeout=10.0, stop_timeout=5.0, log_level="info"):
        # pylint: disable=too-many-arguments
        self.workdir = os.path.abspath(str(workdir))
        self.tls = bool(tls)
        self.auth = bool(auth)
        self.username = username if self.auth else None
        self.password = (password or secrets.token_urlsafe(12)) if self.auth else None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_level = log_level
        self.binary = binary or find_registry_binary()
        if not self.binary:
            raise RegistryUnavailable(
                "docker-registry is not installed (Debian package docker-registry; scripts/setup.sh installs it)")

        self._fixed_port = port is not None
        self.port = port or free_port()
        self.storage_dir = os.path.join(self.workdir, "storage")
        self.config_path = os.path.join(self.workdir, "config.yml")
        self.log_path = os.path.join(self.workdir, "registry.log")         # application log, JSON lines
        self.access_log_path = os.path.join(self.workdir, "access.log")    # one line per request
        self.htpasswd_path = os.path.join(self.workdir, "htpasswd") if self.auth else None
        self.ca_path = None
        self.cert_dir = None
        self._tls_files = None
        self._secret = secrets.token_hex(16)  # upload state HMAC key: kept across restarts
        self._process = None
        self._sync_counter = 0

        os.makedirs(self.storage_dir, exist_ok=True)
        if self.tls:
            self._tls_files = make_tls_files(os.path.join(self.workdir, "tls"))
            self.ca_path = self._tls_files.ca_cert
            # a folder holding only the CA, as `skopeo --cert-dir` / containers' certs.d want it
            self.cert_dir = os.path.join(self.workdir, "certs.d")
            os.makedirs(self.cert_dir, exist_ok=True)
            shutil.copyfile(self.ca_path, os.path.join(self.cert_dir, "ca.crt"))
        if self.auth:
            with open(self.htpasswd_path, "w", encoding="utf-8") as handle:
                handle.write(htpasswd_line(self.username, self.password) + "\n")

    # --- addresses and client settings ---------------------------------------------------------

    @property
    def host(self):
        """``127.0.0.1:PORT``: the registry part of a reference."""
        return "127.0.0.1:%d" % self.port

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def url(self):
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (no trailing slash)."""
        return "%s://%s" % (self.scheme, self.host)

    @property
    def credentials(self):
        """``(username, password)`` for basic auth, or None."""
        return (self.username, self.password) if self.auth else None

    @property
    def verify(self):
        """What to pass as ``verify=`` to requests: the CA file, or True for plain HTTP.

        Pass it per request: the REQUESTS_CA_BUNDLE environment variable overrides
        ``Session.verify``.
        """
        return self.ca_path if self.tls else True

    def requests_kwargs(self):
        """``dict(verify=..., auth=...)`` for a ``requests`` call to this registry."""
        return {"verify": self.verify, "auth": self.credentials}

    def docker_config(self, directory):
        """Write ``DIRECTORY/config.json`` with this registry's credentials; return its path.

        Usable as ``DOCKER_CONFIG=DIRECTORY``, ``oras --registry-config PATH``,
        ``skopeo --authfile PATH``.
        """
        os.makedirs(directory, exist_ok=True)
        auths = {}
        if self.auth:
            token = base64.b64encode(("%s:%s" % self.credentials).encode()).decode()
            auths[self.host] = {"auth": token}
        path = os.path.join(directory, "config.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"auths": auths}, handle)
        os.chmod(path, 0o600)
        return path

    def blob_data_path(self, digest):
        """Where the filesystem driver keeps a blob's bytes (exists only once it was pushed)."""
        algorithm, hexdigest = digest.split(":", 1)
        return os.path.join(self.storage_dir, "docker", "registry", "v2", "blobs", algorithm,
                            hexdigest[:2], hexdigest, "data")

    def uploads_left(self, repository):
        """Sizes of the unfinished uploads' data in a repository (a cancelled upload leaves its
        folder, not its data)."""
        folder = os.path.join(self.storage_dir, "docker", "registry", "v2", "repositories", repository, "_uploads")
        return [os.path.getsize(os.path.join(root, "data")) for root, dummy, files in os.walk(folder) if "data" in files]

    # --- process ----------------------------------------------------------------------------------

    def _config(self):
        config = {
            "version": "0.1",
            "log": {
                "level": self.log_level,
                "formatter": "json",
                "accesslog": {"disabled": False},
            },
            "storage": {
                "filesystem": {"rootdirectory": self.storage_dir},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                "secret": self._secret,
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.tls:
            config["http"]["tls"] = {"certificate": self._tls_files.cert, "key": self._tls_files.key}
        if self.auth:
            config["auth"] = {"htpasswd": {"realm": "gardenlinux-onmetal-tests", "path": self.htpasswd_path}}
        return config

    @property
    def pid(self):
        return self._process.pid if self._process else None

    @property
    def running(self):
        return self._process is not None and self._process.poll() is None

    def start(self):
        """Start (or restart) the registry and wait until it answers ``/v2/``. Returns self."""
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._start_once()
                return self
            except RuntimeError as exc:
                if "address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                self.port = free_port()  # lost the race for the port: take another
        return self

    def _start_once(self):
        # JSON is YAML: distribution reads this file with its YAML parser
        with open(self.config_path, "w", encoding="utf-8") as handle:
            json.dump(self._config(), handle, indent=2)
        log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.access_log_path, "ab") as access, open(self.log_path, "ab") as applog:
            # pylint: disable-next=consider-using-with,subprocess-popen-preexec-fn
            self._process = subprocess.Popen(
                [self.binary, "serve", self.config_path],
                stdin=subprocess.DEVNULL, stdout=access, stderr=applog,
                cwd=self.workdir, start_new_session=True, preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError("docker-registry exited with %s while starting:\n%s"
                                   % (code, self._log_tail(log_offset)))
            try:
                response = requests.get("%s/v2/?%s=ready" % (self.url, SYNC_PARAM), verify=self.verify, timeout=1)
                if response.status_code in (200, 401):
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("docker-registry did not answer on %s within %.0f s:\n%s"
                                   % (self.url, self.start_timeout, self._log_tail(log_offset)))
            time.sleep(0.05)

    def _log_tail(self, offset=0, limit=4000):
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")[-limit:]
        except OSError as exc:
            return "(no log: %s)" % exc

    def stop(self):
        """Stop gracefully (SIGTERM), SIGKILL after ``stop_timeout`` seconds. Idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(self.stop_timeout)

    def kill(self):
        """Crash the registry (SIGKILL, no cleanup): what a test of "fails halfway" wants."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(self.stop_timeout)

    def restart(self):
        self.stop()
        return self.start()

    def close(self):
        """Stop and delete the working folder (storage, logs, keys)."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def __repr__(self):
        return "Registry(%s, running=%s, workdir=%r)" % (self.url, self.running, self.workdir)

    # --- request log ------------------------------------------------------------------------------

    def _sync(self, timeout=5.0):
        """Make sure every request answered so far is in the access log.

        distribution writes an access-log line when the handler returns, which can be just after
        the client has its response. Send a sentinel GET /v2/ and wait for its line: the lines
        of the requests answered before it are written by then.
        """
        if not self.running:
            return
        self._sync_counter += 1
        token = "%s=%d-%s" % (SYNC_PARAM, self._sync_counter, secrets.token_hex(4))
        try:
            requests.get("%s/v2/?%s" % (self.url, token), timeout=timeout, **self.requests_kwargs())
        except requests.RequestException:
            return  # not answering (crashed, stopping): the log holds what it holds
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.access_log_path, "rb") as handle:
                if token.encode() in handle.read():
                    return
            time.sleep(0.01)

    def _lines(self):
        try:
            with open(self.access_log_path, "r", encoding="utf-8", errors="replace") as handle:
                return handle.read().splitlines()
        except FileNotFoundError:
            return []

    def mark(self):
        """A position in the request log; pass it to ``requests_since``/``writes_since``."""
        self._sync()
        return len(self._lines())

    def requests_since(self, mark=0):
        """Every request the registry logged after ``mark``, in order.

        The helper's own requests (readiness probes, sync sentinels) are left out.
        """
        self._sync()
        result = []
        for line in self._lines()[mark:]:
            match = _ACCESS_RE.match(line)
            if not match:
                continue
            uri = match.group("uri")
            if SYNC_PARAM in uri:
                continue
            size = match.group("size")
            result.append(Request(
                method=match.group("method"),
                uri=uri,
                path=uri.split("?", 1)[0],
                status=int(match.group("status")),
                size=0 if size == "-" else int(size),
                user_agent=match.group("agent"),
                line=line,
            ))
        return result

    def writes_since(self, mark=0):
        """The requests after ``mark`` that could change the registry: PUT, POST, PATCH, DELETE.

        Failed ones count too (a refused PUT was still an attempt to write).
        """
        return [request for request in self.requests_since(mark) if request.method in WRITE_METHODS]
