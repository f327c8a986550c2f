"""A real Docker-token-spec auth server on loopback, and a distribution registry that trusts it.

    server = TokenServer(workdir, users={"alice": "secret"}).start()
    reg = TokenRegistry(tmp, server).start()        # distribution 2.8 with ``auth.token``
    ...push with alice/secret...
    assert ("alice", "repository:x/y:pull,push") in server.scopes()
    reg.stop(); server.stop()

The server answers ``GET /token?service=S&scope=T:NAME:A,B`` (``scope`` may repeat, and one
value may hold several space-separated scopes) with ``{"token", "access_token", "expires_in",
"issued_at"}``. The token is a JWT signed ES256 with a throw-away P-256 key; its header
carries ``x5c`` = [the self-signed certificate of that key], which is what distribution 2.8's
``registry/auth/token`` checks first: the x5c chain must verify against ``rootcertbundle``
(``cert_path`` here), ``iss`` must equal ``issuer``, ``aud`` must equal ``service``, ``exp``
/ ``nbf`` must hold (60 s leeway), and the signature is JWS-style raw ``r || s`` (not DER).

Credentials: HTTP Basic. A known user with the right password is granted exactly the actions
asked for (intersected with ``permissions[user]`` when given). A wrong password or unknown
user gets 401. No credentials: ``anonymous="refuse"`` (default) answers 401; ``"empty"``
grants a token with no access at all, as Docker Hub does for a private repository.

Every request to ``/token`` is recorded (``requests``), whatever its outcome, so a test can
assert which scopes a client asked for. Listens on 127.0.0.1 only, on a free port.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime
import json
import os
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from .registry import Registry

TOKEN_TTL = 300

TokenRequest = collections.namedtuple("TokenRequest", "user scopes service status granted authorization")
"""One request to ``/token``.

``user``: the Basic user name sent (None when anonymous; also set when the password was wrong);
``scopes``: tuple of scope strings as asked (``repository:NAME:pull,push``); ``service``: the
``service`` parameter; ``status``: the HTTP status answered; ``granted``: the token's ``access``
claim (list of dicts) or None when no token was issued; ``authorization``: the scheme of the
Authorization header (``basic``, ``bearer``, or None).
"""


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_scope(scope):
    """``repository:NAME:pull,push`` -> ("repository", "NAME", ["pull", "push"]), or None.

    The name sits between the first and the last colon (a name may hold a colon in theory).
    """
    if scope.count(":") < 2:
        return None
    kind, rest = scope.split(":", 1)
    name, actions = rest.rsplit(":", 1)
    return kind, name, [action for action in actions.split(",") if action]


def _self_signed(key, common_name):
    """A self-signed CA certificate for ``key``: root of trust and x5c leaf at once.

    Go's x509 verification accepts a leaf that is itself in the root pool.
    """
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gardenlinux.onmetal tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


class TokenServer:
    """Docker token auth server (``/token``) on 127.0.0.1 in a thread of this process."""

    # pylint: disable=too-many-instance-attributes

    def __init__(self, workdir, users=None, permissions=None, anonymous="refuse",
                 service="onmetal-test-registry", issuer="onmetal-test-token-server", ttl=TOKEN_TTL):
        # pylint: disable=too-many-arguments
        if anonymous not in ("refuse", "empty"):
            raise ValueError("anonymous must be 'refuse' or 'empty'")
        self.workdir = os.path.abspath(str(workdir))
        os.makedirs(self.workdir, exist_ok=True)
        self.users = dict(users if users is not None else {"onmetal": secrets.token_urlsafe(12)})
        self.permissions = {user: frozenset(actions) for user, actions in (permissions or {}).items()}
        self.anonymous = anonymous
        self.service = service
        self.issuer = issuer
        self.ttl = int(ttl)
        self.requests = []
        self._lock = threading.Lock()
        self._server = None
        self._thread = None
        self._port = None          # kept across stop()/start(): the registry's config names it

        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = _self_signed(self._key, "onmetal test token issuer")
        self.cert_path = os.path.join(self.workdir, "token-issuer.crt")   # distribution's rootcertbundle
        with open(self.cert_path, "wb") as handle:
            handle.write(self._cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode("ascii")

    # --- addresses ----------------------------------------------------------------------------

    @property
    def port(self):
        return self._port

    @property
    def url(self):
        if self._port is None:
            raise RuntimeError("the token server has not been started yet")
        return "http://127.0.0.1:%d" % self._port

    @property
    def realm(self):
        """What the registry puts in its ``Bearer realm=...`` challenge."""
        return self.url + "/token"

    @property
    def username(self):
        """The first user (handy when there is only one)."""
        return next(iter(self.users))

    @property
    def password(self):
        return self.users[self.username]

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self):
        return self._server is not None

    def start(self):
        """Serve (again: a restart keeps the port, the key and the record). Returns self."""
        if self._server is not None:
            return self
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "onmetal-test-token-server"
            timeout = 30  # an idle keep-alive connection frees its thread after this many seconds

            def do_GET(self):  # noqa: N802  (http.server's naming)
                owner._handle(self)

            def log_message(self, format, *args):  # pylint: disable=redefined-builtin
                pass  # the record in owner.requests is the log

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port or 0), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="token-server", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        """Stop serving and close the socket. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def __repr__(self):
        where = ("127.0.0.1:%d" % self._port) if self._port else "never started"
        return "TokenServer(%s, running=%s, users=%r)" % (where, self.running, sorted(self.users))

    # --- what was asked -----------------------------------------------------------------------

    def mark(self):
        """A position in ``requests``; pass it to ``requests_since``/``scopes``."""
        with self._lock:
            return len(self.requests)

    def requests_since(self, mark=0):
        with self._lock:
            return list(self.requests[mark:])

    def scopes(self, mark=0):
        """``[(user, scope), ...]`` for every scope asked after ``mark``, in order."""
        return [(request.user, scope) for request in self.requests_since(mark) for scope in request.scopes]

    def actions_asked(self, repository, mark=0):
        """The set of action sets asked for ``repository``: e.g. {("pull",), ("pull", "push")}."""
        result = set()
        for dummy, scope in self.scopes(mark):
            parsed = parse_scope(scope)
            if parsed and parsed[0] == "repository" and parsed[1] == repository:
                result.add(tuple(sorted(parsed[2])))
        return result

    # --- tokens -------------------------------------------------------------------------------

    def make_token(self, subject, access, audience=None, lifetime=None):
        """A signed JWT as distribution's token access controller verifies it."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": subject or "",
            "aud": audience or self.service,
            "exp": now + (self.ttl if lifetime is None else int(lifetime)),
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = "%s.%s" % (_b64url(json.dumps(header, separators=(",", ":")).encode()),
                                   _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS ES256: raw r || s
        return signing_input + "." + _b64url(signature)

    def _check_basic(self, header):
        """(user, ok) from an Authorization header; user None when there is none."""
        if not header:
            return None, False
        scheme, dummy, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None, False
        user, sep, password = decoded.partition(":")
        if not sep:
            return user, False
        expected = self.users.get(user)
        return user, expected is not None and secrets.compare_digest(expected, password)

    def _grant(self, user, scopes):
        allowed = self.permissions.get(user)
        access = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if not parsed:
                continue
            kind, name, actions = parsed
            if allowed is not None:
                actions = [action for action in actions if action in allowed or "*" in allowed]
            access.append({"type": kind, "name": name, "actions": actions})
        return access

    def _handle(self, handler):
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        scopes = tuple(scope for value in query.get("scope", []) for scope in value.split(" ") if scope)
        service = (query.get("service") or [None])[0]
        header = handler.headers.get("Authorization")
        scheme = header.split(" ", 1)[0].lower() if header else None
        user, ok = self._check_basic(header)

        status, granted, body = 200, None, None
        if parts.path != "/token":
            status, body = 404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]}
        elif service != self.service:
            status, body = 400, {"errors": [{"code": "BAD_SERVICE", "message": "unknown service %r" % service}]}
        elif header and not ok:
            status, body = 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
        elif not header and self.anonymous == "refuse":
            status, body = 401, {"errors": [{"code": "UNAUTHORIZED", "message": "credentials required"}]}
        else:
            granted = self._grant(user, scopes) if ok else []
            token = self.make_token(user if ok else "", granted)
            body = {
                "token": token,
                "access_token": token,
                "expires_in": self.ttl,
                "issued_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        with self._lock:
            self.requests.append(TokenRequest(user, scopes, service, status, granted, scheme))

        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        if status == 401:
            handler.send_header("WWW-Authenticate", 'Basic realm="onmetal-test-token-server"')
        handler.end_headers()
        handler.wfile.write(data)


class TokenRegistry(Registry):
    """A distribution registry whose ``auth`` is ``token`` against ``token_server``.

    Everything else (storage, logs, TLS if asked, mark/writes_since, stop/kill/restart) is
    ``Registry``'s. ``credentials`` are the token server's first user (for ``docker_config()``);
    the helper's own request-log sentinel goes without credentials: the registry answers it
    401, and its access-log line is all ``mark()`` needs.
    """

    def __init__(self, workdir, token_server, **kwargs):
        if kwargs.get("auth"):
            raise ValueError("TokenRegistry brings its own auth (token); do not pass auth=True")
        self.token_server = token_server
        super().__init__(workdir, **kwargs)

    def start(self):
        self.token_server.start()       # the config names its realm
        return super().start()

    def _config(self):
        config = super()._config()
        config["auth"] = {
            "token": {
                "realm": self.token_server.realm,
                "service": self.token_server.service,
                "issuer": self.token_server.issuer,
                "rootcertbundle": self.token_server.cert_path,
            }
        }
        return config

    @property
    def credentials(self):
        return (self.token_server.username, self.token_server.password)

    def requests_kwargs(self):
        # no Basic auth towards a token registry: a 401 on the sentinel is expected and logged
        return {"verify": self.verify, "auth": None}

    def docker_config(self, directory):
        os.makedirs(directory, exist_ok=True)
        token = base64.b64encode(("%s:%s" % self.credentials).encode()).decode()
        path = os.path.join(directory, "config.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"auths": {self.host: {"auth": token}}}, handle)
        os.chmod(path, 0o600)
        return path


def start_token_registry(workdir, token_server, **kwargs):
    """Start ``token_server`` (if it is not yet) and a ``TokenRegistry`` using it; return the registry."""
    return TokenRegistry(workdir, token_server, **kwargs).start()
