"""cosign_keypair, cosign_sign and cosign_verify through the real ansible CLI.

On the plain-HTTP registry, the TLS registry with htpasswd auth, and an OCI image layout
(``oci:PATH:tag``); plus cosign's own signatures (containers/image fixtures) in an OCI layout.
"""

import base64
import hashlib
import json
import os
import secrets
import stat
import threading
import uuid

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign_keys
from ansible_collections.gardenlinux.onmetal.tests.support.ansible import run_module

KEY_PASSWORD_A = "cosign-a-" + secrets.token_hex(8)
KEY_PASSWORD_B = "cosign-b-" + secrets.token_hex(8)
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REF_NAME = "org.opencontainers.image.ref.name"


# -- helpers ------------------------------------------------------------------------


def assert_one_line_failure(run, *needles):
    """Failed, one line, no traceback, and the message names every needle."""
    assert run.failed, run.output
    msg = run.msg
    assert msg, run.output
    assert "\n" not in msg.strip(), msg
    assert "Traceback" not in run.output, run.output
    assert "unexpected" not in msg, msg  # common.run's wording for a defect of ours
    for needle in needles:
        assert needle in msg, "%r not in %r" % (needle, msg)
    return msg


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sig_tag(digest):
    return digest.replace(":", "-", 1) + ".sig"


class Where:
    """One kind of target: plain registry, TLS registry with auth, or an OCI layout folder."""

    def __init__(self, kind, registry=None, root=None):
        self.kind = kind
        self.registry = registry
        self.root = root

    def name(self, repo):
        if self.kind == "layout":
            return "oci:%s" % (self.root / repo)
        return "%s/%s" % (self.registry.host, repo)

    def ref(self, repo, tag):
        return "%s:%s" % (self.name(repo), tag)

    @property
    def conn(self):
        if self.kind == "plain":
            return {"plain_http": True}
        if self.kind == "tls":
            return {"username": self.registry.username, "password": self.registry.password,
                    "ca_path": self.registry.ca_path}
        return {}

    def snapshot(self):
        """Something that changes when the target is written to."""
        if self.kind == "layout":
            state = {}
            for folder, _dirs, files in os.walk(str(self.root)):
                for name in files:
                    path = os.path.join(folder, name)
                    st = os.stat(path)
                    with open(path, "rb") as f:
                        state[path] = (st.st_size, st.st_mtime_ns, hashlib.sha256(f.read()).hexdigest())
            return state
        return self.registry.mark()

    def writes_since(self, snap):
        if self.kind == "layout":
            now = self.snapshot()
            return sorted(set(now.items()) ^ set(snap.items()))
        return [r.line for r in self.registry.writes_since(snap)]

    def read_sig_manifest(self, repo, digest):
        """The `.sig` manifest as a dict, or None."""
        if self.kind == "layout":
            index = json.loads((self.root / repo / "index.json").read_text())
            for entry in index["manifests"]:
                if (entry.get("annotations") or {}).get(REF_NAME) == sig_tag(digest):
                    return json.loads((self.root / repo / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes())
            return None
        import requests  # pylint: disable=import-outside-toplevel
        response = requests.get("%s/v2/%s/manifests/%s" % (self.registry.url, repo, sig_tag(digest)),
                                headers={"Accept": OCI_MANIFEST}, timeout=30, **self.registry.requests_kwargs())
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()


@pytest.fixture(params=["plain", "tls", "layout"])
def where(request, tmp_path):
    if request.param == "plain":
        return Where("plain", registry=request.getfixturevalue("registry"))
    if request.param == "tls":
        return Where("tls", registry=request.getfixturevalue("tls_registry"))
    root = tmp_path / "layouts"
    root.mkdir()
    return Where("layout", root=root)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two key pairs made by cosign_keypair: {'a': (key, pub, password), 'b': ...}."""
    folder = tmp_path_factory.mktemp("cosign-keys")
    out = {}
    for name, password in (("a", KEY_PASSWORD_A), ("b", KEY_PASSWORD_B)):
        run = run_module("cosign_keypair", {"private_key": str(folder / ("%s.key" % name)), "password": password})
        assert not run.failed, run.output
        out[name] = (str(folder / ("%s.key" % name)), str(folder / ("%s.pub" % name)), password)
    return out


def push(where, tmp_path, repo, tag="1.0", seed=None):
    """Push a small random onmetal image; returns its digest."""
    folder = tmp_path / ("files-%s" % (seed or uuid.uuid4().hex[:8]))
    folder.mkdir()
    paths = {}
    for role, size in (("rootfs", 4096), ("kernel", 1024), ("initramfs", 2048)):
        paths[role] = str(folder / role)
        (folder / role).write_bytes(os.urandom(size))
    args = dict(paths, ref=where.ref(repo, tag), command_line="root=LABEL=ROOT ro")
    args.update(where.conn)
    run = run_module("onmetal_push", args)
    assert not run.failed, run.output
    assert run.result["digest"].startswith("sha256:")
    return run.result["digest"]


def sign(where, ref, key, check=False, env=None, **extra):
    args = {"ref": ref, "private_key": key[0], "key_password": key[2]}
    args.update(where.conn)
    args.update(extra)
    return run_module("cosign_sign", args, check=check, env=env)


def verify(where, ref, pub, check=False, **extra):
    args = {"ref": ref, "public_key": pub}
    args.update(where.conn)
    args.update(extra)
    return run_module("cosign_verify", args, check=check)


def new_repo():
    return "cosign/img-" + uuid.uuid4().hex[:10]


# -- cosign_keypair -----------------------------------------------------------------


@pytest.mark.parametrize("fmt,label,n", [
    (None, cosign_keys.SIGSTORE_LABEL, 65536),
    ("sigstore", cosign_keys.SIGSTORE_LABEL, 65536),
    ("cosign-legacy", cosign_keys.COSIGN_LABEL, 32768),
])
def test_keypair_creates_both_files_with_modes_and_labels(tmp_path, fmt, label, n):
    private, public = tmp_path / "cosign.key", tmp_path / "cosign.pub"
    args = {"private_key": str(private), "password": KEY_PASSWORD_A}
    if fmt:
        args["format"] = fmt
    run = run_module("cosign_keypair", args)
    assert not run.failed, run.output
    assert run.result["changed"] is True
    assert run.result["public_key"] == str(public)
    assert run.result["format"] == (fmt or "sigstore")
    assert run.result["kdf_n"] == n
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    pem = private.read_bytes()
    assert pem.startswith(("-----BEGIN %s-----\n" % label).encode())
    assert pem.rstrip().endswith(("-----END %s-----" % label).encode())
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    envelope = json.loads(cosign_keys.pem_decode(pem, "private_key")[1])
    assert envelope["kdf"]["params"] == {"N": n, "r": 8, "p": 1}
    assert envelope["cipher"]["name"] == "nacl/secretbox"
    key = cosign_keys.load_private_key(pem, KEY_PASSWORD_A)
    assert cosign_keys.public_pem(key) == public.read_bytes()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_keypair_second_run_unchanged_force_replaces(tmp_path):
    private, public = tmp_path / "k" / "cosign.key", tmp_path / "k" / "cosign.pub"
    args = {"private_key": str(private), "password": KEY_PASSWORD_A}
    first = run_module("cosign_keypair", args)
    assert first.result["changed"] is True, first.output
    before = (private.read_bytes(), public.read_bytes())

    second = run_module("cosign_keypair", args)
    assert not second.failed, second.output
    assert second.result["changed"] is False
    assert second.result["kdf_n"] == 65536
    assert (private.read_bytes(), public.read_bytes()) == before

    # Another password does not make it change either: the pair exists.
    third = run_module("cosign_keypair", dict(args, password=KEY_PASSWORD_B))
    assert third.result["changed"] is False, third.output
    assert (private.read_bytes(), public.read_bytes()) == before

    forced = run_module("cosign_keypair", dict(args, password=KEY_PASSWORD_B, force=True, format="cosign-legacy"))
    assert not forced.failed, forced.output
    assert forced.result["changed"] is True
    assert private.read_bytes() != before[0] and public.read_bytes() != before[1]
    assert private.read_bytes().startswith(b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = cosign_keys.load_private_key(private.read_bytes(), KEY_PASSWORD_B)
    assert cosign_keys.public_pem(key) == public.read_bytes()


def test_keypair_check_mode_writes_nothing(tmp_path):
    private = tmp_path / "cosign.key"
    run = run_module("cosign_keypair", {"private_key": str(private), "password": KEY_PASSWORD_A}, check=True)
    assert not run.failed, run.output
    assert run.result["changed"] is True
    assert list(tmp_path.iterdir()) == []

    made = run_module("cosign_keypair", {"private_key": str(private), "password": KEY_PASSWORD_A})
    assert made.result["changed"] is True
    before = private.read_bytes()
    (tmp_path / "cosign.pub").unlink()
    derive = run_module("cosign_keypair", {"private_key": str(private), "password": KEY_PASSWORD_A}, check=True)
    assert derive.result["changed"] is True, derive.output
    assert not (tmp_path / "cosign.pub").exists()
    forced = run_module("cosign_keypair", {"private_key": str(private), "password": KEY_PASSWORD_A, "force": True},
                        check=True)
    assert forced.result["changed"] is True, forced.output
    assert private.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cosign.key"]


def test_keypair_reads_cosign_password_from_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    private = tmp_path / "env.key"
    run = run_module("cosign_keypair", {"private_key": str(private)}, env={"COSIGN_PASSWORD": KEY_PASSWORD_B})
    assert not run.failed, run.output
    key = cosign_keys.load_private_key(private.read_bytes(), KEY_PASSWORD_B)
    assert cosign_keys.public_pem(key) == (tmp_path / "env.pub").read_bytes()

    # Set but empty is a valid, empty password, as cosign reads it.
    empty = tmp_path / "empty.key"
    run = run_module("cosign_keypair", {"private_key": str(empty)}, env={"COSIGN_PASSWORD": ""})
    assert not run.failed, run.output
    cosign_keys.load_private_key(empty.read_bytes(), "")

    # Neither set: one clear line, nothing written.
    none = run_module("cosign_keypair", {"private_key": str(tmp_path / "none.key")})
    assert_one_line_failure(none, "COSIGN_PASSWORD")
    assert not (tmp_path / "none.key").exists() and not (tmp_path / "none.pub").exists()


def test_keypair_derives_missing_public_key(tmp_path, monkeypatch):
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    private, public = tmp_path / "cosign.key", tmp_path / "cosign.pub"
    run = run_module("cosign_keypair", {"private_key": str(private), "password": KEY_PASSWORD_A})
    assert not run.failed, run.output
    original_private, original_public = private.read_bytes(), public.read_bytes()
    public.unlink()

    derived = run_module("cosign_keypair", {"private_key": str(private), "password": KEY_PASSWORD_A})
    assert not derived.failed, derived.output
    assert derived.result["changed"] is True
    assert public.read_bytes() == original_public
    assert private.read_bytes() == original_private
    assert stat.S_IMODE(public.stat().st_mode) == 0o644

    # Through COSIGN_PASSWORD, to an explicit public_key path.
    other = tmp_path / "elsewhere" / "signing.pub"
    derived = run_module("cosign_keypair", {"private_key": str(private), "public_key": str(other)},
                         env={"COSIGN_PASSWORD": KEY_PASSWORD_A})
    assert derived.result["changed"] is True, derived.output
    assert other.read_bytes() == original_public

    # The wrong password: one line naming the option, nothing written.
    public.unlink()
    wrong = run_module("cosign_keypair", {"private_key": str(private), "password": KEY_PASSWORD_B})
    msg = assert_one_line_failure(wrong, "password")
    assert KEY_PASSWORD_B not in wrong.output and KEY_PASSWORD_A not in msg
    assert not public.exists()
    assert private.read_bytes() == original_private


def test_keypair_derives_public_key_of_real_cosign_key(tmp_path, shared_dir):
    """A key file from a real cosign generate-key-pair (empty password): its public key, then a signature."""
    source = shared_dir / "testvectors" / "cosign" / "keys" / "sigstore-rs_cosign_generated_encrypted_empty_private.key"
    if not source.is_file():
        pytest.skip("%s is missing" % source)
    private = tmp_path / "real.key"
    private.write_bytes(source.read_bytes())
    private.chmod(0o600)
    run = run_module("cosign_keypair", {"private_key": str(private)}, env={"COSIGN_PASSWORD": ""})
    assert not run.failed, run.output
    assert run.result["changed"] is True and run.result["kdf_n"] == 65536 and run.result["format"] == "sigstore"
    assert (tmp_path / "real.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")

    where = Where("layout", root=tmp_path / "layouts")
    digest = push(where, tmp_path, "img")
    signed = run_module("cosign_sign", {"ref": where.ref("img", "1.0"), "private_key": str(private)},
                        env={"COSIGN_PASSWORD": ""})
    assert not signed.failed, signed.output
    assert signed.result["digest"] == digest
    checked = verify(where, where.ref("img", "1.0"), str(tmp_path / "real.pub"))
    assert not checked.failed, checked.output


# -- cosign_sign --------------------------------------------------------------------


def test_sign_resolves_tag_appends_and_is_idempotent(where, tmp_path, keys):
    repo = new_repo()
    digest = push(where, tmp_path, repo)
    ref = where.ref(repo, "1.0")

    first = sign(where, ref, keys["a"])
    assert not first.failed, first.output
    assert first.result["changed"] is True
    assert first.result["digest"] == digest
    assert first.result["signature_ref"] == "%s:sha256-%s.sig" % (where.name(repo), digest.split(":")[1])
    assert first.result["signatures"] == 1
    assert first.result["payload"] == {
        "critical": {"identity": {"docker-reference": where.name(repo)},
                     "image": {"docker-manifest-digest": digest},
                     "type": "cosign container image signature"},
        "optional": None,
    }
    manifest = where.read_sig_manifest(repo, digest)
    assert manifest is not None
    assert [layer["mediaType"] for layer in manifest["layers"]] == [SIMPLESIGNING]
    assert SIG_ANNOTATION in manifest["layers"][0]["annotations"]
    assert first.result["signature_manifest_digest"].startswith("sha256:")

    snap = where.snapshot()
    second = sign(where, ref, keys["a"])
    assert not second.failed, second.output
    assert second.result["changed"] is False
    assert second.result["signatures"] == 1
    assert second.result["signature_manifest_digest"] == first.result["signature_manifest_digest"]
    assert where.writes_since(snap) == []

    # By digest: the same signature, nothing to do.
    by_digest = sign(where, "%s@%s" % (where.name(repo), digest), keys["a"])
    assert by_digest.result["changed"] is False, by_digest.output
    assert where.writes_since(snap) == []

    # A second key appends and keeps the first.
    other = sign(where, ref, keys["b"])
    assert not other.failed, other.output
    assert other.result["changed"] is True
    assert other.result["signatures"] == 2
    assert len(where.read_sig_manifest(repo, digest)["layers"]) == 2
    for name in ("a", "b"):
        ok = verify(where, ref, keys[name][1])
        assert not ok.failed, ok.output
        assert ok.result["digest"] == digest


def test_sign_annotations(where, tmp_path, keys):
    repo = new_repo()
    digest = push(where, tmp_path, repo)
    ref = where.ref(repo, "1.0")
    plain = sign(where, ref, keys["a"])
    assert plain.result["changed"] is True, plain.output

    annotated = sign(where, ref, keys["a"], annotations={"release": "1.0", "build": 42, "ok": True})
    assert not annotated.failed, annotated.output
    assert annotated.result["changed"] is True
    assert annotated.result["signatures"] == 2
    assert annotated.result["payload"]["optional"] == {"build": "42", "ok": "true", "release": "1.0"}

    snap = where.snapshot()
    again = sign(where, ref, keys["a"], annotations={"ok": True, "release": "1.0", "build": 42})
    assert again.result["changed"] is False, again.output
    assert where.writes_since(snap) == []

    good = verify(where, ref, keys["a"][1], annotations={"release": "1.0"})
    assert not good.failed, good.output
    assert [p["optional"] for p in good.result["payloads"]] == [{"build": "42", "ok": "true", "release": "1.0"}]
    both = verify(where, ref, keys["a"][1])
    assert len(both.result["payloads"]) == 2, both.output
    missing = verify(where, ref, keys["a"][1], annotations={"release": "2.0"})
    assert_one_line_failure(missing, "annotations", "release=2.0")
    assert digest in missing.msg


def test_sign_check_mode_writes_nothing(where, tmp_path, keys):
    repo = new_repo()
    digest = push(where, tmp_path, repo)
    ref = where.ref(repo, "1.0")
    snap = where.snapshot()
    run = sign(where, ref, keys["a"], check=True)
    assert not run.failed, run.output
    assert run.result["changed"] is True
    assert run.result["digest"] == digest
    assert run.result["signatures"] == 1
    assert where.writes_since(snap) == []
    assert where.read_sig_manifest(repo, digest) is None

    real = sign(where, ref, keys["a"])
    assert real.result["changed"] is True, real.output
    snap = where.snapshot()
    again = sign(where, ref, keys["a"], check=True)
    assert again.result["changed"] is False, again.output
    more = sign(where, ref, keys["b"], check=True)
    assert more.result["changed"] is True and more.result["signatures"] == 2, more.output
    assert where.writes_since(snap) == []
    assert len(where.read_sig_manifest(repo, digest)["layers"]) == 1


def test_sign_two_signers_at_once(where, tmp_path, keys):
    repo = new_repo()
    digest = push(where, tmp_path, repo)
    ref = where.ref(repo, "1.0")
    barrier = threading.Barrier(2)
    results = {}

    def signer(name):
        barrier.wait()
        results[name] = sign(where, ref, keys[name])

    threads = [threading.Thread(target=signer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in ("a", "b"):
        assert not results[name].failed, results[name].output
        assert results[name].result["changed"] is True
    layers = where.read_sig_manifest(repo, digest)["layers"]
    assert len(layers) == 2
    for name in ("a", "b"):
        ok = verify(where, ref, keys[name][1])
        assert not ok.failed, ok.output
        assert len(ok.result["payloads"]) == 1


def test_sign_refuses_bad_keys(registry, tmp_path, keys):
    where = Where("plain", registry=registry)
    repo = new_repo()
    push(where, tmp_path, repo)
    ref = where.ref(repo, "1.0")
    snap = where.snapshot()

    wrong = sign(where, ref, (keys["a"][0], None, KEY_PASSWORD_B))
    msg = assert_one_line_failure(wrong, "key_password")
    assert "wrong password" in msg
    assert KEY_PASSWORD_B not in wrong.output

    # A wrong COSIGN_PASSWORD names the option too (key_password unset).
    wrong_env = run_module("cosign_sign", {"ref": ref, "private_key": keys["a"][0], "plain_http": True},
                           env={"COSIGN_PASSWORD": KEY_PASSWORD_B})
    assert_one_line_failure(wrong_env, "key_password")
    assert KEY_PASSWORD_B not in wrong_env.output

    # No key_password and no COSIGN_PASSWORD: the option to set is named.
    if "COSIGN_PASSWORD" not in os.environ:
        unset = run_module("cosign_sign", {"ref": ref, "private_key": keys["a"][0], "plain_http": True})
        assert_one_line_failure(unset, "key_password", "COSIGN_PASSWORD")

    public = sign(where, ref, (keys["a"][1], None, KEY_PASSWORD_A))
    msg = assert_one_line_failure(public, "private_key")
    assert "public key" in msg.lower()
    assert where.writes_since(snap) == []


def test_sign_refuses_a_sec1_key(registry, tmp_path, shared_dir):
    """cosign's pemcosigneckey: right password, but the plaintext is SEC1, which cosign refuses."""
    sec1 = shared_dir / "testvectors" / "cosign" / "keys" / "pemcosigneckey.pem"
    if not sec1.is_file():
        pytest.skip("%s is missing" % sec1)
    where = Where("plain", registry=registry)
    repo = new_repo()
    push(where, tmp_path, repo)
    snap = where.snapshot()
    refused = sign(where, where.ref(repo, "1.0"), (str(sec1), None, "hello"))
    msg = assert_one_line_failure(refused, "private_key")
    assert "PKCS#8" in msg and "SEC1" in msg
    assert where.writes_since(snap) == []


# -- cosign_verify ------------------------------------------------------------------


def test_verify_passes_and_fails_clearly(where, tmp_path, keys):
    repo = new_repo()
    digest = push(where, tmp_path, repo)
    ref = where.ref(repo, "1.0")

    unsigned = verify(where, ref, keys["a"][1])
    assert_one_line_failure(unsigned, "no cosign signature", digest)

    signed = sign(where, ref, keys["a"], annotations={"release": "1.0"})
    assert signed.result["changed"] is True, signed.output

    ok = verify(where, ref, keys["a"][1])
    assert not ok.failed, ok.output
    assert ok.result["changed"] is False
    assert ok.result["digest"] == digest
    assert ok.result["payloads"] == [signed.result["payload"]]
    by_digest = verify(where, "%s@%s" % (where.name(repo), digest), keys["a"][1], annotations={"release": "1.0"})
    assert not by_digest.failed, by_digest.output

    snap = where.snapshot()
    checked = verify(where, ref, keys["a"][1], check=True, annotations={"release": "1.0"})
    assert not checked.failed, checked.output
    assert checked.result["changed"] is False and checked.result["digest"] == digest
    failing_check = verify(where, ref, keys["b"][1], check=True)
    assert_one_line_failure(failing_check, "public_key")
    assert where.writes_since(snap) == []

    wrong = verify(where, ref, keys["b"][1])
    assert_one_line_failure(wrong, "public_key", "verifies with this public key")

    missing = verify(where, ref, keys["a"][1], annotations={"release": "1.0", "approved": "yes"})
    assert_one_line_failure(missing, "annotations", "approved=yes")

    private_as_public = verify(where, ref, keys["a"][0])
    assert_one_line_failure(private_as_public, "public_key", "private key")


def test_verify_after_tag_repushed_with_other_content(where, tmp_path, keys):
    """The signature names the old digest; the tag now names another: 'no signature' for that one."""
    repo = new_repo()
    old = push(where, tmp_path, repo)
    ref = where.ref(repo, "1.0")
    assert sign(where, ref, keys["a"]).result["changed"] is True
    new = push(where, tmp_path, repo)
    assert new != old

    run = verify(where, ref, keys["a"][1])
    msg = assert_one_line_failure(run, "no cosign signature", new)
    assert old not in msg  # the old digest is not what the user asked about
    # The message says which repository and which (new) digest had no signature.
    assert "%s@%s" % (where.name(repo), new) in msg

    # The old content is still signed, by digest.
    old_ok = verify(where, "%s@%s" % (where.name(repo), old), keys["a"][1])
    assert not old_ok.failed, old_ok.output


def test_verify_refuses_a_signature_copied_to_another_digest(tmp_path, keys):
    """A `.sig` manifest moved to another image's tag: the payload names another digest."""
    where = Where("layout", root=tmp_path / "layouts")
    first = push(where, tmp_path, "img", tag="one")
    second = push(where, tmp_path, "img", tag="two")
    assert sign(where, where.ref("img", "one"), keys["a"]).result["changed"] is True
    # Tag the first image's signature manifest as the second's.
    index_path = where.root / "img" / "index.json"
    index = json.loads(index_path.read_text())
    entry = [m for m in index["manifests"] if (m.get("annotations") or {}).get(REF_NAME) == sig_tag(first)][0]
    copied = dict(entry, annotations={REF_NAME: sig_tag(second)})
    index["manifests"].append(copied)
    index_path.write_text(json.dumps(index))
    run = verify(where, where.ref("img", "two"), keys["a"][1])
    msg = assert_one_line_failure(run, first, second)
    assert "signs" in msg


# -- cosign's own signatures ---------------------------------------------------------


COSIGN_VECTORS = [
    ("dir-img-cosign-valid", "cosign.pub", True),
    ("dir-img-cosign-valid-2", "cosign.pub", True),
    ("dir-img-cosign-valid-with-tag", "cosign.pub", True),
    ("dir-img-cosign-key-rekor-valid", "cosign2.pub", True),
    ("dir-img-cosign-modified-manifest", "cosign.pub", False),
    ("dir-img-cosign-manifest-digest-error", "cosign.pub", False),
    ("dir-img-cosign-valid", "cosign2.pub", False),
]


def read_containers_signature(path):
    """containers/image's on-disk form: b'\\x00sigstore-json\\n' + JSON {payload, annotations}."""
    data = path.read_bytes()
    prefix = b"\x00sigstore-json\n"
    assert data.startswith(prefix), path
    value = json.loads(data[len(prefix):])
    return base64.b64decode(value["payload"]), value["annotations"]


def cosign_signature_layout(root, folder, tag="signed"):
    """Store a real cosign signature in an OCI layout as cosign stores it in a registry.

    The signed manifest is written with its own media type (a Docker v2 manifest whose config
    and layer blobs are not available - distribution 2.8 refuses such a manifest, see
    test_distribution_refuses_the_signed_manifest_without_its_blobs), each payload as a blob,
    and a `sha256-<hex>.sig` OCI manifest with one simple-signing layer per signature carrying
    its annotations.
    """
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (root / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')

    def put(data):
        digest = sha256_digest(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    manifest = (folder / "manifest.json").read_bytes()
    manifest_digest = put(manifest)
    layers = []
    for sig in sorted(folder.glob("signature-*")):
        payload, annotations = read_containers_signature(sig)
        layers.append({"mediaType": SIMPLESIGNING, "size": len(payload), "digest": put(payload),
                       "annotations": annotations})
    config = json.dumps({
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for unused in layers], "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]}, "config": {},
    }, separators=(",", ":")).encode()
    sig_manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": put(config)},
        "layers": layers,
    }, separators=(",", ":")).encode()
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": manifest_digest, "size": len(manifest),
         "annotations": {REF_NAME: tag}},
        {"mediaType": OCI_MANIFEST, "digest": put(sig_manifest), "size": len(sig_manifest),
         "annotations": {REF_NAME: sig_tag(manifest_digest)}},
    ]}
    (root / "index.json").write_text(json.dumps(index))
    return manifest_digest, len(layers)


@pytest.fixture
def vectors(shared_dir):
    folder = shared_dir / "testvectors" / "cosign" / "signatures"
    if not folder.is_dir():
        pytest.skip("no cosign signature vectors at %s" % folder)
    return folder


def test_distribution_refuses_the_signed_manifest_without_its_blobs(registry, vectors):
    """Why the real cosign signatures go into an OCI layout: distribution 2.8 checks the blobs."""
    import requests  # pylint: disable=import-outside-toplevel
    data = (vectors / "dir-img-cosign-valid" / "manifest.json").read_bytes()
    response = requests.put("%s/v2/cosign/vector/manifests/valid" % registry.url, data=data,
                            headers={"Content-Type": DOCKER_MANIFEST}, timeout=30)
    assert response.status_code == 400, response.text
    assert "MANIFEST_BLOB_UNKNOWN" in response.text


@pytest.mark.parametrize("name,pub,valid", COSIGN_VECTORS)
def test_verify_real_cosign_signatures(tmp_path, vectors, name, pub, valid):
    root = tmp_path / "store"
    digest, count = cosign_signature_layout(root, vectors / name)
    assert count >= 1
    for ref in ("oci:%s:signed" % root, "oci:%s@%s" % (root, digest)):
        run = run_module("cosign_verify", {"ref": ref, "public_key": str(vectors / pub)})
        if valid:
            assert not run.failed, run.output
            assert run.result["digest"] == digest
            assert len(run.result["payloads"]) == count
            for payload in run.result["payloads"]:
                assert payload["critical"]["image"]["docker-manifest-digest"] == digest
                assert payload["critical"]["type"] == "cosign container image signature"
        else:
            msg = assert_one_line_failure(run)
            if name == "dir-img-cosign-manifest-digest-error":
                # The payload names another digest than the manifest's.
                assert "signs sha256:" in msg and digest in msg
            elif pub == "cosign2.pub":
                assert msg.startswith("public_key:")
