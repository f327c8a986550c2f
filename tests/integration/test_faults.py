"""Faults between the client and a real registry, a registry that dies mid-push, and tampered storage.

Issue 6, first two bullets. The faults come from tests/support/fault_proxy.py, a loopback
reverse proxy in front of the session's plain registry: a connection cut in the middle of a blob
upload, 503 then success, 429 with ``Retry-After``, a stalled answer longer than ``timeout``.
Pushes go through the real ``onmetal_push`` module (ansible CLI), so "one clear line" means the
task's ``msg``: one line, no traceback in the output, naming the registry (the proxy's address is
the registry the client knows) or the option.

After every fault, whatever the outcome, the repository is walked on the registry itself (not
through the proxy): every tag's manifest is fetched and every blob it names is HEADed.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid

import pytest
import requests

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import plan_image, push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target
from ansible_collections.gardenlinux.onmetal.tests.support import releases
from ansible_collections.gardenlinux.onmetal.tests.support.ansible import run_module

MIB = 1024 * 1024
COMMAND_LINE = releases.COMMAND_LINE
UPLOAD_PUT = r"/blobs/uploads/."      # the PUT that carries a blob (to the upload's Location)
UPLOAD_POST = r"/blobs/uploads/$"     # the POST that starts an upload
MANIFEST = r"/manifests/"
BLOB = r"/blobs/sha256:"
ACCEPT = ", ".join((mt.OCI_MANIFEST, mt.OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"))


# --- fixtures and helpers ------------------------------------------------------------------------


def write_release(folder, rootfs_bytes, name="fault"):
    return releases.write_release(folder, rootfs_bytes, name, 300 * 1024, 200 * 1024)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """8 MiB rootfs: big enough to cut in the middle of its upload."""
    return write_release(tmp_path_factory.mktemp("fault-release"), 8 * MIB)


@pytest.fixture(scope="module")
def expected_digest(release):
    return plan_image(release)["digest"]


def new_repo(prefix):
    return "faults/%s-%s" % (prefix, uuid.uuid4().hex[:8])


def push_module(host, repo, release, **options):
    args = dict(release, ref="%s/%s:1" % (host, repo), tags=["latest"], plain_http=True)
    args.update(options)
    return run_module("onmetal_push", args, timeout=300)


def assert_pushed(run, digest):
    assert not run.failed, run.output
    assert run.result["digest"] == digest
    assert run.result["changed"] is True


def assert_one_clear_line(run, *names):
    """The task failed with one line naming each of ``names``, and no traceback anywhere."""
    assert run.failed, run.output
    msg = run.msg
    print("failure message: %s" % msg)
    assert msg, run.output
    assert "\n" not in msg.strip(), "more than one line: %r" % msg
    assert "Traceback" not in run.output, run.output
    # ansible-core 2.19 records "(traceback unavailable)" for any fail_json from inside an except
    # block; what matters is that no trace reaches the user
    assert "Traceback" not in str(run.result.get("exception", "")), run.result["exception"]
    assert "An exception occurred" not in run.output, run.output
    assert not msg.startswith("unexpected"), "a defect path, not a clear error: %s" % msg
    assert len(msg) < 600, msg
    for name in names:
        assert name in msg, "%r not named in %r" % (name, msg)


def assert_tries_told_right(msg, tries):
    """A message that counts the tries counts them right."""
    told = re.search(r"after (\d+) tr(?:y|ies)", msg)
    if told:
        assert int(told.group(1)) == tries, "the message says %s, but %d tries were made: %s" % (
            told.group(0), tries, msg)


def registry_get(registry, path, method="GET", **kwargs):
    return requests.request(method, registry.url + path, timeout=30, **dict(registry.requests_kwargs(), **kwargs))


def walk_repository(registry, repo):
    """Every tag of ``repo`` on the registry itself: manifest digest checked, every blob present.

    Returns {tag: manifest digest}. Fails the test when a tag points at missing content.
    """
    response = registry_get(registry, "/v2/%s/tags/list" % repo)
    if response.status_code == 404:
        return {}  # the repository was never created: nothing can dangle
    response.raise_for_status()
    tags = response.json().get("tags") or []
    found = {}
    for tag in tags:
        found[tag] = _walk_manifest(registry, repo, tag, "tag %s" % tag)
    return found


def _walk_manifest(registry, repo, name, what, depth=0):
    assert depth < 4, "%s: manifests nested too deep" % what
    response = registry_get(registry, "/v2/%s/manifests/%s" % (repo, name), headers={"Accept": ACCEPT})
    assert response.status_code == 200, "%s of %s points at a manifest the registry cannot serve (%d)" % (
        what, repo, response.status_code)
    digest = oci.sha256_digest(response.content)
    assert response.headers.get("Docker-Content-Digest") in (None, digest), what
    if name.startswith("sha256:"):
        assert digest == name, "%s: manifest bytes do not match %s" % (what, name)
    manifest = json.loads(response.content)
    for child in manifest.get("manifests") or []:
        _walk_manifest(registry, repo, child["digest"], "%s -> %s" % (what, child["digest"]), depth + 1)
    blobs = ([manifest["config"]] if manifest.get("config") else []) + list(manifest.get("layers") or [])
    for blob in blobs:
        head = registry_get(registry, "/v2/%s/blobs/%s" % (repo, blob["digest"]), method="HEAD")
        assert head.status_code == 200, "%s of %s points at missing blob %s (%d)" % (
            what, repo, blob["digest"], head.status_code)
        assert int(head.headers["Content-Length"]) == blob["size"], "%s: blob %s has the wrong size" % (what, blob["digest"])
    return digest


def assert_consistent(registry, repo, digest=None):
    """No tag points at missing content; with ``digest``, both tags name exactly that manifest."""
    tags = walk_repository(registry, repo)
    if digest is not None:
        assert tags == {"1": digest, "latest": digest}, tags
    return tags


def gap_after(proxy, answered_entry):
    """Seconds between the proxy's answer to ``answered_entry`` and the client's next request."""
    later = [s.started for s in proxy.seen if s.started > answered_entry.answered]
    assert later, "the client sent nothing after the answer"
    return min(later) - answered_entry.answered


# --- faults through the proxy ------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_connection_dropped_mid_blob_upload_is_retried(registry, proxy, release, expected_digest):
    repo = new_repo("drop")
    cut = proxy.add("PUT", UPLOAD_PUT, "drop", min_body=4 * MIB, after_bytes=1 * MIB)
    run = push_module(proxy.host, repo, release, timeout=20)
    assert_pushed(run, expected_digest)
    assert cut.hits == 1
    big_puts = [s for s in proxy.requests("PUT", UPLOAD_PUT) if s.bytes_in >= MIB]
    assert [s.fault for s in big_puts] == ["drop", None], big_puts
    assert big_puts[0].bytes_in == MIB and big_puts[1].bytes_in == 8 * MIB
    assert big_puts[1].status == 201
    assert_consistent(registry, repo, expected_digest)


@pytest.mark.timeout(240)
def test_connection_dropped_on_every_try_fails_with_one_line(registry, proxy, release):
    repo = new_repo("drop-always")
    cut = proxy.add("PUT", UPLOAD_PUT, "drop", min_body=4 * MIB, after_bytes=1 * MIB, count=100)
    run = push_module(proxy.host, repo, release, retries=2, timeout=20)
    assert_one_clear_line(run, proxy.host)
    assert cut.hits == 3, "retries: 2 means three tries of the blob upload, not %d" % cut.hits
    assert_tries_told_right(run.msg, cut.hits)
    assert_consistent(registry, repo)
    assert "1" not in walk_repository(registry, repo)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("method,path", [
    ("POST", UPLOAD_POST),
    ("PUT", UPLOAD_PUT),
    ("PUT", MANIFEST),
    ("HEAD", BLOB),
    ("HEAD", MANIFEST),
], ids=["upload-post", "blob-put", "manifest-put", "blob-head", "manifest-head"])
def test_503_twice_then_success(registry, proxy, release, expected_digest, method, path):
    repo = new_repo("503")
    fault = proxy.add(method, path, "status", status=503, count=2)
    run = push_module(proxy.host, repo, release, timeout=20)
    assert_pushed(run, expected_digest)
    assert fault.hits == 2
    answered = [s for s in proxy.requests(method, path) if s.fault == "status"]
    assert [s.status for s in answered] == [503, 503]
    assert_consistent(registry, repo, expected_digest)


@pytest.mark.timeout(240)
def test_one_503_with_no_retries_fails_with_one_line(registry, proxy, release):
    repo = new_repo("503-no-retry")
    fault = proxy.add("POST", UPLOAD_POST, "status", status=503, count=1)
    run = push_module(proxy.host, repo, release, retries=0, timeout=20)
    assert_one_clear_line(run, proxy.host, "503")
    assert fault.hits == 1
    assert len(proxy.requests("POST", UPLOAD_POST)) == 1, "retries: 0 sent the POST again"
    assert_consistent(registry, repo)
    assert walk_repository(registry, repo) == {}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("method,path,min_body,retry_after", [
    ("POST", UPLOAD_POST, 0, 1),
    ("PUT", MANIFEST, 0, 1),
    # 3 s, not 1: the blob PUT's own retry loop backs off 0.5 to 1.0 s at random, so with 1 s a
    # client that ignores Retry-After would still pass now and then
    ("PUT", UPLOAD_PUT, 4 * MIB, 3),
], ids=["upload-post", "manifest-put", "blob-put"])
def test_429_waits_for_retry_after(registry, proxy, release, expected_digest, method, path, min_body, retry_after):
    repo = new_repo("429")
    fault = proxy.add(method, path, "status", status=429, headers={"Retry-After": str(retry_after)}, min_body=min_body)
    run = push_module(proxy.host, repo, release, timeout=20)
    assert_pushed(run, expected_digest)
    assert fault.hits == 1
    refused = [s for s in proxy.seen if s.fault == "status"][0]
    assert refused.status == 429
    waited = gap_after(proxy, refused)
    assert waited >= retry_after, "the client came back %.3f s after a 429 with Retry-After: %d" % (waited, retry_after)
    assert_consistent(registry, repo, expected_digest)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("method,path,min_body,forward", [
    ("HEAD", MANIFEST, 0, False),
    ("HEAD", BLOB, 0, False),
    ("PUT", UPLOAD_PUT, 4 * MIB, False),
    ("PUT", MANIFEST, 0, True),
], ids=["manifest-head", "blob-head", "blob-put", "manifest-put-applied-late"])
def test_stalled_answer_is_retried(registry, proxy, release, expected_digest, method, path, min_body, forward):
    repo = new_repo("stall")
    fault = proxy.add(method, path, "stall", seconds=6, min_body=min_body, forward=forward)
    started = time.monotonic()
    run = push_module(proxy.host, repo, release, timeout=2)
    assert_pushed(run, expected_digest)
    assert fault.hits == 1
    assert len(proxy.requests(method, path)) >= 2, "the stalled request was not tried again"
    assert time.monotonic() - started < 120
    assert_consistent(registry, repo, expected_digest)


@pytest.mark.timeout(240)
def test_stalled_on_every_try_fails_with_one_line(registry, proxy, release):
    repo = new_repo("stall-always")
    fault = proxy.add("HEAD", MANIFEST, "stall", seconds=6, count=100)
    started = time.monotonic()
    run = push_module(proxy.host, repo, release, retries=1, timeout=2)
    elapsed = time.monotonic() - started
    assert_one_clear_line(run, proxy.host)
    assert fault.hits == 2, "retries: 1 means two tries, not %d" % fault.hits
    assert_tries_told_right(run.msg, fault.hits)
    assert elapsed < 60, "gave up only after %.0f s" % elapsed
    assert walk_repository(registry, repo) == {}


def link_path(reg, repo, digest):
    """The repository's link to a blob in distribution's filesystem storage."""
    algorithm, hexdigest = digest.split(":", 1)
    return os.path.join(reg.storage_dir, "docker", "registry", "v2", "repositories", repo, "_layers", algorithm,
                        hexdigest, "link")


@pytest.mark.timeout(240)
def test_manifest_put_during_a_concurrent_relink_of_its_blob_is_retried(registry, proxy, release, expected_digest):
    """distribution 2.8 (filesystem storage) rewrites a blob's repository link in place (truncate, then
    write) each time an upload of that blob completes. A manifest PUT checked in that window is
    refused: 400 DIGEST_INVALID + MANIFEST_BLOB_UNKNOWN, although the blob is there a moment later.
    Concurrent writers of the same content (four publishes of one release, two cosign signers whose
    .sig config blob is identical) hit it now and then; here the window is held open for exactly the
    first manifest PUT by emptying the config blob's link, and the registry gives its real answer.
    """
    repo = new_repo("relink")
    config_digest = oci.sha256_digest(plan_image(release)["config_bytes"])
    saved = {}

    def empty_link():
        path = link_path(registry, repo, config_digest)
        with open(path, "rb") as handle:
            saved["link"] = handle.read()
        with open(path, "wb"):
            pass

    def restore_link():
        with open(link_path(registry, repo, config_digest), "wb") as handle:
            handle.write(saved["link"])

    window = proxy.add("PUT", MANIFEST, "hook", before=empty_link, after=restore_link)
    run = push_module(proxy.host, repo, release, timeout=20)
    assert window.hits == 1 and not window.errors, window.errors
    first = proxy.requests("PUT", MANIFEST)[0]
    assert first.status == 400, "the registry accepted the manifest while the link was empty: no race window"
    assert_pushed(run, expected_digest)
    assert_consistent(registry, repo, expected_digest)


# --- the registry dies mid-push ---------------------------------------------------------------


def _upload_sizes(reg):
    """Bytes in every unfinished upload of the registry's storage."""
    sizes = []
    for root, _dirs, files in os.walk(os.path.join(reg.storage_dir, "docker", "registry", "v2", "repositories")):
        if "_uploads" in root.split(os.sep) and "data" in files:
            try:
                sizes.append(os.path.getsize(os.path.join(root, "data")))
            except OSError:
                pass
    return sizes


@pytest.mark.timeout(600)
def test_registry_killed_mid_push_then_restarted(make_registry, tmp_path):
    reg = make_registry()
    big = write_release(tmp_path / "big", 200 * MIB, name="big")
    plan = plan_image(big)
    rootfs_digest = [layer.digest for layer in plan["layers"] if layer.role == "rootfs"][0]
    repo = "crash/gardenlinux"
    args = dict(big, ref="%s/%s:1" % (reg.host, repo), tags=["latest"], plain_http=True, retries=2, timeout=20)

    outcome = {}
    pusher = threading.Thread(target=lambda: outcome.setdefault("run", run_module("onmetal_push", args, timeout=300)),
                              daemon=True)
    pusher.start()
    deadline = time.monotonic() + 120
    killed_at = None
    while time.monotonic() < deadline and pusher.is_alive():
        if any(size >= 16 * MIB for size in _upload_sizes(reg)):
            reg.kill()
            killed_at = max(_upload_sizes(reg) or [0])
            break
        time.sleep(0.005)
    pusher.join(300)
    assert not pusher.is_alive(), "the push did not end after the registry died"
    assert killed_at is not None, "never saw the rootfs upload under way: %r" % outcome.get("run").output
    assert not os.path.exists(reg.blob_data_path(rootfs_digest)), (
        "the rootfs upload had finished before the kill: the test did not crash it mid-upload")
    assert_one_clear_line(outcome["run"], reg.host)

    reg.restart()
    assert walk_repository(reg, repo) == {}, "a tag was written although the push failed"
    mark = reg.mark()
    again = run_module("onmetal_push", args, timeout=300)
    assert_pushed(again, plan["digest"])
    assert any(r.method == "PUT" and "/blobs/uploads/" in r.path for r in reg.requests_since(mark))
    assert_consistent(reg, repo, plan["digest"])
    with open(reg.blob_data_path(rootfs_digest), "rb") as stored, open(big["rootfs"], "rb") as source:
        assert oci.sha256_digest(stored.read()) == oci.sha256_digest(source.read())

    mark = reg.mark()
    third = run_module("onmetal_push", args, timeout=300)
    assert not third.failed, third.output
    assert third.result["changed"] is False
    assert reg.writes_since(mark) == []


# --- tampered storage -------------------------------------------------------------------------


def flip_byte(path, offset):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


@pytest.fixture
def small_release(tmp_path):
    return write_release(tmp_path / "small", 2 * MIB, name="tamper-me")


@pytest.mark.timeout(240)
def test_tampered_blob_pull_fails_on_the_digest_and_leaves_no_partial_file(make_registry, small_release, tmp_path):
    reg = make_registry()
    ref = "%s/tamper/blob:1" % reg.host
    pushed = push_image(open_target(parse(ref), {"plain_http": True}), small_release)
    layers = {layer["mediaType"]: layer for layer in pushed["manifest"]["layers"]}
    initramfs = layers[mt.FLAVORS["onmetal"]["initramfs"]]
    data_path = reg.blob_data_path(initramfs["digest"])
    size = os.path.getsize(data_path)
    flip_byte(data_path, size // 2)
    assert os.path.getsize(data_path) == size

    # every layer: rootfs comes first and is complete; initramfs fails; kernel is never started
    dest = tmp_path / "dest"
    run = run_module("onmetal_pull", {"ref": ref, "dest": str(dest), "plain_http": True})
    assert_one_clear_line(run, initramfs["digest"])
    assert "digest" in run.msg
    left = sorted(os.listdir(dest)) if dest.exists() else []
    assert left == ["tamper-me.raw"], left
    assert oci.file_digest(str(dest / "tamper-me.raw"))[0] == layers[mt.FLAVORS["onmetal"]["rootfs"]]["digest"]

    # only the damaged layer: nothing at all is left
    only = tmp_path / "only"
    run = run_module("onmetal_pull", {"ref": ref, "dest": str(only), "plain_http": True, "layers": ["initramfs"]})
    assert_one_clear_line(run, initramfs["digest"])
    assert (sorted(os.listdir(only)) if only.exists() else []) == []
    assert walk_repository(reg, "tamper/blob") == {"1": pushed["digest"]}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("by", ["digest", "tag"])
def test_tampered_manifest_is_refused_by_info(make_registry, small_release, by):
    reg = make_registry()
    ref = "%s/tamper/manifest:1" % reg.host
    pushed = push_image(open_target(parse(ref), {"plain_http": True}), small_release)
    digest = pushed["digest"]
    data_path = reg.blob_data_path(digest)
    with open(data_path, "rb") as handle:
        original = handle.read()
    # still valid JSON of the same size, so the registry serves it as it is
    assert original.count(b"tamper-me.raw") == 1
    altered = original.replace(b"tamper-me.raw", b"tamper-me.rax")
    with open(data_path, "wb") as handle:
        handle.write(altered)
    served = registry_get(reg, "/v2/tamper/manifest/manifests/%s" % (digest if by == "digest" else "1"),
                          headers={"Accept": ACCEPT})
    assert served.status_code == 200 and served.content == altered, "the registry did not serve the altered bytes"

    name = "%s/tamper/manifest%s" % (reg.host, "@" + digest if by == "digest" else ":1")
    run = run_module("onmetal_info", {"ref": name, "plain_http": True})
    assert_one_clear_line(run, digest)
    assert "digest" in run.msg
    assert oci.sha256_digest(altered) in run.msg
