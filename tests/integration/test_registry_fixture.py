"""The registry fixtures work: a real docker-registry on loopback, its request log, TLS and auth.

Plain ``requests`` against the distribution API, no collection code: if these fail, the
collection's integration tests cannot be trusted either.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from urllib.parse import urljoin

import pytest
import requests

TIMEOUT = 30


def _repo():
    return "fixture-test/%s" % uuid.uuid4().hex[:12]


def _push_blob(reg, repo, data):
    """Monolithic upload (POST, then PUT ?digest=); return the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = requests.post("%s/v2/%s/blobs/uploads/" % (reg.url, repo), timeout=TIMEOUT,
                             **reg.requests_kwargs())
    assert response.status_code == 202, response.text
    location = urljoin(reg.url + "/", response.headers["Location"])
    separator = "&" if "?" in location else "?"
    response = requests.put(location + separator + "digest=" + digest, data=data, timeout=TIMEOUT,
                            headers={"Content-Type": "application/octet-stream"}, **reg.requests_kwargs())
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    return digest


def _head_blob(reg, repo, digest):
    return requests.head("%s/v2/%s/blobs/%s" % (reg.url, repo, digest), timeout=TIMEOUT,
                         **reg.requests_kwargs())


def test_registry_is_on_loopback(registry):
    assert registry.host.startswith("127.0.0.1:")
    assert registry.url == "http://" + registry.host
    assert registry.running
    with open(registry.config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    assert config["http"]["addr"] == registry.host
    assert config["storage"]["delete"]["enabled"] is True
    assert registry.ca_path is None and registry.credentials is None


def test_push_blob_then_head_is_not_a_write(registry):
    repo = _repo()
    data = b"onmetal test blob\n"

    mark = registry.mark()
    digest = _push_blob(registry, repo, data)
    writes = registry.writes_since(mark)
    assert [(w.method, w.status) for w in writes] == [("POST", 202), ("PUT", 201)]
    assert writes[0].path == "/v2/%s/blobs/uploads/" % repo
    assert writes[1].path.startswith("/v2/%s/blobs/uploads/" % repo)
    assert "digest=" + digest in writes[1].uri
    with open(registry.blob_data_path(digest), "rb") as handle:
        assert handle.read() == data

    mark = registry.mark()
    response = _head_blob(registry, repo, digest)
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest
    assert int(response.headers["Content-Length"]) == len(data)
    assert registry.writes_since(mark) == []
    seen = registry.requests_since(mark)
    assert [(r.method, r.path, r.status) for r in seen] == [("HEAD", "/v2/%s/blobs/%s" % (repo, digest), 200)]


def test_manifest_bytes_are_stored_exactly(registry):
    repo = _repo()
    config = b"{}"
    config_digest = _push_blob(registry, repo, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 2},
        "layers": [],
    }, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()

    response = requests.put("%s/v2/%s/manifests/v1" % (registry.url, repo), data=manifest, timeout=TIMEOUT,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                            **registry.requests_kwargs())
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest

    mark = registry.mark()
    response = requests.head("%s/v2/%s/manifests/v1" % (registry.url, repo), timeout=TIMEOUT,
                             headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                             **registry.requests_kwargs())
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest
    response = requests.get("%s/v2/%s/manifests/%s" % (registry.url, repo, digest), timeout=TIMEOUT,
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                            **registry.requests_kwargs())
    assert response.content == manifest
    assert registry.writes_since(mark) == []


def test_refused_writes_are_still_writes(registry):
    """A tag DELETE is refused by distribution 2.8 (400), and the log still shows the attempt."""
    repo = _repo()
    mark = registry.mark()
    response = requests.delete("%s/v2/%s/manifests/latest" % (registry.url, repo), timeout=TIMEOUT,
                               **registry.requests_kwargs())
    assert response.status_code >= 400
    writes = registry.writes_since(mark)
    assert [(w.method, w.status) for w in writes] == [("DELETE", response.status_code)]


def test_tls_registry_needs_credentials(tls_registry):
    reg = tls_registry
    assert reg.url == "https://" + reg.host
    assert os.path.isfile(reg.ca_path)
    assert os.listdir(reg.cert_dir) == ["ca.crt"]

    response = requests.get(reg.url + "/v2/", verify=reg.ca_path, timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("basic ")

    response = requests.get(reg.url + "/v2/", verify=reg.ca_path, auth=(reg.username, "wrong"), timeout=TIMEOUT)
    assert response.status_code == 401

    response = requests.get(reg.url + "/v2/", verify=reg.ca_path, auth=reg.credentials, timeout=TIMEOUT)
    assert response.status_code == 200

    # localhost is in the certificate too
    response = requests.get("https://localhost:%d/v2/" % reg.port, verify=reg.ca_path, auth=reg.credentials,
                            timeout=TIMEOUT)
    assert response.status_code == 200


def test_tls_registry_is_not_trusted_without_its_ca(tls_registry):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_registry.url + "/v2/", verify=True, auth=tls_registry.credentials, timeout=TIMEOUT)


def test_tls_registry_push_with_auth(tls_registry):
    repo = _repo()
    mark = tls_registry.mark()
    digest = _push_blob(tls_registry, repo, b"over tls\n")
    assert [w.method for w in tls_registry.writes_since(mark)] == ["POST", "PUT"]
    assert _head_blob(tls_registry, repo, digest).status_code == 200
    response = requests.head("%s/v2/%s/blobs/%s" % (tls_registry.url, repo, digest), verify=tls_registry.ca_path,
                             timeout=TIMEOUT)
    assert response.status_code == 401


def test_docker_config_holds_credentials(tls_registry, tmp_path):
    path = tls_registry.docker_config(str(tmp_path / "docker"))
    with open(path, encoding="utf-8") as handle:
        auths = json.load(handle)["auths"]
    assert list(auths) == [tls_registry.host]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_restart_keeps_port_storage_and_password(make_registry):
    reg = make_registry(tls=True, auth=True)
    port, password, repo = reg.port, reg.password, _repo()
    digest = _push_blob(reg, repo, b"survives a restart\n")

    reg.stop()
    assert not reg.running
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(reg.url + "/v2/", verify=reg.ca_path, timeout=5)
    reg.start()
    assert (reg.port, reg.password) == (port, password)
    assert _head_blob(reg, repo, digest).status_code == 200


def test_crash_mid_upload_and_restart(make_registry):
    """kill() is a crash: an upload session started before it can be finished after the restart
    (same upload secret and storage), and the request log spans both processes."""
    reg = make_registry()
    repo = _repo()
    data = b"crash test\n"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    mark = reg.mark()
    response = requests.post("%s/v2/%s/blobs/uploads/" % (reg.url, repo), timeout=TIMEOUT, **reg.requests_kwargs())
    assert response.status_code == 202
    location = urljoin(reg.url + "/", response.headers["Location"])
    old_pid = reg.pid

    reg.kill()
    assert not reg.running
    reg.start()
    assert reg.pid != old_pid

    assert _head_blob(reg, repo, digest).status_code == 404
    response = requests.put(location + "&digest=" + digest, data=data, timeout=TIMEOUT,
                            headers={"Content-Type": "application/octet-stream"}, **reg.requests_kwargs())
    assert response.status_code == 201, response.text
    assert [(w.method, w.status) for w in reg.writes_since(mark)] == [("POST", 202), ("PUT", 201)]
    # the helper's readiness probes after the restart are not in the log it reports
    assert [(r.method, r.status) for r in reg.requests_since(mark)] == [("POST", 202), ("HEAD", 404), ("PUT", 201)]
    assert _head_blob(reg, repo, digest).status_code == 200
