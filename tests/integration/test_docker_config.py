"""Credentials from a docker ``config.json``: ``auths``, ``DOCKER_CONFIG``, ``credHelpers``,
``credsStore``, against real registries (TLS + htpasswd, and token auth).

Every test runs with ``HOME`` pointing at an empty folder and ``DOCKER_CONFIG`` unset unless it
sets it, so the machine's own ``~/.docker/config.json`` never lends (or spoils) credentials.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import AuthError, OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.info import describe
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target
from ansible_collections.gardenlinux.onmetal.tests.support.token_server import TokenServer, start_token_registry

COMMAND_LINE = "root=LABEL=ROOT ro console=ttyS0,115200"
HELPER = "testhelper"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """An empty HOME (with an empty ~/.docker) and no DOCKER_CONFIG."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    return home


def _repo():
    return "docker-config/%s" % uuid.uuid4().hex[:12]


def _image(directory):
    directory.mkdir(parents=True, exist_ok=True)
    salt = uuid.uuid4().hex.encode()
    files = {}
    for role, name in (("rootfs", "rootfs.raw"), ("kernel", "vmlinuz"), ("initramfs", "initrd")):
        path = directory / name
        path.write_bytes((role.encode() + b":" + salt + b"\n") * 200)
        files[role] = str(path)
    return dict(files, command_line=COMMAND_LINE, tags=["v1"])


def _auth(username, password):
    return base64.b64encode(("%s:%s" % (username, password)).encode()).decode()


def _write_config(directory, content):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def _one_line(error):
    text = str(error)
    assert text and "\n" not in text, "not one line: %r" % text
    return text


def _push_and_check(reg, connection, tmp_path):
    """Push a fresh image, read it back, push again: the second push writes nothing."""
    ref = parse("%s/%s:v1" % (reg.host, _repo()))
    params = _image(tmp_path / "img")
    result = push_image(open_target(ref, connection), params)
    assert result["changed"] is True
    assert len(result["blobs_sent"]) == 4
    info = describe(open_target(ref, connection))
    assert info["digest"] == result["digest"]
    assert info["command_line"] == COMMAND_LINE
    mark = reg.mark()
    again = push_image(open_target(ref, connection), params)
    assert again["changed"] is False
    assert reg.writes_since(mark) == []
    return result


def _write_helper(bin_dir, host, username, password, log_path):
    """``docker-credential-testhelper``: answers ``get`` for ``host`` only, logs what it was asked."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / ("docker-credential-" + HELPER)
    answer = json.dumps({"ServerURL": host, "Username": username, "Secret": password})
    path.write_text(
        "#!/bin/sh\n"
        "[ \"$1\" = get ] || { echo \"unsupported: $1\" >&2; exit 1; }\n"
        "IFS= read -r server || true\n"
        "printf '%%s\\n' \"$server\" >> '%s'\n"
        "if [ \"$server\" = '%s' ]; then\n"
        "  printf '%%s' '%s'\n"
        "else\n"
        "  echo 'credentials not found in native keychain' >&2; exit 1\n"
        "fi\n" % (log_path, host, answer),
        encoding="utf-8",
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _helper_asked(log_path):
    if not os.path.exists(log_path):
        return []
    with open(log_path, encoding="utf-8") as handle:
        return handle.read().splitlines()


# --- (a) auths with base64 auth, docker_config option ---------------------------------------------

def test_auths_entry_via_docker_config_option(tls_registry, tmp_path):
    path = tls_registry.docker_config(str(tmp_path / "cfg"))
    _push_and_check(tls_registry, {"docker_config": path, "ca_path": tls_registry.ca_path}, tmp_path)


def test_auths_entry_with_wrong_password_fails_one_line(tls_registry, tmp_path):
    wrong = "wrong-%s" % uuid.uuid4().hex[:8]
    path = _write_config(tmp_path / "cfg",
                         {"auths": {tls_registry.host: {"auth": _auth(tls_registry.username, wrong)}}})
    ref = parse("%s/%s:v1" % (tls_registry.host, _repo()))
    mark = tls_registry.mark()
    with pytest.raises(OnmetalError) as caught:
        push_image(open_target(ref, {"docker_config": path, "ca_path": tls_registry.ca_path}),
                   _image(tmp_path / "img"))
    assert isinstance(caught.value, AuthError), repr(caught.value)
    text = _one_line(caught.value)
    assert wrong not in text and _auth(tls_registry.username, wrong) not in text
    assert tls_registry.writes_since(mark) == []


def test_auths_key_with_scheme_is_found(tls_registry, tmp_path):
    """``"https://HOST:PORT"`` keys (older ``docker login``) name the same registry, as the docker
    CLI's file store treats them (it compares ``ConvertToHostname(key)``)."""
    path = _write_config(tmp_path / "cfg", {
        "auths": {"https://" + tls_registry.host: {"auth": _auth(*tls_registry.credentials)}}})
    _push_and_check(tls_registry, {"docker_config": path, "ca_path": tls_registry.ca_path}, tmp_path)


def _stale_home(tmp_path, monkeypatch, reg, index):
    """A fresh HOME whose ~/.docker/config.json holds a wrong password for ``reg``."""
    home = tmp_path / ("home-%d-%s" % (index, uuid.uuid4().hex[:6]))
    _write_config(home / ".docker", {"auths": {reg.host: {"auth": _auth(reg.username, "stale-home-password")}}})
    monkeypatch.setenv("HOME", str(home))
    return home


def test_explicit_docker_config_wins_over_home_config(tls_registry, tmp_path, monkeypatch):
    """docker_config names THE config to use: a stale entry for the same host in
    ~/.docker/config.json must not take its place.

    Several (HOME, docker_config) path pairs are tried: a precedence that depends on set or
    hash order would otherwise pass by luck in some runs.
    """
    good = {"auths": {tls_registry.host: {"auth": _auth(*tls_registry.credentials)}}}
    ref = parse("%s/%s:v1" % (tls_registry.host, _repo()))
    refused = []
    for index in range(8):
        _stale_home(tmp_path, monkeypatch, tls_registry, index)
        path = _write_config(tmp_path / ("explicit-%d-%s" % (index, uuid.uuid4().hex[:6])), good)
        try:
            open_target(ref, {"docker_config": path, "ca_path": tls_registry.ca_path}).resolve()
        except AuthError as exc:
            refused.append("%s: %s" % (path, exc))
    assert refused == [], "the ~/.docker/config.json entry was used instead of docker_config in %d of 8 tries:\n%s" % (
        len(refused), "\n".join(refused))


# --- (b) DOCKER_CONFIG ----------------------------------------------------------------------------

def test_docker_config_environment_variable(tls_registry, tmp_path, monkeypatch):
    directory = tmp_path / "docker-config-dir"
    tls_registry.docker_config(str(directory))
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    _push_and_check(tls_registry, {"ca_path": tls_registry.ca_path}, tmp_path)


def test_docker_config_environment_variable_wins_over_home(tls_registry, tmp_path, monkeypatch):
    """With DOCKER_CONFIG set, docker reads only $DOCKER_CONFIG/config.json, never ~/.docker/."""
    ref = parse("%s/%s:v1" % (tls_registry.host, _repo()))
    refused = []
    for index in range(8):
        _stale_home(tmp_path, monkeypatch, tls_registry, index)
        directory = tmp_path / ("env-%d-%s" % (index, uuid.uuid4().hex[:6]))
        tls_registry.docker_config(str(directory))
        monkeypatch.setenv("DOCKER_CONFIG", str(directory))
        try:
            open_target(ref, {"ca_path": tls_registry.ca_path}).resolve()
        except AuthError as exc:
            refused.append("%s: %s" % (directory, exc))
    assert refused == [], "~/.docker/config.json was used instead of $DOCKER_CONFIG in %d of 8 tries:\n%s" % (
        len(refused), "\n".join(refused))


# --- (c) credential helpers -----------------------------------------------------------------------

def test_cred_helpers_entry(tls_registry, tmp_path, monkeypatch):
    log_path = str(tmp_path / "helper.log")
    _write_helper(tmp_path / "bin", tls_registry.host, tls_registry.username, tls_registry.password, log_path)
    monkeypatch.setenv("PATH", "%s%s%s" % (tmp_path / "bin", os.pathsep, os.environ.get("PATH", "")))
    path = _write_config(tmp_path / "cfg", {"credHelpers": {tls_registry.host: HELPER}})
    _push_and_check(tls_registry, {"docker_config": path, "ca_path": tls_registry.ca_path}, tmp_path)
    assert tls_registry.host in _helper_asked(log_path)


def test_creds_store(tls_registry, tmp_path, monkeypatch):
    log_path = str(tmp_path / "helper.log")
    _write_helper(tmp_path / "bin", tls_registry.host, tls_registry.username, tls_registry.password, log_path)
    monkeypatch.setenv("PATH", "%s%s%s" % (tmp_path / "bin", os.pathsep, os.environ.get("PATH", "")))
    path = _write_config(tmp_path / "cfg", {"auths": {tls_registry.host: {}}, "credsStore": HELPER})
    _push_and_check(tls_registry, {"docker_config": path, "ca_path": tls_registry.ca_path}, tmp_path)
    assert tls_registry.host in _helper_asked(log_path)


def test_missing_cred_helper_fails_one_line(tls_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    missing_helper = "not-installed-%s" % uuid.uuid4().hex[:6]
    path = _write_config(tmp_path / "cfg", {"credHelpers": {tls_registry.host: missing_helper}})
    ref = parse("%s/%s:v1" % (tls_registry.host, _repo()))
    with pytest.raises(OnmetalError) as caught:
        push_image(open_target(ref, {"docker_config": path, "ca_path": tls_registry.ca_path}),
                   _image(tmp_path / "img"))
    text = _one_line(caught.value)
    assert isinstance(caught.value, AuthError), repr(caught.value)
    assert "username" in text or "password" in text or "credentials" in text, text


# --- (d) bad docker_config ------------------------------------------------------------------------

def test_missing_docker_config_file_fails_one_line(tls_registry, tmp_path):
    missing = str(tmp_path / "nowhere" / "config.json")
    ref = parse("%s/%s:v1" % (tls_registry.host, _repo()))
    mark = tls_registry.mark()
    with pytest.raises(OnmetalError) as caught:
        push_image(open_target(ref, {"docker_config": missing, "ca_path": tls_registry.ca_path}),
                   _image(tmp_path / "img"))
    text = _one_line(caught.value)
    assert caught.value.option == "docker_config", text
    assert "docker_config" in text and missing in text, text
    assert tls_registry.requests_since(mark) == []


def test_unreadable_docker_config_json_fails_one_line(tls_registry, tmp_path):
    path = tmp_path / "cfg" / "config.json"
    path.parent.mkdir()
    path.write_text('{"auths": {', encoding="utf-8")
    ref = parse("%s/%s:v1" % (tls_registry.host, _repo()))
    with pytest.raises(OnmetalError) as caught:
        open_target(ref, {"docker_config": str(path), "ca_path": tls_registry.ca_path})
    text = _one_line(caught.value)
    assert caught.value.option == "docker_config", text
    assert "docker_config" in text, text


# --- token auth with docker config credentials ----------------------------------------------------

@pytest.fixture(scope="module")
def token_setup(require_docker_registry, tmp_path_factory):
    server = TokenServer(tmp_path_factory.mktemp("token-server"), users={"carol": "carol-pw-%s" % uuid.uuid4().hex[:6]})
    reg = start_token_registry(tmp_path_factory.mktemp("token-registry"), server, binary=require_docker_registry)
    yield reg, server
    reg.stop()
    server.stop()


def test_token_registry_with_docker_config_credentials(token_setup, tmp_path):
    reg, server = token_setup
    path = reg.docker_config(str(tmp_path / "cfg"))
    mark = server.mark()
    result = _push_and_check(reg, {"docker_config": path, "plain_http": True}, tmp_path)
    repo = parse(result["ref"]).repository
    assert server.actions_asked(repo, mark) == {("pull",), ("pull", "push")}
    assert {request.user for request in server.requests_since(mark)} == {"carol"}


def test_token_registry_with_cred_helper(token_setup, tmp_path, monkeypatch):
    reg, server = token_setup
    log_path = str(tmp_path / "helper.log")
    _write_helper(tmp_path / "bin", reg.host, server.username, server.password, log_path)
    monkeypatch.setenv("PATH", "%s%s%s" % (tmp_path / "bin", os.pathsep, os.environ.get("PATH", "")))
    path = _write_config(tmp_path / "cfg", {"credHelpers": {reg.host: HELPER}})
    mark = server.mark()
    _push_and_check(reg, {"docker_config": path, "plain_http": True}, tmp_path)
    assert {request.user for request in server.requests_since(mark)} == {"carol"}
    assert reg.host in _helper_asked(log_path)
