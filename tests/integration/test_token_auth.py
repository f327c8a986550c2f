"""Token auth end to end: distribution 2.8 with ``auth.token`` and a real Docker-token-spec server.

The registry answers 401 ``Bearer realm=...,scope="repository:NAME:pull"`` to the HEADs and
``scope="repository:NAME:pull,push"`` (``error="insufficient_scope"`` once a pull token is
held) to the upload POST. The engine must fetch a new token when the scope grows; oras-py's
own ``TokenAuth`` keeps the pull-scoped token and the POST fails (SPEC.md section 3).
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
import requests

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import AuthError, OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.info import describe
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import push as push_module
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import plan_image, push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target
from ansible_collections.gardenlinux.onmetal.tests.support.token_server import (
    TokenRegistry,
    TokenServer,
    parse_scope,
    start_token_registry,
)

USER = "alice"
PASSWORD = "alice-s3cret-pw"
READER = "bob"
READER_PASSWORD = "bob-reads-only-pw"
PUSHER = "carol"
PUSHER_PASSWORD = "carol-pushes-no-deletes"
WRONG_PASSWORD = "not-the-Password-9f3e"
COMMAND_LINE = "root=LABEL=ROOT ro console=ttyS0,115200"

PULL = ("pull",)
PULL_PUSH = ("pull", "push")


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    server = TokenServer(tmp_path_factory.mktemp("token-server"),
                         users={USER: PASSWORD, READER: READER_PASSWORD, PUSHER: PUSHER_PASSWORD},
                         permissions={READER: {"pull"}, PUSHER: {"pull", "push"}}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry(require_docker_registry, token_server, tmp_path_factory):
    reg = start_token_registry(tmp_path_factory.mktemp("token-registry"), token_server,
                               binary=require_docker_registry)
    yield reg
    reg.stop()


@pytest.fixture
def no_docker_config(tmp_path, monkeypatch):
    """No config.json anywhere: neither $DOCKER_CONFIG nor ~/.docker may lend credentials."""
    home = tmp_path / "empty-home"
    (home / ".docker").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    return home


def _repo():
    return "token-auth/%s" % uuid.uuid4().hex[:12]


def _image(directory):
    """Small distinct rootfs/kernel/initramfs files; returns push params."""
    directory.mkdir(parents=True, exist_ok=True)
    salt = uuid.uuid4().hex.encode()
    files = {}
    for role, name, size in (("rootfs", "rootfs.raw", 64 * 1024), ("kernel", "vmlinuz", 4096),
                             ("initramfs", "initrd", 8192)):
        path = directory / name
        path.write_bytes((role.encode() + b":" + salt + b"\n") * (size // 48))
        files[role] = str(path)
    return dict(files, command_line=COMMAND_LINE, tags=["v1"])


def _connection(username=None, password=None):
    conn = {"plain_http": True}
    if username is not None:
        conn["username"] = username
    if password is not None:
        conn["password"] = password
    return conn


def _granted(request):
    """A token request's granted access as sorted (type, name, sorted actions) tuples."""
    return sorted((item["type"], item["name"], tuple(sorted(item["actions"]))) for item in request.granted or [])


def _one_line(error):
    text = str(error)
    assert text and "\n" not in text, "not one line: %r" % text
    assert "Traceback" not in text
    return text


def test_push_and_read_back_with_token_auth(token_registry, token_server, tmp_path, no_docker_config):
    repo = _repo()
    params = _image(tmp_path / "img")
    ref = parse("%s/%s:v1" % (token_registry.host, repo))

    token_mark = token_server.mark()
    reg_mark = token_registry.mark()
    result = push_image(open_target(ref, _connection(USER, PASSWORD)), params)

    assert result["changed"] is True
    assert len(result["blobs_sent"]) == 4          # config + rootfs + kernel + initramfs
    assert result["tags_written"] == ["v1"]
    asked = token_server.requests_since(token_mark)
    # The HEADs asked for pull, the upload POST for pull,push: scope growth got a new token.
    assert token_server.actions_asked(repo, token_mark) == {PULL, PULL_PUSH}, asked
    assert all(request.user == USER and request.status == 200 for request in asked), asked
    assert all(request.service == token_server.service for request in asked), asked
    # The token is kept: two token requests (pull, then pull+push), not one per registry request.
    assert len(asked) == 2, asked
    # granted exactly what was asked (distribution lists the actions in no fixed order)
    assert sorted(_granted(request) for request in asked) == [
        [("repository", repo, PULL)], [("repository", repo, PULL_PUSH)]], asked

    writes = token_registry.writes_since(reg_mark)
    assert [w.status for w in writes if w.method == "PUT" and "/manifests/" in w.path] == [201]
    assert all(w.status in (201, 202, 401) for w in writes), writes

    # read it back through the same token flow (a new target: a fresh token)
    token_mark = token_server.mark()
    info = describe(open_target(ref, _connection(USER, PASSWORD)))
    assert info["digest"] == result["digest"]
    assert info["flavor"] == "onmetal"
    assert info["command_line"] == COMMAND_LINE
    assert sorted(layer["role"] for layer in info["layers"]) == ["initramfs", "kernel", "rootfs"]
    assert token_server.actions_asked(repo, token_mark) == {PULL}

    # second push: same digest, nothing written, and no push scope asked for
    token_mark = token_server.mark()
    reg_mark = token_registry.mark()
    again = push_image(open_target(ref, _connection(USER, PASSWORD)), params)
    assert again["changed"] is False
    assert again["digest"] == result["digest"]
    assert again["blobs_sent"] == [] and again["tags_written"] == []
    assert token_registry.writes_since(reg_mark) == []
    assert token_server.actions_asked(repo, token_mark) == {PULL}


def test_second_tag_and_new_blob_after_token_is_held(token_registry, token_server, tmp_path, no_docker_config):
    """One target, two pushes: the push-scoped token from the first one serves the second."""
    repo = _repo()
    target = open_target(parse("%s/%s:v1" % (token_registry.host, repo)), _connection(USER, PASSWORD))
    first = push_image(target, _image(tmp_path / "a"))
    assert first["changed"] is True
    mark = token_server.mark()
    params = _image(tmp_path / "b")
    params["tags"] = ["v2", "latest"]
    second = push_image(target, params)
    assert second["changed"] is True
    assert second["digest"] != first["digest"]
    assert token_server.requests_since(mark) == []          # the held token covers pull and push
    info = describe(open_target(parse("%s/%s:latest" % (token_registry.host, repo)), _connection(USER, PASSWORD)))
    assert info["digest"] == second["digest"]


def test_wrong_password_is_one_line_without_the_password(token_registry, token_server, tmp_path, no_docker_config):
    repo = _repo()
    ref = parse("%s/%s:v1" % (token_registry.host, repo))
    token_mark = token_server.mark()
    reg_mark = token_registry.mark()

    with pytest.raises(OnmetalError) as caught:
        push_image(open_target(ref, _connection(USER, WRONG_PASSWORD)), _image(tmp_path / "img"))

    assert isinstance(caught.value, AuthError), repr(caught.value)
    text = _one_line(caught.value)
    assert "password" in text or "username" in text, text
    assert WRONG_PASSWORD not in text and PASSWORD not in text, text
    asked = token_server.requests_since(token_mark)
    assert asked and all(request.user == USER and request.status == 401 for request in asked), asked
    assert len(asked) <= 2, asked                          # no retry storm against the token server
    assert token_registry.writes_since(reg_mark) == []


def test_anonymous_is_refused_with_one_line(token_registry, token_server, tmp_path, no_docker_config):
    """No credentials and a token server that refuses anonymous tokens (401)."""
    repo = _repo()
    ref = parse("%s/%s:v1" % (token_registry.host, repo))
    token_mark = token_server.mark()
    reg_mark = token_registry.mark()

    with pytest.raises(OnmetalError) as caught:
        push_image(open_target(ref, _connection()), _image(tmp_path / "img"))

    assert isinstance(caught.value, AuthError), repr(caught.value)
    text = _one_line(caught.value)
    assert "username" in text or "password" in text or "credentials" in text, text
    asked = token_server.requests_since(token_mark)
    assert asked and all(request.user is None and request.authorization is None for request in asked), asked
    assert token_registry.writes_since(reg_mark) == []


def test_anonymous_empty_token_is_refused_with_one_line(token_registry, token_server, tmp_path,
                                                        no_docker_config, monkeypatch):
    """No credentials, and the token server hands out an empty-access token (Docker Hub style)."""
    monkeypatch.setattr(token_server, "anonymous", "empty")
    repo = _repo()
    ref = parse("%s/%s:v1" % (token_registry.host, repo))
    token_mark = token_server.mark()
    reg_mark = token_registry.mark()

    with pytest.raises(OnmetalError) as caught:
        push_image(open_target(ref, _connection()), _image(tmp_path / "img"))

    assert isinstance(caught.value, AuthError), repr(caught.value)
    text = _one_line(caught.value)
    assert "username" in text or "password" in text or "credentials" in text, text
    asked = token_server.requests_since(token_mark)
    assert asked and all(request.status == 200 and request.granted == [] for request in asked), asked
    assert len(asked) <= 2, asked
    assert token_registry.writes_since(reg_mark) == []


def test_pull_only_user_reads_but_cannot_push(token_registry, token_server, tmp_path, no_docker_config):
    repo = _repo()
    ref = parse("%s/%s:v1" % (token_registry.host, repo))
    pushed = push_image(open_target(ref, _connection(USER, PASSWORD)), _image(tmp_path / "img"))

    info = describe(open_target(ref, _connection(READER, READER_PASSWORD)))
    assert info["digest"] == pushed["digest"]

    token_mark = token_server.mark()
    reg_mark = token_registry.mark()
    with pytest.raises(OnmetalError) as caught:
        push_image(open_target(ref, _connection(READER, READER_PASSWORD)), _image(tmp_path / "other"))
    assert isinstance(caught.value, AuthError), repr(caught.value)
    text = _one_line(caught.value)
    assert READER_PASSWORD not in text, text
    asked = token_server.requests_since(token_mark)
    assert token_server.actions_asked(repo, token_mark) == {PULL, PULL_PUSH}, asked
    push_asked = [request for request in asked
                  if any(tuple(sorted(parse_scope(scope)[2])) == PULL_PUSH for scope in request.scopes)]
    assert [_granted(request) for request in push_asked] == [[("repository", repo, PULL)]], asked
    # the refused upload POST is the only write attempt, and it was refused
    writes = token_registry.writes_since(reg_mark)
    assert writes and all(w.status == 401 and w.method == "POST" for w in writes), writes
    assert describe(open_target(ref, _connection(READER, READER_PASSWORD)))["digest"] == pushed["digest"]


def test_token_auth_with_a_tls_registry(require_docker_registry, token_server, tmp_path, no_docker_config):
    """HTTPS registry (throw-away CA, ca_path) in front of the same token server."""
    reg = TokenRegistry(tmp_path / "tls-token-registry", token_server, tls=True, binary=require_docker_registry)
    try:
        reg.start()
        repo = _repo()
        ref = parse("%s/%s:v1" % (reg.host, repo))
        conn = {"username": USER, "password": PASSWORD, "ca_path": reg.ca_path}
        token_mark = token_server.mark()
        result = push_image(open_target(ref, conn), _image(tmp_path / "img"))
        assert result["changed"] is True
        assert token_server.actions_asked(repo, token_mark) == {PULL, PULL_PUSH}
        assert describe(open_target(ref, conn))["digest"] == result["digest"]
    finally:
        reg.stop()


@pytest.fixture
def slow_streaming(monkeypatch):
    """Files from 32 KiB on stream (the 64 KiB rootfs does), and hashing one takes a while, as it
    does for a large file: its upload starts before its digest is known."""
    monkeypatch.setattr(push_module, "STREAM_MIN_SIZE", 32 * 1024)
    hash_now = oci.file_digest

    def slow_file_digest(path, *args, **kwargs):
        if os.path.getsize(path) >= 32 * 1024:
            time.sleep(0.3)
        return hash_now(path, *args, **kwargs)

    monkeypatch.setattr(oci, "file_digest", slow_file_digest)


def test_streamed_push_with_token_auth(token_registry, token_server, tmp_path, no_docker_config, slow_streaming):
    """A fresh repository streams its large files (PATCH, then PUT ?digest=) under the push token
    the upload POST fetched: no extra token request, and the digest a hash-first plan gives."""
    repo = _repo()
    params = _image(tmp_path / "img")
    ref = parse("%s/%s:v1" % (token_registry.host, repo))
    token_mark = token_server.mark()
    reg_mark = token_registry.mark()
    result = push_image(open_target(ref, _connection(USER, PASSWORD)), params)

    assert result["digest"] == plan_image(params)["digest"]
    assert len(result["blobs_sent"]) == 4
    writes = token_registry.writes_since(reg_mark)
    # one PATCH: below 1 MiB the whole file goes ahead of its digest (registry.UPLOAD_BLOCK)
    assert [w.status for w in writes if w.method == "PATCH"] == [202], writes
    assert all(w.status in (201, 202, 401) for w in writes), writes
    assert len(token_server.requests_since(token_mark)) == 2
    assert token_server.actions_asked(repo, token_mark) == {PULL, PULL_PUSH}
    assert describe(open_target(ref, _connection(READER, READER_PASSWORD)))["digest"] == result["digest"]


@pytest.mark.parametrize("user,password,deletes", [(USER, PASSWORD, True), (PUSHER, PUSHER_PASSWORD, False)],
                         ids=["may-delete", "push-only"])
def test_streamed_upload_of_a_blob_already_there_is_cancelled_keeping_the_push_token(
        token_registry, token_server, tmp_path, no_docker_config, slow_streaming, user, password, deletes):
    """The rootfs is in the repository (no tag, no config): its stream stops at the HEAD, and the
    upload is deleted with a token for distribution's delete action where the user has that right,
    left to the registry's purging where not; the push token stays for the rest of the push."""
    repo = _repo()
    params = _image(tmp_path / "img")
    plan = plan_image(params)
    rootfs = [layer for layer in plan["layers"] if layer.role == "rootfs"][0]
    ref = parse("%s/%s:v1" % (token_registry.host, repo))
    open_target(ref, _connection(USER, PASSWORD)).push_blob(rootfs.descriptor(), rootfs.path)

    token_mark = token_server.mark()
    reg_mark = token_registry.mark()
    result = push_image(open_target(ref, _connection(user, password)), params)
    assert result["digest"] == plan["digest"]
    assert result["blobs_skipped"] == [rootfs.digest]
    seen = token_registry.requests_since(reg_mark)
    assert [r.status for r in seen if r.method == "PATCH"] == [202], seen
    deletes_seen = [r.status for r in seen if r.method == "DELETE"]
    assert deletes_seen == ([401, 204] if deletes else [401, 401]), seen
    assert token_server.actions_asked(repo, token_mark) == {PULL, PULL_PUSH, ("delete",)}
    # after the DELETE, no request of the push needed a new token
    last_delete = max(i for i, r in enumerate(seen) if r.method == "DELETE")
    assert [r for r in seen[last_delete + 1:] if r.status == 401] == [], seen
    assert [r.status for r in seen if r.method == "PUT" and "/manifests/" in r.path] == [201]
    assert (token_registry.uploads_left(repo) == []) is deletes
    assert describe(open_target(ref, _connection(READER, READER_PASSWORD)))["digest"] == result["digest"]


def test_rejected_tokens_do_not_loop(token_registry, token_server, tmp_path, no_docker_config, monkeypatch):
    """Every token the server hands out is already expired: the registry refuses each one.
    The engine must give up with one line after a bounded number of token requests."""
    monkeypatch.setattr(token_server, "ttl", -600)      # exp far beyond distribution's 60 s leeway
    ref = parse("%s/%s:v1" % (token_registry.host, _repo()))
    token_mark = token_server.mark()
    reg_mark = token_registry.mark()
    with pytest.raises(OnmetalError) as caught:
        push_image(open_target(ref, _connection(USER, PASSWORD)), _image(tmp_path / "img"))
    assert isinstance(caught.value, AuthError), repr(caught.value)
    text = _one_line(caught.value)
    assert PASSWORD not in text
    assert 1 <= len(token_server.requests_since(token_mark)) <= 3
    assert len(token_registry.requests_since(reg_mark)) <= 4
    assert token_registry.writes_since(reg_mark) == []


def test_fixture_refuses_a_pull_token_for_the_upload(token_registry, token_server):
    """The fixture is strict where it matters: a pull-scoped token does not open an upload,
    and the 401 asks for pull,push (what the engine must answer with a new token)."""
    repo = _repo()
    response = requests.get(token_server.realm, auth=(USER, PASSWORD), timeout=10,
                            params={"service": token_server.service, "scope": "repository:%s:pull" % repo})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] == body["access_token"] and body["expires_in"] > 0
    upload = requests.post("%s/v2/%s/blobs/uploads/" % (token_registry.url, repo), timeout=10,
                           headers={"Authorization": "Bearer " + body["token"]})
    assert upload.status_code == 401
    challenge = upload.headers["Www-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert ('scope="repository:%s:pull,push"' % repo in challenge
            or 'scope="repository:%s:push,pull"' % repo in challenge), challenge   # order varies
    assert 'realm="%s"' % token_server.realm in challenge
    # and the same request with a pull,push token opens an upload (202)
    token = requests.get(token_server.realm, auth=(USER, PASSWORD), timeout=10,
                         params={"service": token_server.service,
                                 "scope": "repository:%s:pull,push" % repo}).json()["token"]
    upload = requests.post("%s/v2/%s/blobs/uploads/" % (token_registry.url, repo), timeout=10,
                           headers={"Authorization": "Bearer " + token})
    assert upload.status_code == 202, upload.text
    requests.delete(requests.compat.urljoin(token_registry.url + "/", upload.headers["Location"]), timeout=10,
                    headers={"Authorization": "Bearer " + token})


def test_oras_py_alone_keeps_the_pull_token(token_registry, token_server, tmp_path, monkeypatch):
    """Why the engine answers challenges itself (SPEC.md section 3): oras-py 0.2.43's push
    reuses the pull-scoped token from its HEAD check for the upload POST and fails."""
    import oras.provider  # pylint: disable=import-outside-toplevel

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    (tmp_path / "blob.txt").write_bytes(b"oras-py alone\n")
    monkeypatch.chdir(tmp_path)                             # oras-py wants files under the cwd
    client = oras.provider.Registry(hostname=token_registry.host, insecure=True, auth_backend="token")
    client.auth.set_basic_auth(USER, PASSWORD)
    repo = _repo()
    token_mark = token_server.mark()
    try:
        client.push(target="%s/%s:v1" % (token_registry.host, repo), files=["blob.txt"])
    except ValueError as exc:
        assert "authentication required" in str(exc) or "UNAUTHORIZED" in str(exc), exc
    else:
        pytest.skip("this oras-py now asks for push scope itself: registry.py's own challenge handling "
                    "is no longer needed for that")
    assert token_server.actions_asked(repo, token_mark) == {PULL}


def test_token_server_and_registry_stay_on_loopback(token_registry, token_server):
    assert token_server.realm.startswith("http://127.0.0.1:")
    assert token_registry.host.startswith("127.0.0.1:")
    with open(token_registry.config_path, encoding="utf-8") as handle:
        text = handle.read()
    assert token_server.realm in text and os.path.basename(token_server.cert_path) in text
