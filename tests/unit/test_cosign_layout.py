"""sign and verify on an OCI image layout, through the target interface."""

import base64
import hashlib
import json
import os
import threading

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign_keys as ck
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import reference
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.layout import LayoutTarget

from cryptography.hazmat.primitives.asymmetric import ec

SIGSTORE_JSON_PREFIX = b"\x00sigstore-json\n"


@pytest.fixture(autouse=True)
def short_settle(monkeypatch):
    # The second survival check waits for slower signers; threads here land within milliseconds.
    monkeypatch.setattr(cosign, "SETTLE_MIN", 0.05)


@pytest.fixture
def key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def key2():
    return ec.generate_private_key(ec.SECP256R1())


def push_image(store, tag="img", command_line="quiet"):
    """An image in the layout; returns (ref text, manifest digest)."""
    target = LayoutTarget(reference.parse("oci:%s:%s" % (store, tag)))
    config = json.dumps({"commandLine": command_line}).encode()
    desc = oci.bytes_descriptor(mt.FLAVORS["onmetal"]["config"], config)
    target.push_blob(desc, config)
    digest = target.push_manifest(oci.manifest_bytes(desc, []), mt.OCI_MANIFEST, tag=tag)
    return "oci:%s:%s" % (store, tag), digest


def open_ref(text):
    ref = reference.parse(text)
    return LayoutTarget(ref), ref


def sig_manifest(store, digest):
    target, ref = open_ref("oci:%s:%s" % (store, cosign.signature_tag(digest)))
    data = target.fetch_manifest(ref)[0]
    return json.loads(data)


def snapshot(store):
    out = {}
    for root, _dirs, files in os.walk(str(store)):
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            out[path] = (st.st_mtime_ns, st.st_size)
    return out


# -- sign and verify ---------------------------------------------------------------------------------


def test_sign_verify_round_trip(tmp_path, key):
    store = tmp_path / "store"
    text, digest = push_image(store)
    target, ref = open_ref(text)
    result = cosign.sign(target, ref, key)
    assert result["changed"] is True
    assert result["digest"] == digest
    assert result["signature_ref"] == "oci:%s:sha256-%s.sig" % (store, digest[7:])
    assert result["signatures"] == 1
    assert result["payload"] == json.loads(cosign.payload_bytes("oci:%s" % store, digest))

    data, _media_type, sig_digest = target.fetch_manifest(reference.parse(result["signature_ref"]))
    assert sig_digest == result["signature_manifest_digest"]
    manifest = json.loads(data)
    (layer,) = manifest["layers"]
    payload = target.read_blob(layer["digest"], layer["size"])
    assert payload == cosign.payload_bytes("oci:%s" % store, digest)
    assert target.read_blob(manifest["config"]["digest"]) == cosign.signature_config_bytes([layer["digest"]])
    assert manifest["config"]["mediaType"] == mt.OCI_IMAGE_CONFIG

    payloads = cosign.verify(LayoutTarget(ref), ref, key.public_key())
    assert payloads == [result["payload"]]


def test_sign_by_digest_and_identity(tmp_path, key):
    store = tmp_path / "store"
    digest = push_image(store)[1]
    target, ref = open_ref("oci:%s@%s" % (store, digest))
    result = cosign.sign(target, ref, key, identity="registry.example.com/os/gardenlinux")
    assert result["digest"] == digest
    assert result["payload"]["critical"]["identity"]["docker-reference"] == "registry.example.com/os/gardenlinux"
    # the tag names the same manifest: the signature is found by digest either way
    assert cosign.verify(*open_ref("oci:%s:img" % store), key.public_key())


def test_second_sign_is_no_change_and_writes_nothing(tmp_path, key):
    store = tmp_path / "store"
    text = push_image(store)[0]
    first = cosign.sign(*open_ref(text), private_key=key)
    before = snapshot(store)
    target, ref = open_ref(text)
    again = cosign.sign(target, ref, key)
    assert again["changed"] is False
    assert again["signature_manifest_digest"] == first["signature_manifest_digest"]
    assert again["signatures"] == 1
    assert not target.stats.wrote and target.stats.bytes_sent == 0
    assert snapshot(store) == before


def test_check_mode_writes_nothing(tmp_path, key):
    store = tmp_path / "store"
    text, digest = push_image(store)
    before = snapshot(store)
    target, ref = open_ref(text)
    result = cosign.sign(target, ref, key, check_mode=True)
    assert result["changed"] is True and result["signatures"] == 1 and result["digest"] == digest
    assert snapshot(store) == before and not target.stats.wrote
    cosign.sign(*open_ref(text), private_key=key)
    assert cosign.sign(*open_ref(text), private_key=key, check_mode=True)["changed"] is False


def test_second_key_appends_and_both_verify(tmp_path, key, key2):
    store = tmp_path / "store"
    text, digest = push_image(store)
    cosign.sign(*open_ref(text), private_key=key)
    first_layer = sig_manifest(store, digest)["layers"][0]
    result = cosign.sign(*open_ref(text), private_key=key2)
    assert result["changed"] is True and result["signatures"] == 2
    layers = sig_manifest(store, digest)["layers"]
    assert layers[0] == first_layer
    # both keys sign the same payload; the layers differ only in their signature
    assert layers[0]["digest"] == layers[1]["digest"]
    for k in (key, key2):
        assert len(cosign.verify(*open_ref(text), public_key=k.public_key())) == 1
        assert cosign.sign(*open_ref(text), private_key=k)["changed"] is False


def test_annotations_signed_and_required(tmp_path, key):
    store = tmp_path / "store"
    text = push_image(store)[0]
    result = cosign.sign(*open_ref(text), private_key=key, annotations={"release": "1592.1", "flavor": "metal"})
    assert result["payload"]["optional"] == {"flavor": "metal", "release": "1592.1"}
    pub = key.public_key()
    assert cosign.verify(*open_ref(text), public_key=pub, annotations={"release": "1592.1"})
    assert cosign.verify(*open_ref(text), public_key=pub)
    with pytest.raises(OnmetalError) as err:
        cosign.verify(*open_ref(text), public_key=pub, annotations={"release": "1443.0"})
    assert err.value.option == "annotations"
    assert "release=1443.0" in str(err.value) and "\n" not in str(err.value)
    # other annotations are another payload: a new layer, and each is found by its own values
    assert cosign.sign(*open_ref(text), private_key=key, annotations={"release": "1443.0"})["signatures"] == 2
    assert cosign.sign(*open_ref(text), private_key=key, annotations={"flavor": "metal", "release": "1592.1"})["changed"] is False
    (found,) = cosign.verify(*open_ref(text), public_key=pub, annotations={"release": "1443.0"})
    assert found["optional"] == {"release": "1443.0"}


def test_wrong_key_fails(tmp_path, key, key2):
    store = tmp_path / "store"
    text = push_image(store)[0]
    cosign.sign(*open_ref(text), private_key=key)
    with pytest.raises(OnmetalError) as err:
        cosign.verify(*open_ref(text), public_key=key2.public_key())
    assert err.value.option == "public_key"
    assert "none of the 1 signature(s)" in str(err.value)


def test_no_signature_fails(tmp_path, key):
    store = tmp_path / "store"
    text, digest = push_image(store)
    with pytest.raises(OnmetalError) as err:
        cosign.verify(*open_ref(text), public_key=key.public_key())
    assert "no cosign signature" in str(err.value) and cosign.signature_tag(digest) in str(err.value)


def test_missing_image_fails(tmp_path, key):
    target, ref = open_ref("oci:%s:nothing" % (tmp_path / "store"))
    for call in (lambda: cosign.sign(target, ref, key), lambda: cosign.verify(target, ref, key.public_key())):
        with pytest.raises(OnmetalError) as err:
            call()
        assert err.value.option == "ref" and "not found" in str(err.value)


def test_tampered_image_digest_fails(tmp_path, key):
    store = tmp_path / "store"
    text, digest = push_image(store)
    cosign.sign(*open_ref(text), private_key=key)
    # the tag moves to another manifest: it has no signature of its own
    moved = push_image(store, command_line="init=/bin/sh")[1]
    with pytest.raises(OnmetalError, match="no cosign signature"):
        cosign.verify(*open_ref(text), public_key=key.public_key())
    # and a copied `.sig` does not help: its payload names the old digest
    target = open_ref(text)[0]
    data, media_type = target.fetch_manifest(reference.parse("oci:%s:%s" % (store, cosign.signature_tag(digest))))[:2]
    target.push_manifest(data, media_type, tag=cosign.signature_tag(moved))
    with pytest.raises(OnmetalError) as err:
        cosign.verify(*open_ref(text), public_key=key.public_key())
    assert "signs %s, not %s" % (digest, moved) in str(err.value)
    assert "manifest changed" in str(err.value)


def test_tampered_payload_fails(tmp_path, key):
    store = tmp_path / "store"
    text, digest = push_image(store)
    cosign.sign(*open_ref(text), private_key=key)
    manifest = sig_manifest(store, digest)
    forged = cosign.payload_bytes("oci:%s" % store, digest, {"release": "forged"})
    manifest["layers"][0].update(digest=oci.sha256_digest(forged), size=len(forged))
    target = open_ref(text)[0]
    target.push_blob(oci.bytes_descriptor(mt.COSIGN_SIMPLESIGNING, forged), forged)
    target.push_manifest(json.dumps(manifest).encode(), mt.OCI_MANIFEST, tag=cosign.signature_tag(digest))
    with pytest.raises(OnmetalError, match="verifies with this public key"):
        cosign.verify(*open_ref(text), public_key=key.public_key())


# -- concurrent signers ----------------------------------------------------------------------------


class RacingLayout(LayoutTarget):
    """Holds the first `.sig` read until every signer has read: all start from the same state."""

    def __init__(self, ref, barrier):
        super().__init__(ref)
        self.barrier = barrier
        self.reads = 0

    def fetch_manifest(self, ref=None):
        result = None
        try:
            result = super().fetch_manifest(ref)
        finally:
            if ref is not None and (ref.tag or "").endswith(".sig"):
                self.reads += 1
                if self.reads == 1:
                    self.barrier.wait(timeout=30)
        return result


@pytest.mark.parametrize("signers", [2, 4])
def test_concurrent_signers_all_end_up_there(tmp_path, signers):
    store = tmp_path / "store"
    text, digest = push_image(store)
    keys = [ec.generate_private_key(ec.SECP256R1()) for i in range(signers)]
    barrier = threading.Barrier(signers)
    results, errors, targets = [None] * signers, [], []

    def run(i):
        ref = reference.parse(text)
        target = RacingLayout(ref, barrier)
        targets.append(target)
        try:
            results[i] = cosign.sign(target, ref, keys[i])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(signers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert all(r["changed"] for r in results)
    assert len(sig_manifest(store, digest)["layers"]) == signers
    for k in keys:
        assert cosign.verify(*open_ref(text), public_key=k.public_key())
    # everyone read the empty state, so all but one signature was overwritten at least once
    assert sum(len(t.stats.manifests_written) for t in targets) > signers


# -- the real cosign's signatures in a layout ------------------------------------------------------

VECTORS = [
    ("dir-img-cosign-valid", "cosign.pub", 1, None),
    ("dir-img-cosign-valid-2", "cosign.pub", 2, None),
    ("dir-img-cosign-valid-with-tag", "cosign.pub", 1, None),
    ("dir-img-cosign-key-rekor-valid", "cosign2.pub", 1, None),
    ("dir-img-cosign-modified-manifest", "cosign.pub", 0, "manifest changed after signing"),
    ("dir-img-cosign-manifest-digest-error", "cosign.pub", 0, "manifest changed after signing"),
]


def layout_from_vector(folder, store):
    """The image manifest and its `.sig` manifest as a registry would hold them, in a layout."""
    target = open_ref("oci:%s:image" % store)[0]
    manifest = (folder / "manifest.json").read_bytes()
    digest = target.push_manifest(manifest, json.loads(manifest).get("mediaType", mt.OCI_MANIFEST), tag="image")
    layers = []
    for path in sorted(folder.glob("signature-*")):
        data = path.read_bytes()
        assert data.startswith(SIGSTORE_JSON_PREFIX)
        wrapper = json.loads(data[len(SIGSTORE_JSON_PREFIX):])
        payload = base64.b64decode(wrapper["payload"])
        target.push_blob(oci.bytes_descriptor(wrapper["mimeType"], payload), payload)
        layers.append(
            {"mediaType": wrapper["mimeType"], "size": len(payload), "digest": oci.sha256_digest(payload), "annotations": wrapper["annotations"]}
        )
    sig, config = cosign.signature_manifest(layers)
    target.push_blob(oci.bytes_descriptor(mt.OCI_IMAGE_CONFIG, config), config)
    target.push_manifest(sig, mt.OCI_MANIFEST, tag=cosign.signature_tag(digest))
    return "oci:%s:image" % store, digest


@pytest.mark.parametrize("name, key_name, count, failure", VECTORS)
def test_real_signatures_in_layout(shared_dir, tmp_path, name, key_name, count, failure):
    vectors = shared_dir / "testvectors" / "cosign" / "signatures"
    text, digest = layout_from_vector(vectors / name, tmp_path / "store")
    assert digest == "sha256:" + hashlib.sha256((vectors / name / "manifest.json").read_bytes()).hexdigest()
    key = ck.load_public_key((vectors / key_name).read_bytes())
    other = ck.load_public_key((vectors / ("cosign2.pub" if key_name == "cosign.pub" else "cosign.pub")).read_bytes())
    if failure:
        with pytest.raises(OnmetalError, match=failure):
            cosign.verify(*open_ref(text), public_key=key)
    else:
        payloads = cosign.verify(*open_ref(text), public_key=key)
        assert len(payloads) == count
        assert all(p["critical"]["image"]["docker-manifest-digest"] == digest for p in payloads)
    with pytest.raises(OnmetalError):
        cosign.verify(*open_ref(text), public_key=other)


def test_sign_appends_to_real_cosign_signature(shared_dir, tmp_path, key):
    vectors = shared_dir / "testvectors" / "cosign" / "signatures"
    text, digest = layout_from_vector(vectors / "dir-img-cosign-key-rekor-valid", tmp_path / "store")
    before = sig_manifest(tmp_path / "store", digest)["layers"]
    result = cosign.sign(*open_ref(text), private_key=key)
    assert result["signatures"] == 2
    after = sig_manifest(tmp_path / "store", digest)["layers"]
    assert after[0] == before[0]  # the Rekor bundle annotation and the real signature are kept
    assert cosign.verify(*open_ref(text), public_key=ck.load_public_key((vectors / "cosign2.pub").read_bytes()))
    assert cosign.verify(*open_ref(text), public_key=key.public_key())


def test_payload_of_another_type_fails(tmp_path, key):
    store = tmp_path / "store"
    text, digest = push_image(store)
    target = open_ref(text)[0]
    payload = cosign.payload_bytes("oci:%s" % store, digest).replace(b"cosign container image signature", b"atomic container signature")
    layer = cosign.signature_layer(payload, cosign.sign_payload(key, payload))
    manifest, config = cosign.signature_manifest([layer])
    for blob in (payload, config):
        target.push_blob(oci.bytes_descriptor(mt.OCI_IMAGE_CONFIG, blob), blob)
    target.push_manifest(manifest, mt.OCI_MANIFEST, tag=cosign.signature_tag(digest))
    with pytest.raises(OnmetalError, match="sign no 'cosign container image signature' payload"):
        cosign.verify(*open_ref(text), public_key=key.public_key())
    # not a valid signature by this key: signing appends ours and keeps the other layer
    assert cosign.sign(*open_ref(text), private_key=key)["signatures"] == 2
