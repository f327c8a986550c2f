"""cosign's bytes: payload, signature config blob, `.sig` manifest, signatures of the real cosign."""

import base64
import hashlib
import json

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign_keys as ck
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

DIGEST = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
ZERO = "0001-01-01T00:00:00Z"

# A `cosign sign --key --tlog-upload=false` run of cosign v3.0.4 against a local registry,
# captured byte for byte (published as a test fixture of tobby-fetch's sigverify package):
# the image digest, the payload digest and size, the signature annotation, and the digests
# of the config and `.sig` manifest cosign wrote for them.
REAL_IMAGE = "sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268"
REAL_PAYLOAD = ("sha256:3a29d26a2fc848d25ccf9c2288194ca90599e70ef69087644f186e5e7331f28b", 245)
REAL_SIGNATURE = "MEUCIEB+pz4s+9yxG+Om/bukeAfwloKFEISUhxLvIYlP02P8AiEAz1oNkilC+cprxcrEHqN0vxM+zvP34ikHFzi8e7Sevls="
REAL_CONFIG = "sha256:2122b6ad0794d3fdae43a4b477cf1d95d4a38d3c5f10631e199676039b876e37"
REAL_MANIFEST = "sha256:b6872674fc1bef936d1400f22f94b090f3e3eaf53c1b26362d39f3701cd08053"
# Another captured cosign `.sig` (config 233 bytes): payload digest -> config digest.
OTHER_REAL_CONFIG = (
    "sha256:4306feade2f8d7aa22ad654dfd61d0ee66a94f8970fba8d825f45641e9087a78",
    "sha256:d748d2b76ebf8a245176858c537a245f62f4cd9271dcad170c107bd399384703",
)

# ../shared/testvectors/cosign/signatures/README.md
VECTORS = [
    ("dir-img-cosign-valid", "cosign.pub", True),
    ("dir-img-cosign-valid-2", "cosign.pub", True),
    ("dir-img-cosign-valid-with-tag", "cosign.pub", True),
    ("dir-img-cosign-key-rekor-valid", "cosign2.pub", True),
    ("dir-img-cosign-modified-manifest", "cosign.pub", False),
    ("dir-img-cosign-manifest-digest-error", "cosign.pub", False),
]
SIGSTORE_JSON_PREFIX = b"\x00sigstore-json\n"


def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- payload ---------------------------------------------------------------------------------------


def test_payload_bytes_without_annotations():
    assert cosign.payload_bytes("registry.example.com/os/gardenlinux", DIGEST) == (
        b'{"critical":{"identity":{"docker-reference":"registry.example.com/os/gardenlinux"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    assert cosign.payload_bytes("r.example/x", DIGEST, {}) == cosign.payload_bytes("r.example/x", DIGEST)


def test_payload_bytes_with_annotations_sorted_strings_go_escaped():
    data = cosign.payload_bytes("r.example/x", DIGEST, {"z": "last", "a": "<&>", "n": 1, "b": True})
    assert data.endswith(b',"optional":{"a":"\\u003c\\u0026\\u003e","b":"true","n":"1","z":"last"}}')


def test_payload_refuses_nested_values():
    with pytest.raises(OnmetalError, match="must be a string") as err:
        cosign.payload_bytes("r.example/x", DIGEST, {"a": {"b": 1}})
    assert err.value.option == "annotations"


def test_payload_matches_real_cosign():
    data = cosign.payload_bytes("localhost:15381/tobby/fixture", REAL_IMAGE)
    assert (_sha(data), len(data)) == REAL_PAYLOAD


# -- config and manifest ----------------------------------------------------------------------


def test_config_one_layer_exact():
    diff = "sha256:" + "ab" * 32
    expected = (
        '{"architecture":"","created":"%s","history":[{"created":"%s"}],"os":"",'
        '"rootfs":{"type":"layers","diff_ids":["%s"]},"config":{}}' % (ZERO, ZERO, diff)
    ).encode()
    data = cosign.signature_config_bytes([diff])
    assert data == expected
    assert len(data) == 233


def test_config_two_layers_exact():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert cosign.signature_config_bytes([a, b]) == (
        '{"architecture":"","created":"%s","history":[{"created":"%s"},{"created":"%s"}],"os":"",'
        '"rootfs":{"type":"layers","diff_ids":["%s","%s"]},"config":{}}' % (ZERO, ZERO, ZERO, a, b)
    ).encode()


@pytest.mark.parametrize("payload_digest, config_digest", [(REAL_PAYLOAD[0], REAL_CONFIG), OTHER_REAL_CONFIG])
def test_config_matches_real_cosign(payload_digest, config_digest):
    assert _sha(cosign.signature_config_bytes([payload_digest])) == config_digest


def test_manifest_matches_real_cosign_byte_for_byte():
    layer = {
        "mediaType": mt.COSIGN_SIMPLESIGNING,
        "digest": REAL_PAYLOAD[0],
        "size": REAL_PAYLOAD[1],
        "annotations": {mt.COSIGN_SIGNATURE_ANNOTATION: REAL_SIGNATURE},
    }
    manifest, config = cosign.signature_manifest([layer])
    assert _sha(config) == REAL_CONFIG
    assert _sha(manifest) == REAL_MANIFEST


def test_manifest_layout():
    payloads = [cosign.payload_bytes("r.example/x", DIGEST, {"n": str(i)}) for i in range(2)]
    layers = [cosign.signature_layer(p, "c2ln%d" % i) for i, p in enumerate(payloads)]
    manifest, config = cosign.signature_manifest(layers)
    assert manifest == (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":%d,"digest":"%s"},'
        '"layers":[%s]}'
        % (
            len(config),
            _sha(config),
            ",".join(
                '{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":%d,"digest":"%s",'
                '"annotations":{"dev.cosignproject.cosign/signature":"c2ln%d"}}' % (len(p), _sha(p), i)
                for i, p in enumerate(payloads)
            ),
        )
    ).encode()
    assert config == cosign.signature_config_bytes([_sha(p) for p in payloads])


def test_manifest_keeps_foreign_layer_fields():
    foreign = {
        "digest": "sha256:" + "c" * 64,
        "size": 9,
        "mediaType": mt.COSIGN_SIMPLESIGNING,
        "annotations": {"dev.sigstore.cosign/bundle": "{}", mt.COSIGN_SIGNATURE_ANNOTATION: "x"},
    }
    manifest = cosign.signature_manifest([foreign], annotations={"k": "v"})[0]
    value = json.loads(manifest)
    assert value["layers"] == [foreign]
    assert value["annotations"] == {"k": "v"}
    assert manifest.index(b'"size":9') < manifest.index(b'"digest":"sha256:ccc')


def test_signature_tag():
    assert cosign.signature_tag(DIGEST) == "sha256-" + DIGEST[7:] + ".sig"


# -- signing ---------------------------------------------------------------------------------


def test_sign_payload_is_der_ecdsa_sha256():
    key = ec.generate_private_key(ec.SECP256R1())
    payload = cosign.payload_bytes("r.example/x", DIGEST)
    sig = cosign.sign_payload(key, payload)
    der = base64.b64decode(sig, validate=True)
    r, s = decode_dss_signature(der)
    assert r > 0 and s > 0
    assert cosign.verify_payload(key.public_key(), payload, sig)
    assert not cosign.verify_payload(key.public_key(), payload + b" ", sig)
    assert not cosign.verify_payload(ec.generate_private_key(ec.SECP256R1()).public_key(), payload, sig)
    assert not cosign.verify_payload(key.public_key(), payload, "not base64!")
    assert not cosign.verify_payload(key.public_key(), payload, base64.b64encode(b"\x30\x00").decode())
    assert not cosign.verify_payload(key.public_key(), payload, None)


# -- the real cosign's signatures ---------------------------------------------------------------


def _signature_files(folder):
    return sorted(folder.glob("signature-*"))


def read_signature_file(path):
    """(payload bytes, layer annotations) of containers/image's on-disk sigstore signature."""
    data = path.read_bytes()
    assert data.startswith(SIGSTORE_JSON_PREFIX), path
    wrapper = json.loads(data[len(SIGSTORE_JSON_PREFIX):])
    assert wrapper["mimeType"] == mt.COSIGN_SIMPLESIGNING
    return base64.b64decode(wrapper["payload"]), wrapper["annotations"]


@pytest.fixture(scope="module")
def signatures_dir(shared_dir):
    return shared_dir / "testvectors" / "cosign" / "signatures"


@pytest.mark.parametrize("folder, key_name, valid", VECTORS)
def test_real_signatures(signatures_dir, folder, key_name, valid):
    key = ck.load_public_key((signatures_dir / key_name).read_bytes())
    other = ck.load_public_key((signatures_dir / ("cosign2.pub" if key_name == "cosign.pub" else "cosign.pub")).read_bytes())
    manifest_digest = _sha((signatures_dir / folder / "manifest.json").read_bytes())
    files = _signature_files(signatures_dir / folder)
    assert files
    for path in files:
        payload, annotations = read_signature_file(path)
        sig = annotations[mt.COSIGN_SIGNATURE_ANNOTATION]
        # The signature itself is genuine in every folder; the tampered ones fail on the digest.
        assert cosign.verify_payload(key, payload, sig), path
        assert not cosign.verify_payload(other, payload, sig), path
        parsed = cosign.parse_payload(payload)
        assert parsed["critical"]["type"] == cosign.SIGNATURE_TYPE
        assert (cosign.payload_digest_of(parsed) == manifest_digest) is valid, path


def test_real_payload_bytes_reproduced(signatures_dir):
    payload = read_signature_file(signatures_dir / "dir-img-cosign-valid" / "signature-1")[0]
    parsed = cosign.parse_payload(payload)
    assert cosign.payload_bytes(parsed["critical"]["identity"]["docker-reference"], cosign.payload_digest_of(parsed)) == payload
