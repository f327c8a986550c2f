"""Hashing while uploading (push.py, RegistryTarget.stream_blob) against the real registry.

A push to a repository with no tag at all and without the image's config blob streams its large
files (PATCH, then PUT ?digest= with no body) while a thread hashes them; everywhere else the
files are hashed first. These tests check that the streamed push stores exactly what the
hash-first push stores, that blobs the repository already holds cost at most a bounded part of
their bytes, that a file changed under the push is refused with one clear line and stored under
no digest, and that a connection dropped in the middle of the PATCH starts the blob over cleanly.

Most tests lower push.STREAM_MIN_SIZE so that a few MiB stream; one goes through the real module
with a rootfs above the real threshold.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import requests

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import push as push_module
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import registry as registry_module
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import DigestMismatch, OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import plan_image, push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target
from ansible_collections.gardenlinux.onmetal.tests.support import releases
from ansible_collections.gardenlinux.onmetal.tests.support.ansible import run_module

MIB = 1024 * 1024
COMMAND_LINE = releases.COMMAND_LINE
ROOTFS_SIZE = 24 * MIB + 5          # streams once STREAM_MIN_SIZE is lowered to STREAM_MIN
STREAM_MIN = 4 * MIB
HASH_DELAY = 0.5                    # seconds a "large" file takes to hash in these tests
UPLOAD_PATH = r"/blobs/uploads/."   # PATCH and PUT to an upload's Location
ACCEPT = ", ".join((mt.OCI_MANIFEST, mt.OCI_INDEX))


# --- helpers -----------------------------------------------------------------------------------


def write_release(folder, rootfs_bytes, name="stream"):
    return releases.write_release(folder, rootfs_bytes, name, 700 * 1024 + 1, 300 * 1024 + 3)


@pytest.fixture
def release(tmp_path):
    return write_release(tmp_path / "release", ROOTFS_SIZE)


@pytest.fixture
def streaming(monkeypatch):
    """Files from STREAM_MIN on stream (the real threshold is 64 MiB), and hashing them takes a
    while, as it does for a large file: the rootfs is not hashed yet when its turn comes (a file
    already hashed goes as push_blob sends it), and its stream gets ahead of its digest."""
    monkeypatch.setattr(push_module, "STREAM_MIN_SIZE", STREAM_MIN)
    original = oci.file_digest

    def slow_file_digest(path, *args, **kwargs):
        if os.path.getsize(path) >= STREAM_MIN:
            time.sleep(HASH_DELAY)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(oci, "file_digest", slow_file_digest)


def new_repo(prefix):
    return "streaming/%s-%s" % (prefix, uuid.uuid4().hex[:8])


def target(host, repo, tag="1", **connection):
    return open_target(parse("%s/%s:%s" % (host, repo, tag)), dict({"plain_http": True}, **connection))


def registry_get(reg, path, method="GET", **kwargs):
    return requests.request(method, reg.url + path, timeout=60, **dict(reg.requests_kwargs(), **kwargs))


def blob_digest_on_registry(reg, repo, digest):
    """sha256 and size of a blob as the registry serves it (streamed, not held in memory)."""
    response = registry_get(reg, "/v2/%s/blobs/%s" % (repo, digest), stream=True)
    assert response.status_code == 200, (digest, response.status_code)
    writer = oci_hasher()
    for chunk in response.iter_content(MIB):
        writer.update(chunk)
    response.close()
    return writer.result()


class oci_hasher:  # pylint: disable=invalid-name
    def __init__(self):
        import hashlib  # pylint: disable=import-outside-toplevel

        self._h = hashlib.sha256()
        self.size = 0

    def update(self, chunk):
        self._h.update(chunk)
        self.size += len(chunk)

    def result(self):
        return "sha256:" + self._h.hexdigest(), self.size


def tags_of(reg, repo):
    response = registry_get(reg, "/v2/%s/tags/list" % repo)
    if response.status_code == 404:
        return {}
    response.raise_for_status()
    found = {}
    for tag in response.json().get("tags") or []:
        manifest = registry_get(reg, "/v2/%s/manifests/%s" % (repo, tag), headers={"Accept": ACCEPT})
        assert manifest.status_code == 200
        found[tag] = oci.sha256_digest(manifest.content)
        for blob in [json.loads(manifest.content)["config"]] + json.loads(manifest.content)["layers"]:
            head = registry_get(reg, "/v2/%s/blobs/%s" % (repo, blob["digest"]), method="HEAD")
            assert head.status_code == 200, "tag %s points at missing blob %s" % (tag, blob["digest"])
    return found


def assert_stored_exactly(reg, repo, pushed, params):
    """The manifest bytes are ours and every blob is the file's bytes, read back in full."""
    raw = registry_get(reg, "/v2/%s/manifests/1" % repo, headers={"Accept": ACCEPT}).content
    assert oci.sha256_digest(raw) == pushed["digest"]
    manifest = json.loads(raw)
    assert manifest == pushed["manifest"]
    config = registry_get(reg, "/v2/%s/blobs/%s" % (repo, manifest["config"]["digest"])).content
    assert config == oci.go_json({"commandLine": COMMAND_LINE})
    for layer, role in zip(manifest["layers"], ("rootfs", "initramfs", "kernel")):
        assert blob_digest_on_registry(reg, repo, layer["digest"]) == oci.file_digest(params[role]) == (
            layer["digest"], layer["size"])


def rootfs_layer(plan):
    return [layer for layer in plan["layers"] if layer.role == "rootfs"][0]


# --- the streamed push stores what the hash-first push stores ---------------------------------------


def test_fresh_repository_streams_and_stores_the_same_digest_and_bytes(registry, release, streaming):
    repo = new_repo("fresh")
    expected = plan_image(release)
    mark = registry.mark()
    pushed = push_image(target(registry.host, repo), dict(release, tags=["latest"]))
    seen = registry.requests_since(mark)

    assert pushed["changed"] is True
    assert pushed["digest"] == expected["digest"]
    assert json.dumps(pushed["manifest"]) == json.dumps(json.loads(expected["manifest_bytes"]))
    patches = [r for r in seen if r.method == "PATCH"]
    # the first quarter before the digest is known, the rest after its HEAD
    assert [p.status for p in patches] == [202, 202], "the rootfs did not stream: %s" % [
        (r.method, r.path, r.status) for r in seen]
    closing = [r for r in seen if r.method == "PUT" and r.path == patches[0].path]
    rootfs = rootfs_layer(expected)
    assert [(c.status, "digest=" + rootfs.digest.replace(":", "%3A") in c.uri) for c in closing] == [(201, True)]
    # blobs first, the manifest after every blob, the tags last
    writes = [r for r in seen if r.method in ("PUT", "PATCH", "POST")]
    assert [r.path.rsplit("/", 1)[-1] for r in writes if "/manifests/" in r.path] == ["1", "latest"]
    assert all("/manifests/" not in r.path for r in writes[:-2])
    assert sorted(pushed["blobs_sent"]) == sorted([expected["config_descriptor"]["digest"]]
                                                  + [layer.digest for layer in expected["layers"]])
    assert pushed["bytes_sent"] == sum(layer.size for layer in expected["layers"]) + len(
        expected["config_bytes"]) + 2 * len(expected["manifest_bytes"])
    assert_stored_exactly(registry, repo, pushed, release)
    assert tags_of(registry, repo) == {"1": pushed["digest"], "latest": pushed["digest"]}
    assert registry.uploads_left(repo) == []

    # unchanged: hash first, nothing written, not even a tag listing
    mark = registry.mark()
    again = push_image(target(registry.host, repo), dict(release, tags=["latest"]))
    assert again["changed"] is False and again["bytes_sent"] == 0
    assert registry.writes_since(mark) == []
    assert not [r for r in registry.requests_since(mark) if "/tags/list" in r.path]


def test_streamed_and_hash_first_pushes_agree(registry, release, streaming, monkeypatch):
    streamed_repo, hashed_repo = new_repo("agree-s"), new_repo("agree-h")
    streamed = push_image(target(registry.host, streamed_repo), release)
    monkeypatch.setattr(push_module, "STREAM_MIN_SIZE", 1 << 62)
    mark = registry.mark()
    hashed = push_image(target(registry.host, hashed_repo), release)
    assert not [r for r in registry.requests_since(mark) if r.method == "PATCH"]
    assert streamed["digest"] == hashed["digest"]
    assert streamed["manifest"] == hashed["manifest"]
    assert sorted(streamed["blobs_sent"]) == sorted(hashed["blobs_sent"])
    assert streamed["bytes_sent"] == hashed["bytes_sent"]


def test_diff_mode_on_the_streamed_path(registry, release, streaming):
    repo = new_repo("diff")
    mark = registry.mark()
    pushed = push_image(target(registry.host, repo), release, diff=True)
    assert [r.method for r in registry.requests_since(mark)].count("PATCH") == 2
    assert pushed["diff"]["before"] == "1: (absent)\n"
    assert pushed["diff"]["after"].startswith("1: %s\n" % pushed["digest"])


@pytest.mark.parametrize("setup", ["other-tag", "config-present", "check-mode", "by-digest"])
def test_hash_first_wherever_something_may_be_there(registry, release, streaming, setup):
    """A tagged repository, a broken-off push (config blob there), check mode and a digest in ref:
    no stream, no byte of a blob the repository holds."""
    repo = new_repo(setup)
    plan = plan_image(release)
    check_mode = setup == "check-mode"
    tag = "1"
    if setup == "other-tag":
        push_image(target(registry.host, repo, tag="old"), dict(release, command_line="other"))
    if setup == "config-present":
        # what a push that broke off during the rootfs left: the config blob and the small layers
        pre = target(registry.host, repo)
        pre.push_blob(plan["config_descriptor"], plan["config_bytes"])
        for layer in plan["layers"]:
            if layer.role != "rootfs":
                pre.push_blob(layer.descriptor(), layer.path)
    if setup == "by-digest":
        tag = "1@" + plan["digest"]
    mark = registry.mark()
    pushed = push_image(target(registry.host, repo, tag=tag), release, check_mode=check_mode)
    seen = registry.requests_since(mark)
    assert pushed["digest"] == plan["digest"]
    assert not [r for r in seen if r.method == "PATCH"], [(r.method, r.path) for r in seen]
    if check_mode:
        assert registry.writes_since(mark) == []
        assert pushed["bytes_sent"] == sum(layer.size for layer in plan["layers"]) + len(plan["config_bytes"])
        return
    if setup == "config-present":
        uploaded = [r for r in seen if r.method == "PUT" and "/blobs/uploads/" in r.path]
        assert len(uploaded) == 1 and rootfs_layer(plan).digest.replace(":", "%3A") in uploaded[0].uri
    assert_stored_exactly(registry, repo, dict(pushed, digest=pushed["digest"]), release)


# --- blobs already there: at most a bounded part is sent ---------------------------------------------


def test_untagged_repository_holding_the_layers_sends_a_bounded_part(registry, proxy, release, streaming):
    """Layers of this image in a repository without tags and without its config blob (left by
    another client, or by a push of another config): the rootfs starts streaming, and stops once
    its digest is known and HEADed, after STREAM_AHEAD_FRACTION of it; its upload is deleted."""
    repo = new_repo("bounded")
    plan = plan_image(release)
    rootfs = rootfs_layer(plan)
    pre = target(registry.host, repo)
    for layer in plan["layers"]:
        pre.push_blob(layer.descriptor(), layer.path)
    stored_before = registry.blob_data_path(rootfs.digest)
    mtime_before = os.stat(stored_before).st_mtime_ns

    pushed = push_image(target(proxy.host, repo), release)
    assert pushed["digest"] == plan["digest"]
    assert rootfs.digest in pushed["blobs_skipped"]
    assert pushed["blobs_sent"] == [plan["config_descriptor"]["digest"]]
    patches = proxy.requests("PATCH", UPLOAD_PATH)
    bound = int(registry_module.STREAM_AHEAD_FRACTION * rootfs.size)
    assert [(p.bytes_in, p.status) for p in patches] == [(bound, 202)], patches
    # then the HEAD that found the rootfs, and the upload deleted where the registry had it
    after = [(s.method, s.status) for s in proxy.seen if s.started > patches[0].started]
    assert after[:2] == [("HEAD", 200), ("DELETE", 204)], after
    assert not [s for s in proxy.requests("PUT", UPLOAD_PATH) if rootfs.digest.replace(":", "%3A") in s.uri]
    assert registry.uploads_left(repo) == []
    # the blobs are intact: the same file, not rewritten
    assert os.stat(stored_before).st_mtime_ns == mtime_before
    assert_stored_exactly(registry, repo, pushed, release)


# --- a new release into a repository with releases: hashed and uploaded side by side, nothing streamed ---


def test_new_tag_in_a_repository_with_releases_uploads_while_the_rootfs_is_hashed(registry, tmp_path, monkeypatch):
    """A new release (new tag) where other releases are: the small files upload while the large one
    is still hashed; nothing streams (blobs may be there), and only what is missing is sent. The
    same push again hashes first and asks for no blob at all."""
    monkeypatch.setattr(push_module, "STREAM_MIN_SIZE", STREAM_MIN)
    repo = new_repo("releases")
    old = write_release(tmp_path / "old", ROOTFS_SIZE, name="old")
    push_image(target(registry.host, repo, tag="1"), old)
    new = write_release(tmp_path / "new", ROOTFS_SIZE, name="new")
    new["kernel"] = old["kernel"]  # the same kernel in both releases: there already, not sent
    expected = {"1": plan_image(old)["digest"], "2": plan_image(new)["digest"]}
    events = []
    original = oci.file_digest

    def slow_file_digest(path, *args, **kwargs):
        result = original(path, *args, **kwargs)
        if path == new["rootfs"]:
            time.sleep(HASH_DELAY)
            events.append("rootfs hashed")
        return result

    monkeypatch.setattr(oci, "file_digest", slow_file_digest)
    push_blob = registry_module.RegistryTarget.push_blob

    def recorded_push_blob(self, desc, source):
        sent = push_blob(self, desc, source)
        events.append(("sent" if sent else "skipped", source if isinstance(source, str) else "config"))
        return sent

    monkeypatch.setattr(registry_module.RegistryTarget, "push_blob", recorded_push_blob)
    mark = registry.mark()
    pushed = push_image(target(registry.host, repo, tag="2"), new)
    assert pushed["digest"] == expected["2"]
    assert events == [("skipped", "config"), ("skipped", old["kernel"]), ("sent", new["initramfs"]),
                      "rootfs hashed", ("sent", new["rootfs"])], events
    assert not [r for r in registry.requests_since(mark) if r.method == "PATCH"]
    assert tags_of(registry, repo) == expected
    for role in ("rootfs", "initramfs", "kernel"):
        assert blob_digest_on_registry(registry, repo, oci.file_digest(new[role])[0]) == oci.file_digest(new[role])

    events[:] = []
    mark = registry.mark()
    again = push_image(target(registry.host, repo, tag="2"), new)
    assert again["changed"] is False and events == ["rootfs hashed"]
    assert [(r.method, r.path) for r in registry.requests_since(mark) if "/blobs/" in r.path] == []
    assert registry.writes_since(mark) == []


# --- a file changed under the push ------------------------------------------------------------------


def _change_after_hashing(monkeypatch, path, how):
    """The rootfs changes right after the hashing thread (or the hash-first pass) read it."""
    original = oci.file_digest

    def file_digest(name, *args, **kwargs):
        result = original(name, *args, **kwargs)
        if name == path:
            with open(path, "r+b") as handle:
                if how == "modified":
                    handle.seek(-1, os.SEEK_END)
                    last = handle.read(1)
                    handle.seek(-1, os.SEEK_END)
                    handle.write(bytes([last[0] ^ 0xFF]))
                else:
                    handle.truncate(os.path.getsize(path) - 4096)
        return result

    monkeypatch.setattr(oci, "file_digest", file_digest)


@pytest.mark.parametrize("how", ["modified", "truncated"])
@pytest.mark.parametrize("path_kind", ["streamed", "hash-first"])
def test_file_changed_after_hashing_is_refused_with_one_line(registry, release, streaming, monkeypatch,
                                                             how, path_kind):
    repo = new_repo("changed")
    plan = plan_image(release)
    rootfs = rootfs_layer(plan)
    if path_kind == "hash-first":
        monkeypatch.setattr(push_module, "STREAM_MIN_SIZE", 1 << 62)
    _change_after_hashing(monkeypatch, release["rootfs"], how)
    mark = registry.mark()
    with pytest.raises(DigestMismatch) as failed:
        push_image(target(registry.host, repo), release)
    message = str(failed.value)
    print(message)
    assert "\n" not in message and len(message) < 600
    assert message.startswith("rootfs: %s changed while it was pushed" % release["rootfs"]), message
    seen = registry.requests_since(mark)
    assert bool([r for r in seen if r.method == "PATCH"]) == (path_kind == "streamed")
    # stored under no digest: neither the planned one nor that of what the file holds now
    now = oci.file_digest(release["rootfs"])[0]
    for digest in (rootfs.digest, now):
        assert registry_get(registry, "/v2/%s/blobs/%s" % (repo, digest), method="HEAD").status_code == 404
    assert tags_of(registry, repo) == {}
    assert not [r for r in seen if "/manifests/" in r.path and r.method == "PUT"]


@pytest.mark.parametrize("path_kind", ["streamed", "hash-first"])
def test_file_deleted_after_hashing_names_its_option(registry, release, streaming, monkeypatch, path_kind):
    repo = new_repo("deleted")
    if path_kind == "hash-first":
        monkeypatch.setattr(push_module, "STREAM_MIN_SIZE", 1 << 62)
    original = oci.file_digest

    def file_digest(name, *args, **kwargs):
        result = original(name, *args, **kwargs)
        if name == release["rootfs"]:
            os.remove(name)
        return result

    monkeypatch.setattr(oci, "file_digest", file_digest)
    with pytest.raises(OnmetalError) as failed:
        push_image(target(registry.host, repo), release)
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("rootfs: cannot read %s" % release["rootfs"]), message
    assert tags_of(registry, repo) == {}
    assert registry.uploads_left(repo) == []


# --- connections dropped in the middle of the stream ----------------------------------------------------


@pytest.mark.parametrize("which", [0, 1], ids=["first-patch", "second-patch"])
def test_connection_dropped_mid_patch_starts_the_blob_over(registry, proxy, release, streaming, which):
    repo = new_repo("drop")
    plan = plan_image(release)
    rootfs = rootfs_layer(plan)
    cut = proxy.add("PATCH", UPLOAD_PATH, "drop", after_bytes=2 * MIB, skip=which)
    pushed = push_image(target(proxy.host, repo, timeout=20), release)
    assert cut.hits == 1
    assert pushed["digest"] == plan["digest"]
    assert rootfs.digest in pushed["blobs_sent"]
    patches = proxy.requests("PATCH", UPLOAD_PATH)
    first = int(registry_module.STREAM_AHEAD_FRACTION * rootfs.size)
    assert [(p.fault, p.bytes_in) for p in patches] == [(None, first), ("drop", 2 * MIB)][1 - which:]
    # then the whole file again, from its start, in one PUT that the registry checked
    again = [s for s in proxy.requests("PUT", UPLOAD_PATH) if rootfs.digest.replace(":", "%3A") in s.uri]
    assert [(s.bytes_in, s.status) for s in again] == [(rootfs.size, 201)]
    assert_stored_exactly(registry, repo, pushed, release)
    assert tags_of(registry, repo) == {"1": plan["digest"]}


def test_closing_put_refused_then_the_blob_goes_again(registry, proxy, release, streaming):
    repo = new_repo("close-503")
    plan = plan_image(release)
    rootfs = rootfs_layer(plan)
    # the PUTs of the config blob, the kernel and the initramfs pass (smallest first); the next
    # upload PUT is the rootfs stream's closing one
    refused = proxy.add("PUT", UPLOAD_PATH, "status", status=503, skip=3)
    pushed = push_image(target(proxy.host, repo, timeout=20), release)
    assert refused.hits == 1
    assert pushed["digest"] == plan["digest"]
    closing = [s for s in proxy.requests("PUT", UPLOAD_PATH) if s.fault == "status"]
    assert len(closing) == 1 and closing[0].bytes_in == 0 and rootfs.digest.replace(":", "%3A") in closing[0].uri
    again = [s for s in proxy.requests("PUT", UPLOAD_PATH) if s.fault is None and s.bytes_in == rootfs.size]
    assert [s.status for s in again] == [201]
    assert_stored_exactly(registry, repo, pushed, release)


def test_registry_refusing_chunked_uploads_gets_the_blob_whole(registry, proxy, release, streaming):
    """A registry that answers the first PATCH with 405 (no chunked uploads): the file is PUT whole
    once hashed, and that refusal is not one of the tries (retries: 0 still succeeds)."""
    repo = new_repo("no-chunks")
    plan = plan_image(release)
    rootfs = rootfs_layer(plan)
    refused = proxy.add("PATCH", UPLOAD_PATH, "status", status=405, count=100)
    pushed = push_image(target(proxy.host, repo, timeout=20, retries=0), release)
    assert refused.hits == 1
    assert pushed["digest"] == plan["digest"]
    whole = [s for s in proxy.requests("PUT", UPLOAD_PATH) if rootfs.digest.replace(":", "%3A") in s.uri]
    assert [(s.bytes_in, s.status) for s in whole] == [(rootfs.size, 201)]
    assert_stored_exactly(registry, repo, pushed, release)


@pytest.mark.parametrize("retries,tries", [(0, 1), (2, 3)])
def test_stream_and_uploads_dropped_on_every_try_fail_with_one_line(registry, proxy, release, streaming,
                                                                    retries, tries):
    repo = new_repo("drop-always")
    proxy.add("PATCH", UPLOAD_PATH, "drop", after_bytes=MIB, count=100)
    puts = proxy.add("PUT", UPLOAD_PATH, "drop", after_bytes=MIB, min_body=4 * MIB, count=100)
    with pytest.raises(OnmetalError) as failed:
        push_image(target(proxy.host, repo, timeout=20, retries=retries), release)
    message = str(failed.value)
    print(message)
    assert "\n" not in message
    assert "to %s after %d %s" % (proxy.host, tries, "try" if tries == 1 else "tries") in message
    assert len(proxy.requests("PATCH", UPLOAD_PATH)) == 1
    assert puts.hits == tries - 1, "retries: %d means %d tries of the rootfs in all" % (retries, tries)
    assert tags_of(registry, repo) == {}


# --- the module, above the real threshold ---------------------------------------------------------------


@pytest.mark.parametrize("extra,streams", [(1, True), (0, True), (-1, False)])
def test_the_real_threshold(registry, tmp_path, monkeypatch, extra, streams):
    """STREAM_MIN_SIZE as shipped: a rootfs of that size or more streams when its hash is still
    running at its turn (slowed here: how fast it hashes is the machine's, not the test's)."""
    size = push_module.STREAM_MIN_SIZE + extra
    params = write_release(tmp_path / "edge", size, name="edge")
    original = oci.file_digest

    def slow_file_digest(path, *args, **kwargs):
        if path == params["rootfs"]:
            time.sleep(HASH_DELAY)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(oci, "file_digest", slow_file_digest)
    repo = new_repo("edge")
    mark = registry.mark()
    pushed = push_image(target(registry.host, repo), params)
    assert [r.method for r in registry.requests_since(mark)].count("PATCH") == (2 if streams else 0)
    assert_stored_exactly(registry, repo, pushed, params)


@pytest.mark.timeout(300)
def test_module_pushes_a_rootfs_above_the_threshold(registry, tmp_path):
    """Through the module: whether the rootfs streamed or was hashed before its turn came (a race
    the machine decides), the registry holds exactly the files, and a second run writes nothing."""
    big = write_release(tmp_path / "big", push_module.STREAM_MIN_SIZE + 1, name="big")
    plan = plan_image(big)
    repo = new_repo("module")
    run = run_module("onmetal_push", dict(big, ref="%s/%s:1" % (registry.host, repo), tags=["latest"],
                                          plain_http=True), timeout=300)
    assert not run.failed, run.output
    assert run.result["changed"] is True
    assert run.result["digest"] == plan["digest"]
    assert rootfs_layer(plan).digest in run.result["blobs_sent"]
    assert_stored_exactly(registry, repo, run.result, big)
    assert registry.uploads_left(repo) == []

    mark = registry.mark()
    again = run_module("onmetal_push", dict(big, ref="%s/%s:1" % (registry.host, repo), tags=["latest"],
                                            plain_http=True), timeout=300)
    assert not again.failed and again.result["changed"] is False
    assert registry.writes_since(mark) == []
