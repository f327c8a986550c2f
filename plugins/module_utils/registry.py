# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A registry repository as a target, on oras-py's session and credentials.

oras-py gives the auth backend: the docker config.json credentials (credHelpers,
credsStore) and the token exchange, on a requests session set up as oras-py's own
``Registry`` sets it up (built here directly, so that ``oras.provider`` and its jsonschema
are not imported by every module run). What oras-py lacks is done here, in this one place:
streamed uploads that reopen the file on every try, bounded retries with backoff on
connection errors, 408, 429 (Retry-After) and 5xx, a fresh token when the scope grows
(pull -> push), Basic challenges, per-request TLS settings, and digest checks.

Besides the target interface (target.py), two methods only a registry has, for push.py's
hash-while-uploading path on a fresh repository: ``has_tags()`` and ``stream_blob()``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import random
import time

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import (
    RETRY_STATUS,
    AuthError,
    DigestMismatch,
    NotFound,
    OnmetalError,
    RegistryError,
)
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import DigestingWriter, Stats

try:
    import requests
    import urllib3
    from http.cookiejar import DefaultCookiePolicy
    import oras.auth
    import oras.auth.utils as oras_auth_utils
    import oras.utils as oras_utils
    from urllib.parse import urljoin, urlencode
except ImportError:  # reported by the module through deps.require()
    requests = None

UPLOAD_BLOCK = 1024 * 1024
# stream_blob(): this share of a file goes out before its digest is known and HEADed, so a blob
# the repository turns out to hold already costs at most a quarter of its bytes (once).
STREAM_AHEAD_FRACTION = 0.25
# A PATCH answered so: the registry takes no chunked uploads (stream_blob then PUTs the blob whole).
CHUNKS_REFUSED = (400, 404, 405, 411, 413, 416, 501)
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0

DEFAULT_CONNECTION = {
    "username": None,
    "password": None,
    "docker_config": None,
    "validate_certs": True,
    "ca_path": None,
    "plain_http": False,
    "timeout": 60,
    "retries": 5,
}


class _FileBody:
    """A file body for requests: read in 1 MiB blocks (http.client asks for 16 KiB), counted, and
    exactly ``length`` bytes from ``offset`` whatever the file does meanwhile (the Content-Length
    goes first). A file that ends early is an error; one that grew is caught by the digest."""

    def __init__(self, path, length, offset=0, total=None):
        try:
            self._f = open(path, "rb")
            if offset:
                self._f.seek(offset)
        except (IOError, OSError) as e:
            raise OnmetalError("cannot read %s: %s" % (path, e.strerror or e))
        self._path = path
        self._length = length
        self._offset = offset
        self._total = offset + length if total is None else total
        self.sent = 0

    def __len__(self):
        return self._length

    def read(self, amt=-1):
        left = self._length - self.sent
        if left <= 0:
            return b""
        chunk = self._f.read(min(UPLOAD_BLOCK, left))
        if not chunk:
            raise DigestMismatch("%s changed while it was pushed: it ends after %d bytes, not %d as when it was "
                                 "planned; nothing was stored" % (self._path, self._offset + self.sent, self._total))
        self.sent += len(chunk)
        return chunk

    def close(self):
        self._f.close()


def _read_docker_config(path):
    try:
        with open(path, "rb") as f:
            config = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise OnmetalError("cannot read %s: %s" % (path, str(e).splitlines()[0]), option="docker_config")
    if not isinstance(config, dict):
        raise OnmetalError("%s is not a JSON object" % path, option="docker_config")
    return config


def _docker_config_path(explicit):
    if explicit:
        return os.path.expanduser(explicit)
    if os.environ.get("DOCKER_CONFIG"):
        return os.path.join(os.environ["DOCKER_CONFIG"], "config.json")
    return os.path.expanduser("~/.docker/config.json")


class RegistryTarget:
    def __init__(self, ref, connection):
        if requests is None:
            raise OnmetalError("the Python libraries 'oras' and 'requests' are required for registry references")
        self.ref = ref
        conn = dict(DEFAULT_CONNECTION)
        conn.update({k: v for k, v in connection.items() if v is not None})
        self.conn = conn
        self.stats = Stats()
        self.scheme = "http" if conn["plain_http"] else "https"
        if conn["ca_path"]:
            if not os.path.isfile(conn["ca_path"]):
                raise OnmetalError("%s is not a readable file" % conn["ca_path"], option="ca_path")
            self.verify = conn["ca_path"]
        else:
            self.verify = bool(conn["validate_certs"])
        self.timeout = conn["timeout"]
        self.retries = conn["retries"]
        self.base = "%s://%s/v2/%s" % (self.scheme, ref.registry, ref.repository)
        # The session as oras.provider.Registry(insecure=..., tls_verify=..., auth_backend="token")
        # makes it, and oras-py's token backend on it: credentials and tokens stay oras-py's.
        self.session = requests.Session()
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # as oras-py: no cookies
        if not self.verify:
            urllib3.disable_warnings()  # as oras-py: verify off was asked for
        self.session.headers["User-Agent"] = "gardenlinux.onmetal"
        self.auth = oras.auth.get_auth_backend("token", self.session, conn["plain_http"], tls_verify=self.verify)
        self._basic = None
        self._docker_config = None
        if conn["username"] is not None or conn["password"] is not None:
            if not conn["username"] or conn["password"] is None:
                raise OnmetalError("username and password go together", option="username")
            self._basic = oras_auth_utils.get_basic_auth(conn["username"], conn["password"])
        else:
            config = _docker_config_path(conn["docker_config"])
            if conn["docker_config"] and not os.path.isfile(config):
                raise OnmetalError("%s does not exist" % config, option="docker_config")
            # Parsed now, used when a registry first asks, so credential helpers run only when needed.
            self._docker_config = _read_docker_config(config) if os.path.isfile(config) else None
        self._auth_header = None

    # -- transport -------------------------------------------------------------

    def _url(self, path):
        return path if "://" in path else self.base + path

    def _credentials(self):
        """Basic credentials: the options, else the docker config.json entry or helper for this host."""
        if self._basic or not self._docker_config:
            return self._basic
        config, self._docker_config = self._docker_config, None
        auths = {}
        # docker login once wrote keys as URLs (https://host/v1/); the CLI matches them by host.
        for key, value in (config.get("auths") or {}).items():
            host = key.split("://", 1)[-1].split("/", 1)[0]
            if key == host or host not in auths:
                auths[host] = value
        hosts = list(oras_utils.iter_localhosts(self.ref.registry))
        helpers = config.get("credHelpers") or {}
        if config.get("credsStore") or any(helpers.get(host) for host in hosts):
            # As the docker CLI: a configured helper or store wins over inline auths.
            auths = {k: v for k, v in auths.items() if k not in hosts}
        self.auth._auth_config = {
            "auths": auths,
            "credsStore": config.get("credsStore"),
            "credHelpers": config.get("credHelpers") or {},
        }
        for host in hosts:
            try:
                if self.auth._load_auth(host):
                    break
            except (KeyError, ValueError, TypeError) as e:
                raise OnmetalError("the credential helper for %s answered badly (%s)" % (host, type(e).__name__),
                                   option="docker_config")
        self._basic = getattr(self.auth, "_basic_auth", None)
        return self._basic

    def _challenge(self, response):
        """Answer a 401: Basic credentials, or a bearer token for the scope asked."""
        header = response.headers.get("Www-Authenticate", "")
        scheme = header.split(" ", 1)[0].lower()
        credentials = self._credentials()
        if credentials:
            self.auth._basic_auth = credentials
        if scheme == "basic":
            if not credentials:
                raise AuthError(
                    "%s asks for credentials: set username and password, or log in (docker config.json)" % self.ref.registry,
                    option="username",
                    status=401,
                )
            return "Basic " + credentials
        if scheme == "bearer":
            challenge = oras_auth_utils.parse_auth_header(header)
            if not challenge.realm:
                raise AuthError("%s sent a bearer challenge without realm" % self.ref.registry, status=401)
            token = self.auth.request_token(challenge)
            if not token:
                if not credentials:
                    raise AuthError(
                        "%s needs credentials for %s: set username and password, or log in (docker config.json)"
                        % (self.ref.registry, challenge.scope or "this repository"),
                        option="username",
                        status=401,
                    )
                raise AuthError(
                    "%s refused a token for %s: check username and password" % (self.ref.registry, challenge.scope or "this repository"),
                    option="password",
                    status=401,
                )
            return "Bearer " + token
        raise AuthError("%s refused the request (401) with no usable challenge" % self.ref.registry, status=401)

    def _backoff(self, attempt, response=None, retry_after=None):
        """Sleep before try attempt + 1: exponential with jitter, or a 429's Retry-After (seconds)."""
        delay = min(MAX_BACKOFF, 0.5 * (2 ** attempt)) * (0.5 + random.random() / 2)
        if response is not None and response.status_code == 429:
            retry_after = response.headers.get("Retry-After", "")
        if retry_after and str(retry_after).strip().isdigit():
            delay = min(MAX_RETRY_AFTER, float(retry_after))
        time.sleep(delay)

    def request(self, method, path, headers=None, body=None, ok=(200,), stream=False, what=None, retry=True):
        """One request with auth, bounded retries and a clear error. body may be bytes or a callable
        returning a fresh file body for every try; retry=False leaves retrying to the caller."""
        url = self._url(path)
        what = what or "%s %s" % (method, url)
        attempt = 0
        authed_once = False
        while True:
            send = dict(headers or {})
            if self._auth_header:
                send["Authorization"] = self._auth_header
            data = body() if callable(body) else body
            try:
                response = self.session.request(
                    method, url, headers=send, data=data, stream=stream,
                    verify=self.verify, timeout=self.timeout, allow_redirects=True,
                )
            except requests.exceptions.SSLError as e:
                raise RegistryError(_tls_message(self.ref.registry, e), option="ca_path")
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
                if not retry:
                    raise RegistryError("lost the connection to %s while %s: %s" % (self.ref.registry, what, _short(e)),
                                        option="ref", reason=_short(e))
                if attempt >= self.retries:
                    raise _unreachable(self.ref.registry, attempt + 1, _short(e))
                attempt += 1
                self._backoff(attempt)
                continue
            finally:
                if hasattr(data, "close"):
                    data.close()
            if response.status_code == 401 and not authed_once:
                authed_once = True
                _drain(response)
                self._auth_header = self._challenge(response)
                continue
            if response.status_code in RETRY_STATUS and attempt < self.retries and retry:
                _drain(response)
                attempt += 1
                self._backoff(attempt, response)
                continue
            if response.status_code in ok:
                return response
            raise _error(response, what, self.ref, has_credentials=bool(self._basic))

    # -- target interface ------------------------------------------------------

    def resolve(self, ref=None):
        ref = ref or self.ref
        name = ref.digest or ref.tag
        if not name:
            return None
        response = self.request(
            "HEAD", "/manifests/" + name, headers={"Accept": ", ".join(mt.MANIFEST_ACCEPT)}, ok=(200, 404)
        )
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        media_type = response.headers.get("Content-Type", mt.OCI_MANIFEST).split(";")[0].strip()
        size = response.headers.get("Content-Length")
        if not digest or not size:
            data, media_type, digest = self.fetch_manifest(ref)
            size = len(data)
        if ref.digest and digest != ref.digest:
            raise DigestMismatch("%s answered %s for %s" % (self.ref.registry, digest, ref.digest), option="ref")
        return oci.descriptor(media_type, digest, int(size))

    def has_blob(self, digest):
        response = self.request("HEAD", "/blobs/" + digest, ok=(200, 404))
        return response.status_code == 200

    def has_tags(self):
        """True when the repository holds any tag (an answer other than a list or 404 counts as
        True, the careful side for push.py). n=1 keeps the answer short where the registry pages
        the list; distribution 2.8 sends every tag."""
        try:
            response = self.request("GET", "/tags/list?n=1", ok=(200, 404), what="listing the tags of %s" % self.ref.name)
        except RegistryError as e:
            if e.status is None:  # not reached, or the connection broke: as any request would
                raise
            return True
        if response.status_code == 404:
            _drain(response)
            return False
        try:
            return bool(response.json().get("tags"))
        except (ValueError, AttributeError):
            return True

    def push_blob(self, desc, source):
        digest = desc["digest"]
        if self.has_blob(digest):
            self.stats.blobs_skipped.append(digest)
            return 0
        size = len(source) if isinstance(source, bytes) else desc["size"]
        self._upload(digest, size, source)
        return self._sent(digest, size)

    def stream_blob(self, path, size, hashed):
        """Upload a file while another thread still hashes it; returns (digest, bytes stored).

        hashed: a concurrent.futures.Future of the file's (digest, size). POST; a PATCH with the
        first STREAM_AHEAD_FRACTION of the file (Content-Length and Content-Range); then, the
        digest known, a HEAD: when the repository holds the blob already, the upload is deleted
        (at its confirmed offset, so the registry drops its data) and the blob counts as skipped;
        otherwise a second PATCH with the rest and PUT ?digest= with no body. The registry checks
        the digest on that PUT: a file changed since it was hashed is refused (one clear error),
        never stored under a wrong digest. A try that fails (connection lost, 408, 429, 5xx) goes
        on as push_blob does, the digest known: HEAD, then POST and PUT from the start of the
        reopened file, within the same retries; so does a registry that refuses the first PATCH
        (no chunked uploads), without counting it as a try.
        """
        ahead = min(size, max(UPLOAD_BLOCK, int(size * STREAM_AHEAD_FRACTION)))
        digest = None
        location = self._start_upload(path)
        try:
            location = self._patch(location, path, 0, ahead, size)
            digest = _hashed_digest(hashed, path, size)
            if self.has_blob(digest):
                self._cancel(location)
                self.stats.blobs_skipped.append(digest)
                return digest, 0
            if ahead < size:
                location = self._patch(location, path, ahead, size, size)
            response = self.request("PUT", _with_digest(location, digest), ok=(201,), retry=False,
                                    what="closing the upload of %s" % digest)
            self._check_stored(response, digest)
            return digest, self._sent(digest, size)
        except RegistryError as e:
            failed = e
        except OnmetalError:
            self._cancel(location)
            raise
        # A registry that takes no chunked uploads refuses the first PATCH: PUT the blob whole.
        refused = digest is None and failed.status in CHUNKS_REFUSED and not isinstance(failed, AuthError)
        if not refused:
            if not failed.retryable or self.retries < 1:
                self._cancel(location)
                raise self._upload_error(failed, digest, path, 1)
            self._backoff(1, retry_after=_retry_after(failed))
        self._cancel(location)  # after the backoff: a 429 asked for quiet
        # HEAD first: the closing PUT may have gone through after all, or another push was quicker
        return self._push_file(_hashed_digest(hashed, path, size), size, path, tries=0 if refused else 1)

    def _push_file(self, digest, size, path, tries=0):
        """stream_blob's way back to push_blob's: HEAD, then a whole upload (tries: those spent)."""
        if self.has_blob(digest):
            self.stats.blobs_skipped.append(digest)
            return digest, 0
        self._upload(digest, size, path, tries=tries)
        return digest, self._sent(digest, size)

    def _patch(self, location, path, start, end, size):
        """PATCH bytes start..end-1 of the file to the upload at location; returns the next location."""
        what = "uploading %s" % path
        response = self.request(
            "PATCH", location, ok=(202,), what=what, retry=False,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(end - start),
                     "Content-Range": "%d-%d" % (start, end - 1)},
            body=lambda: _FileBody(path, end - start, offset=start, total=size),
        )
        received = response.headers.get("Range", "")
        _drain(response)
        if received and received.replace("bytes=", "", 1) != "0-%d" % (end - 1):
            raise RegistryError("%s has %s of %s, not 0-%d" % (self.ref.registry, received, path, end - 1),
                                reason="the upload of %s was cut short" % path)
        return self._location(response, what)

    def _sent(self, digest, size):
        self.stats.blobs_sent.append(digest)
        self.stats.bytes_sent += size
        return size

    def _location(self, response, what):
        location = response.headers.get("Location")
        if not location:
            raise RegistryError("%s answered without a Location while %s" % (self.ref.registry, what))
        return urljoin(self.base + "/", location)

    def _start_upload(self, what):
        # The POST has no body, so the push-scoped token is fetched before any stream starts.
        response = self.request("POST", "/blobs/uploads/", ok=(202,), what="starting the upload of %s" % what)
        return self._location(response, "starting the upload of %s" % what)

    def _cancel(self, location):
        """Best effort: delete an upload that will not be finished. distribution deletes it only at the
        offset it last confirmed (location's state; even a GET of its status is refused at another):
        what a cut connection or a refused body left stays until its upload purging (7 days by
        default). With bearer tokens the DELETE needs the delete action: a token for it is asked for,
        and the push token is kept for what follows; without delete rights the upload stays too."""
        token = self._auth_header
        try:
            _drain(self.request("DELETE", location, ok=(204, 404), retry=False, what="cancelling an upload"))
        except OnmetalError:
            pass
        finally:
            self._auth_header = token

    def _upload(self, digest, size, source, tries=0):
        """POST, then one PUT ?digest= carrying the whole blob. A failed try (connection lost, 408,
        429 after its Retry-After, 5xx) starts a new upload and reopens the file, up to retries + 1
        tries in all; tries: those already spent on this blob (a streamed upload that broke off)."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        body = (lambda: source) if isinstance(source, bytes) else (lambda: _FileBody(source, size))
        while True:
            tries += 1
            location = self._start_upload(digest)
            try:
                response = self.request("PUT", _with_digest(location, digest), headers=headers, body=body,
                                        ok=(201,), what="uploading %s" % digest, retry=False)
            except RegistryError as e:
                # A dropped or refused PUT leaves the upload session unusable: start a new one.
                if not e.retryable or tries > self.retries:
                    self._cancel(location)
                    raise self._upload_error(e, digest, source, tries)
                self._backoff(tries, retry_after=_retry_after(e))
                self._cancel(location)  # after the backoff: a 429 asked for quiet
                continue
            except OnmetalError:  # the file: unreadable, or shorter than planned
                self._cancel(location)
                raise
            self._check_stored(response, digest)
            return

    def _check_stored(self, response, digest):
        answered = response.headers.get("Docker-Content-Digest")
        _drain(response)
        if answered and answered != digest:
            raise DigestMismatch("%s stored the blob %s as %s" % (self.ref.registry, digest, answered))

    def _upload_error(self, error, digest, source, tries):
        """The error to give up with: the tries counted over the whole blob, a changed file named."""
        if error.status is None and error.details.get("reason"):
            return RegistryError("cannot upload %s to %s after %d %s: %s" % (
                digest or source, self.ref.registry, tries, "try" if tries == 1 else "tries", error.details["reason"]),
                option="ref", reason=error.details["reason"])
        if error.status == 400 and "DIGEST_INVALID" in error.details.get("codes", ()):
            if isinstance(source, bytes):
                return DigestMismatch("%s refused the blob %s: its bytes do not match that digest" % (self.ref.registry, digest))
            return DigestMismatch(
                "%s changed while it was pushed: the bytes read from it do not have the digest %s it had when hashed "
                "(%s checked, and stored nothing); push again once the file is final" % (source, digest, self.ref.registry)
            )
        return error

    def _get(self, path, digest, size, fileobj, what):
        response = self.request("GET", path, ok=(200, 404), stream=True, what=what)
        if response.status_code == 404:
            raise NotFound("%s not found in %s" % (what, self.ref.name))
        writer = DigestingWriter(fileobj, digest, size, what=what)
        try:
            for chunk in response.iter_content(UPLOAD_BLOCK):
                writer.write(chunk)
        except requests.exceptions.RequestException as e:
            raise RegistryError("reading %s from %s broke off: %s" % (what, self.ref.registry, _short(e)))
        finally:
            response.close()
        writer.check()
        return writer.count

    def read_blob(self, digest, size=None):
        buf = _Buffer()
        self._get("/blobs/" + digest, digest, size, buf, "blob %s" % digest)
        return bytes(buf.data)

    def copy_blob_to(self, digest, size, fileobj):
        return self._get("/blobs/" + digest, digest, size, fileobj, "blob %s" % digest)

    def fetch_manifest(self, ref=None):
        ref = ref or self.ref
        name = ref.digest or ref.tag
        response = self.request(
            "GET", "/manifests/" + name, headers={"Accept": ", ".join(mt.MANIFEST_ACCEPT)}, ok=(200, 404)
        )
        if response.status_code == 404:
            raise NotFound("%s not found" % ref, option="ref")
        data = response.content
        digest = oci.sha256_digest(data)
        expected = ref.digest or response.headers.get("Docker-Content-Digest")
        if expected and expected != digest:
            raise DigestMismatch(
                "the manifest %s sent for %s has digest %s, not %s" % (self.ref.registry, ref, digest, expected), option="ref"
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            media_type = oci.parse_json_object(data, "manifest of %s" % ref).get("mediaType") or media_type
        except OnmetalError:
            pass
        return data, media_type or mt.OCI_MANIFEST, digest

    def push_manifest(self, data, media_type, tag=None, retry=True):
        """retry=False: one try, for a read-modify-write caller that must re-read before writing again."""
        digest = oci.sha256_digest(data)
        attempt = 0
        while True:
            try:
                response = self.request(
                    "PUT", "/manifests/" + (tag or digest), headers={"Content-Type": media_type}, body=data,
                    ok=(201, 200), what="writing the manifest %s" % (tag or digest), retry=retry,
                )
                break
            except RegistryError as e:
                # Every blob was pushed before, so an "unknown blob" here is the registry's link race.
                if not retry or not e.manifest_race or attempt >= self.retries:
                    raise
                attempt += 1
                self._backoff(attempt)
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise DigestMismatch("%s stored the manifest as %s, not %s" % (self.ref.registry, answered, digest))
        self.stats.manifests_written.append(digest)
        self.stats.bytes_sent += len(data)
        if tag:
            self.stats.tags_written.append(tag)
        return digest

    def tag(self, digest, tag):
        data, media_type = self.fetch_manifest(self.ref.replace(tag=None, digest=digest))[:2]
        self.push_manifest(data, media_type, tag)
        self.stats.manifests_written.pop()

    def list_tags(self):
        tags = []
        path = "/tags/list?n=1000"
        for dummy in range(1000):
            response = self.request("GET", path, ok=(200, 404))
            if response.status_code == 404:
                return []
            tags.extend(response.json().get("tags") or [])
            link = response.headers.get("Link", "")
            if 'rel="next"' not in link:
                break
            path = urljoin(self.base + "/", link.split(";")[0].strip("<> "))
        return sorted(set(tags))

    def blob_url(self, digest):
        return "%s://%s/v2/%s/blobs/%s" % (self.scheme, self.ref.registry, self.ref.repository, digest)


def _hashed_digest(hashed, path, size):
    """stream_blob: the digest from the hashing thread, once it has it; the file kept its size."""
    digest, hashed_size = hashed.result()
    if hashed_size != size:
        raise DigestMismatch("%s changed while it was pushed: it had %d bytes when planned, %d when hashed; "
                             "nothing was stored" % (path, size, hashed_size))
    return digest


class _Buffer:
    def __init__(self):
        self.data = bytearray()

    def write(self, chunk):
        self.data += chunk


def _drain(response):
    try:
        response.content
    except Exception:
        pass
    response.close()


def _with_digest(location, digest):
    return location + ("&" if "?" in location else "?") + urlencode({"digest": digest})


def _unreachable(registry, tries, reason):
    return RegistryError("cannot reach %s after %d %s: %s" % (registry, tries, "try" if tries == 1 else "tries", reason),
                         option="ref", reason=reason)


def _retry_after(error):
    """A refused try's Retry-After, for _backoff: only a 429's counts."""
    return error.details.get("retry_after") if error.status == 429 else None


def _short(exc):
    # requests nests the root cause (ConnectionError > MaxRetryError.reason > NewConnectionError,
    # or > ProtocolError('Connection aborted.', RemoteDisconnected(...))): the innermost is what a user needs.
    for dummy in range(8):
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            nested = [arg for arg in getattr(exc, "args", ()) if isinstance(arg, BaseException)]
            inner = nested[-1] if nested else None
        if inner is None or inner is exc:
            break
        exc = inner
    text = str(exc) or type(exc).__name__
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip("()'\" ")[:300]


def _tls_message(registry, exc):
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            "cannot verify the TLS certificate of %s: give its CA in ca_path "
            "(or validate_certs: false to skip the check)" % registry
        )
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return "%s does not speak TLS: set plain_http: true for a plain HTTP registry" % registry
    return "TLS with %s failed: %s" % (registry, _short(exc))


def _error(response, what, ref, has_credentials=True):
    status = response.status_code
    detail = ""
    codes = []
    try:
        errors = response.json().get("errors") or []
        codes = [e.get("code") for e in errors if isinstance(e, dict)]
        detail = "; ".join("%s: %s" % (e.get("code"), e.get("message")) for e in errors if isinstance(e, dict))
    except Exception:
        detail = (response.text or "")[:200].strip()
    if status == 401 and "insufficient_scope" in response.headers.get("Www-Authenticate", ""):
        return AuthError("%s did not grant these credentials the access needed for %s" % (ref.registry, what),
                         option="username", status=status)
    if status == 401 and not has_credentials:
        return AuthError("%s needs credentials (401) for %s: set username and password, or log in (docker config.json)"
                         % (ref.registry, what), option="username", status=status)
    if status == 401:
        return AuthError("%s refused the credentials (401) while %s" % (ref.registry, what), option="password", status=status)
    if status == 403:
        return AuthError("%s denied access (403) while %s" % (ref.registry, what), option="username", status=status)
    message = "%s answered %d %s while %s" % (ref.registry, status, response.reason or "", what)
    if detail:
        message += " (%s)" % detail
    return RegistryError(message, status=status, retry_after=response.headers.get("Retry-After"), codes=codes)
