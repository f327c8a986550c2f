"""Several writers at once (issue 6, third bullet).

- Four ``ansible-playbook playbooks/publish.yml`` runs of the same release, started together, to
  the same registry repository and signed with the same key: all succeed with one digest, and the
  ``.sig`` manifest holds exactly ONE signature, valid for that key.

  Why one and not four: cosign (and ``cosign_sign``) first looks for a layer that is this very
  payload with a signature the key verifies, and adds nothing when there is one (cosign's
  duplicate detector). ECDSA signatures differ from run to run, but the payload is the same, so a
  signer that reads the ``.sig`` after another's write adds nothing; signers that read before
  any write each write ``[their layer]`` and the last write wins. Either way one layer is left,
  and every run's own check ("is a signature of this payload by this key there?") holds.
- The same four into one OCI image layout: index.json stays valid JSON, with one entry per tag
  (the image tag, the ``.sig`` tag, the referrers tag), no temporary files left, one signature.
- Two ``cosign_sign`` runs with DIFFERENT keys at once on the same image leave both signatures,
  each verifying with ``cosign_verify``: five rounds through the modules (two processes), and
  five rounds through the engine with two threads released by one barrier (a tighter race:
  both read the ``.sig`` before either writes), on the registry and on a layout.
- The same, made deterministic with the fault proxy: one signer's ``.sig`` write is answered 503
  while the other signs from start to finish; the first signer's retry must not put back the
  stale list of signatures it read before (which would drop the other's, silently: both runs
  report success).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import NotFound
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.keyfiles import (
    ensure_keypair,
    read_private_key,
    read_public_key,
)
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target
from ansible_collections.gardenlinux.onmetal.tests.support.ansible import REPO_ROOT, run_module, run_playbook
from ansible_collections.gardenlinux.onmetal.tests.support.fault_proxy import FaultProxy

WRITERS = 4
ROUNDS = 5
CNAME = "kvm-gardener_prod-amd64-1877.3-conc0001"
VERSION = "1877.3"
PASSWORDS = {"first": "first-concurrency-key-pw", "second": "second-concurrency-key-pw"}


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conc-release")
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "sample_release.py"), str(folder), "--cname", CNAME,
                    "--version", VERSION, "--rootfs-mib", "2", "--initrd-mib", "0.5", "--kernel-mib", "0.25"],
                   check=True, capture_output=True, timeout=120)
    return folder


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """{"first": (private path, public path), "second": (...)}: two cosign key pairs."""
    folder = tmp_path_factory.mktemp("conc-keys")
    made = {}
    for name, password in PASSWORDS.items():
        private, public = str(folder / ("%s.key" % name)), str(folder / ("%s.pub" % name))
        ensure_keypair(private, public, password)
        made[name] = (private, public)
    return made


def together(jobs, timeout=600):
    """Run the callables at once (threads released by one barrier); their results, in order."""
    barrier = threading.Barrier(len(jobs), timeout=60)

    def start(job):
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(start, job) for job in jobs]
        return [future.result(timeout=timeout) for future in futures]


def task_result(run, suffix):
    found = [result for name, _status, result in run.result["tasks"] if name.endswith(suffix)]
    assert found, "no task %r in %s" % (suffix, [name for name, unused, unused in run.result["tasks"]])
    return found[-1]


def signatures(target, ref, digest, public_keys):
    """The layers of ``digest``'s ``.sig`` manifest, each as (payload digest, name of the key it verifies with or None)."""
    sig_ref = ref.replace(tag=cosign.signature_tag(digest), digest=None)
    try:
        data = target.fetch_manifest(sig_ref)[0]
    except NotFound:
        return []
    manifest = json.loads(data)
    found = []
    for layer in manifest.get("layers") or []:
        assert layer["mediaType"] == mt.COSIGN_SIMPLESIGNING, layer
        payload = target.read_blob(layer["digest"], layer["size"])
        assert cosign.payload_digest_of(cosign.parse_payload(payload)) == digest, payload
        b64sig = (layer.get("annotations") or {}).get(mt.COSIGN_SIGNATURE_ANNOTATION)
        by = [name for name, key in public_keys.items() if cosign.verify_payload(key, payload, b64sig)]
        found.append((layer["digest"], by[0] if by else None))
    # the config lists exactly these layers, so ggcr-based readers (cosign) see the same
    config = json.loads(target.read_blob(manifest["config"]["digest"], manifest["config"]["size"]))
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in manifest["layers"]]
    return found


def public_keys(keys, *names):
    return {name: read_public_key(keys[name][1]) for name in names}


def publish_extra(release, target, keys, plain_http=False):
    return {
        "publish_release_dir": str(release),
        "publish_target": target,
        "publish_plain_http": plain_http,
        "publish_private_key": keys["first"][0],
        "publish_key_password": PASSWORDS["first"],
        "publish_public_key": keys["first"][1],
    }


def assert_all_published(runs):
    for run in runs:
        assert run.rc == 0, run.output
        assert run.result["stats"].get("failures", 0) == 0, run.output
    digests = {task_result(run, "Push the image")["digest"] for run in runs}
    assert len(digests) == 1, digests
    for run in runs:
        sign = task_result(run, "Sign the image")
        assert not sign.get("failed") and not sign.get("skipped"), sign
        verify = task_result(run, "Verify the signature")
        assert not verify.get("failed") and not verify.get("skipped"), verify
    return digests.pop()


# --- four publishes at once --------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_four_publishes_at_once_to_one_registry_repository(registry, release, keys):
    repo = "concurrency/publish-%s" % uuid.uuid4().hex[:8]
    extra = publish_extra(release, "%s/%s" % (registry.host, repo), keys, plain_http=True)
    runs = together([lambda: run_playbook("playbooks/publish.yml", extra, timeout=600) for unused in range(WRITERS)],
                    timeout=700)
    digest = assert_all_published(runs)

    ref = parse("%s/%s:%s" % (registry.host, repo, VERSION))
    target = open_target(ref, {"plain_http": True})
    assert target.resolve(ref)["digest"] == digest
    found = signatures(target, ref, digest, public_keys(keys, "first"))
    assert [by for unused, by in found] == ["first"], found
    # the extras went to the referrers tag once, not once per writer
    index = target.fetch_manifest(ref.replace(tag=digest.replace(":", "-"), digest=None))[0]
    assert len(json.loads(index)["manifests"]) == 1
    verify = run_module("cosign_verify", {"ref": str(ref), "public_key": keys["first"][1], "plain_http": True})
    assert not verify.failed, verify.output

    again = run_playbook("playbooks/publish.yml", extra, timeout=600)
    assert again.rc == 0, again.output
    assert again.result["stats"].get("changed", 0) == 0, [n for n, unused, r in again.result["tasks"] if r.get("changed")]


@pytest.mark.timeout(900)
def test_four_publishes_at_once_into_one_oci_layout(tmp_path, release, keys):
    store = tmp_path / "store"
    extra = publish_extra(release, "oci:%s:stable" % store, keys)
    runs = together([lambda: run_playbook("playbooks/publish.yml", extra, timeout=600) for unused in range(WRITERS)],
                    timeout=700)
    digest = assert_all_published(runs)

    with open(store / "index.json", "rb") as handle:
        index = json.loads(handle.read())
    assert isinstance(index, dict) and isinstance(index.get("manifests"), list), index
    names = [(entry.get("annotations") or {}).get(mt.REF_NAME_ANNOTATION) for entry in index["manifests"]]
    tagged = [name for name in names if name]
    assert sorted(tagged) == sorted(set(tagged)), "a tag listed twice: %s" % tagged
    assert set(tagged) == {"stable", cosign.signature_tag(digest), digest.replace(":", "-")}, tagged
    untagged = [entry["digest"] for entry, name in zip(index["manifests"], names) if not name]
    assert len(untagged) == len(set(untagged)), "an untagged manifest listed twice: %s" % untagged
    for entry in index["manifests"]:
        with open(store / "blobs" / "sha256" / entry["digest"].split(":", 1)[1], "rb") as handle:
            data = handle.read()
        assert oci.sha256_digest(data) == entry["digest"] and len(data) == entry["size"], entry
    leftovers = [os.path.join(root, name) for root, _dirs, files in os.walk(store) for name in files
                 if name.startswith(".tmp-")]
    assert leftovers == [], leftovers

    ref = parse("oci:%s:stable" % store)
    target = open_target(ref)
    assert target.resolve(ref)["digest"] == digest
    found = signatures(target, ref, digest, public_keys(keys, "first"))
    assert [by for unused, by in found] == ["first"], found
    verify = run_module("cosign_verify", {"ref": str(ref), "public_key": keys["first"][1]})
    assert not verify.failed, verify.output


# --- two signers with different keys at once ---------------------------------------------------


def push_fresh_image(ref_text, tmp_path, label):
    """A small image of its own (its digest differs from every other round's)."""
    folder = tmp_path / ("image-%s" % label)
    folder.mkdir()
    files = {}
    for role in ("rootfs", "initramfs", "kernel"):
        path = folder / role
        path.write_bytes(os.urandom(4096))
        files[role] = str(path)
    ref = parse(ref_text)
    target = open_target(ref, {"plain_http": True})
    return push_image(target, dict(files, command_line="console=ttyS0 round=%s" % label))["digest"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("round_", range(1, ROUNDS + 1))
def test_two_keys_sign_at_once_through_the_modules(registry, keys, tmp_path, round_):
    ref = "%s/concurrency/two-keys-%s:r%d" % (registry.host, uuid.uuid4().hex[:8], round_)
    digest = push_fresh_image(ref, tmp_path, str(round_))
    runs = together([
        lambda name=name: run_module("cosign_sign", {"ref": ref, "private_key": keys[name][0],
                                                     "key_password": PASSWORDS[name], "plain_http": True}, timeout=240)
        for name in ("first", "second")
    ], timeout=280)
    for run in runs:
        assert not run.failed, run.output
        assert run.result["changed"] is True
        assert run.result["digest"] == digest
    for name in ("first", "second"):
        verify = run_module("cosign_verify", {"ref": ref, "public_key": keys[name][1], "plain_http": True})
        assert not verify.failed, "the %s key's signature was lost: %s" % (name, verify.output)
    parsed = parse(ref)
    found = signatures(open_target(parsed, {"plain_http": True}), parsed, digest, public_keys(keys, "first", "second"))
    assert sorted(by for unused, by in found) == ["first", "second"], found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("where", ["registry", "layout"])
def test_two_keys_sign_at_once_through_the_engine(registry, keys, tmp_path, where):
    private = {name: read_private_key(keys[name][0], PASSWORDS[name]) for name in ("first", "second")}
    publics = public_keys(keys, "first", "second")
    connection = {"plain_http": True} if where == "registry" else None
    for round_ in range(1, ROUNDS + 1):
        if where == "registry":
            ref_text = "%s/concurrency/engine-two-keys-%s:r%d" % (registry.host, uuid.uuid4().hex[:8], round_)
            digest = push_fresh_image(ref_text, tmp_path, "engine-%d" % round_)
        else:
            ref_text = "oci:%s:r%d" % (tmp_path / "layout", round_)
            folder = tmp_path / ("layout-image-%d" % round_)
            folder.mkdir()
            files = {}
            for role in ("rootfs", "initramfs", "kernel"):
                (folder / role).write_bytes(os.urandom(4096))
                files[role] = str(folder / role)
            digest = push_image(open_target(parse(ref_text)), dict(files, command_line="r=%d" % round_))["digest"]
        ref = parse(ref_text)
        results = together([
            lambda name=name: cosign.sign(open_target(ref, connection), ref, private[name])
            for name in ("first", "second")
        ], timeout=240)
        assert [result["digest"] for result in results] == [digest, digest]
        found = signatures(open_target(ref, connection), ref, digest, publics)
        assert sorted(by for unused, by in found) == ["first", "second"], "round %d: %s" % (round_, found)
        for name in ("first", "second"):
            verified = cosign.verify(open_target(ref, connection), ref, publics[name])
            assert len(verified) == 1, "round %d, %s key: %s" % (round_, name, verified)


@pytest.mark.timeout(300)
def test_a_retried_sig_write_keeps_a_signature_added_meanwhile(registry, keys, tmp_path):
    repo = "concurrency/stale-sig-%s" % uuid.uuid4().hex[:8]
    direct_text = "%s/%s:1" % (registry.host, repo)
    digest = push_fresh_image(direct_text, tmp_path, "stale")
    private = {name: read_private_key(keys[name][0], PASSWORDS[name]) for name in ("first", "second")}
    identity = "%s/%s" % (registry.host, repo)  # the same docker-reference whichever address signs
    direct = parse(direct_text)
    other = {}

    def second_signer_signs_meanwhile():
        other["result"] = cosign.sign(open_target(direct, {"plain_http": True}), direct, private["second"],
                                      identity=identity)

    proxy = FaultProxy(registry.url, max_lifetime=240).start()
    try:
        refusal = proxy.add("PUT", r"/manifests/sha256-[0-9a-f]{64}\.sig$", "status", status=503,
                            before=second_signer_signs_meanwhile)
        through = parse("%s/%s:1" % (proxy.host, repo))
        first = cosign.sign(open_target(through, {"plain_http": True, "retries": 3}), through, private["first"],
                            identity=identity)
    finally:
        proxy.stop()
    assert refusal.hits == 1 and not refusal.errors, refusal.errors
    assert other["result"]["digest"] == first["digest"] == digest
    found = signatures(open_target(direct, {"plain_http": True}), direct, digest, public_keys(keys, "first", "second"))
    assert sorted(by for unused, by in found) == ["first", "second"], (
        "both signers reported success, but the .sig holds only %s" % [by for unused, by in found])
