# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cosign signatures in the legacy `sha256-<hex>.sig` layout (SPEC.md section 5).

Bytes follow what cosign writes through go-containerregistry: the payload is
sigstore's SimpleContainerImage, the manifest and config are ggcr's v1.Manifest and
v1.ConfigFile marshalled by Go (so descriptors read mediaType, size, digest - ggcr's
field order, not image-spec's). Checks follow `cosign verify --key --insecure-ignore-tlog`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import random
import time

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.cosign_keys import ec, require_crypto
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import NotFound, OnmetalError, RegistryError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.oci import OrderedStruct, go_json, sha256_digest, signature_tag

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
except ImportError:  # require_crypto() reports it before any use
    InvalidSignature = hashes = None

SIGNATURE_TYPE = "cosign container image signature"
ZERO_TIME = "0001-01-01T00:00:00Z"
# ggcr v1.Descriptor field order.
GGCR_DESCRIPTOR_FIELDS = ("mediaType", "size", "digest", "data", "urls", "annotations", "platform", "artifactType")
# Real payloads are about 250 bytes; a larger signature layer is not read at all.
MAX_PAYLOAD = 4 * 1024 * 1024
SIGN_ATTEMPTS = 5
# How long to wait before the second check that our signature survived (seconds).
SETTLE_MIN = 0.2
SETTLE_MAX = 2.0


# -- formats ---------------------------------------------------------------------


def _annotations(annotations, option="annotations"):
    if not annotations:
        return None
    if not isinstance(annotations, dict):
        raise OnmetalError("annotations must be a mapping of key to value", option=option)
    out = {}
    for key, value in annotations.items():
        if not isinstance(key, str) or not key:
            raise OnmetalError("annotation keys must be non-empty strings", option=option)
        # cosign -a key=value always signs strings; YAML scalars are spelled as on a command line.
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif not isinstance(value, str):
            raise OnmetalError("annotation %r: the value must be a string" % key, option=option)
        out[key] = value
    return out


def payload_bytes(docker_reference, manifest_digest, annotations=None):
    """The exact SimpleContainerImage payload cosign signs."""
    identity = OrderedStruct([("docker-reference", docker_reference)])
    image = OrderedStruct([("docker-manifest-digest", manifest_digest)])
    critical = OrderedStruct([("identity", identity), ("image", image), ("type", SIGNATURE_TYPE)])
    return go_json(OrderedStruct([("critical", critical), ("optional", _annotations(annotations))]))


def parse_payload(data):
    """The payload as a dict, or None when it is not a SimpleContainerImage object."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("critical"), dict):
        return None
    return value


def payload_digest_of(payload):
    image = payload.get("critical", {}).get("image")
    return image.get("docker-manifest-digest") if isinstance(image, dict) else None


def sign_payload(private_key, payload):
    """Standard base64 of the ASN.1 DER ECDSA-P256/SHA-256 signature over the payload bytes."""
    require_crypto("private_key")
    return base64.b64encode(private_key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def verify_payload(public_key, payload, b64sig):
    """True when b64sig is a valid signature of payload under public_key."""
    require_crypto("public_key")
    if not isinstance(b64sig, str):
        return False
    try:
        # Go's StdEncoding skips CR/LF; cosign v1 wrote no newlines, some copies add them.
        der = base64.b64decode(b64sig.replace("\r", "").replace("\n", ""), validate=True)
        public_key.verify(der, payload, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def signature_config_bytes(payload_digests):
    """ggcr's v1.ConfigFile after appending one layer per signature (233 bytes for one)."""
    history = [OrderedStruct([("created", ZERO_TIME)]) for digest in payload_digests]
    rootfs = OrderedStruct([("type", "layers"), ("diff_ids", list(payload_digests))])
    return go_json(
        OrderedStruct(
            [
                ("architecture", ""),
                ("created", ZERO_TIME),
                ("history", history),
                ("os", ""),
                ("rootfs", rootfs),
                ("config", {}),
            ]
        )
    )


def _ggcr_descriptor(desc):
    out = OrderedStruct()
    for name in GGCR_DESCRIPTOR_FIELDS:
        if desc.get(name) not in (None, "", {}, []):
            out[name] = desc[name]
    return out


def signature_layer(payload, b64sig):
    """The layer descriptor of one signature."""
    return _ggcr_descriptor(
        {
            "mediaType": mt.COSIGN_SIMPLESIGNING,
            "size": len(payload),
            "digest": sha256_digest(payload),
            "annotations": {mt.COSIGN_SIGNATURE_ANNOTATION: b64sig},
        }
    )


def signature_manifest(layers, annotations=None):
    """(manifest bytes, config bytes) of a `.sig` manifest holding these layer descriptors, in order."""
    config = signature_config_bytes([layer["digest"] for layer in layers])
    value = OrderedStruct(
        [
            ("schemaVersion", 2),
            ("mediaType", mt.OCI_MANIFEST),
            ("config", _ggcr_descriptor({"mediaType": mt.OCI_IMAGE_CONFIG, "size": len(config), "digest": sha256_digest(config)})),
            ("layers", [_ggcr_descriptor(layer) for layer in layers]),
        ]
    )
    if annotations:
        value["annotations"] = dict(annotations)
    return go_json(value), config


# -- on a target -----------------------------------------------------------------


def _resolve(target, ref):
    desc = target.resolve(ref)
    if desc is None:
        raise OnmetalError("%s not found" % ref, option="ref")
    return desc["digest"]


def _read_signatures(target, sig_ref):
    """(layers, manifest annotations, manifest digest) of the `.sig` manifest; ([], None, None) when absent."""
    try:
        data, _media_type, digest = target.fetch_manifest(sig_ref)
    except NotFound:
        return [], None, None
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise OnmetalError("%s is not a JSON manifest" % sig_ref, option="ref")
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise OnmetalError("%s is not a cosign signature manifest (no list of layers)" % sig_ref, option="ref")
    return layers, manifest.get("annotations") or None, digest


def _holds(layers, payload, public_key):
    """The first layer that is this payload with a signature the key verifies (cosign's dupe detector)."""
    digest = sha256_digest(payload)
    for layer in layers:
        if layer.get("digest") != digest or layer.get("mediaType") != mt.COSIGN_SIMPLESIGNING:
            continue
        sig = (layer.get("annotations") or {}).get(mt.COSIGN_SIGNATURE_ANNOTATION)
        if sig and verify_payload(public_key, payload, sig):
            return layer
    return None


def sign(target, ref, private_key, annotations=None, check_mode=False, identity=None, attempts=SIGN_ATTEMPTS):
    """Sign what ref names in cosign's `.sig` layout, keeping other signatures.

    identity overrides docker-reference (cosign's --sign-container-identity); by default
    it is ref's name without tag or digest, as cosign writes it.
    """
    digest = _resolve(target, ref)
    payload = payload_bytes(identity or ref.name, digest, _annotations(annotations))
    sig_ref = ref.replace(tag=signature_tag(digest), digest=None)
    public_key = private_key.public_key()
    result = {
        "changed": False,
        "digest": digest,
        "signature_ref": "%s:%s" % (ref.name, signature_tag(digest)),
        "signature_manifest_digest": None,
        "payload": json.loads(payload.decode("utf-8")),
        "signatures": 0,
    }
    layers, manifest_annotations, sig_digest = _read_signatures(target, sig_ref)
    if _holds(layers, payload, public_key) is not None:
        result.update(signature_manifest_digest=sig_digest, signatures=len(layers))
        return result
    result["changed"] = True
    if check_mode:
        result["signatures"] = len(layers) + 1
        return result
    # Signed and uploaded before the read-modify-write, to keep that window short.
    layer = signature_layer(payload, sign_payload(private_key, payload))
    target.push_blob({"mediaType": mt.COSIGN_SIMPLESIGNING, "digest": layer["digest"], "size": len(payload)}, payload)
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(2.0, 0.05 * (2 ** attempt)) * (0.5 + random.random()))
            layers, manifest_annotations = _read_signatures(target, sig_ref)[:2]
        span = 0.0
        if _holds(layers, payload, public_key) is None:
            started = time.monotonic()
            manifest, config = signature_manifest(layers + [layer], manifest_annotations)
            # Blobs first, manifest last: the tag never names missing content.
            target.push_blob({"mediaType": mt.OCI_IMAGE_CONFIG, "digest": sha256_digest(config), "size": len(config)}, config)
            try:
                # One try: a retry would send the signatures read before, dropping any added
                # meanwhile. Read again and rebuild instead.
                target.push_manifest(manifest, mt.OCI_MANIFEST, tag=signature_tag(digest), retry=False)
            except RegistryError as e:
                if not e.retryable or attempt == attempts - 1:
                    raise
                continue
            span = time.monotonic() - started
        # Tags have no compare-and-swap: a signer who read before our write replaces the
        # tag without our layer. Check now, and again once such a writer would have landed.
        confirmed = _read_signatures(target, sig_ref)
        if _holds(confirmed[0], payload, public_key) is None:
            continue
        time.sleep(min(SETTLE_MAX, max(SETTLE_MIN, 4 * span)))
        confirmed = _read_signatures(target, sig_ref)
        if _holds(confirmed[0], payload, public_key) is not None:
            result.update(signature_manifest_digest=confirmed[2], signatures=len(confirmed[0]))
            return result
    raise OnmetalError(
        "the signature written to %s was replaced by other signers %d times in a row; try again" % (result["signature_ref"], attempts),
        option="ref",
    )


def _wanted(annotations):
    return _annotations(annotations) or {}


def verify(target, ref, public_key, annotations=None):
    """The payloads (dicts) of the `.sig` layers that pass cosign's key checks; one clear error when none does."""
    digest = _resolve(target, ref)
    wanted = _wanted(annotations)
    sig_ref = ref.replace(tag=signature_tag(digest), digest=None)
    layers = _read_signatures(target, sig_ref)[0]
    where = "%s@%s" % (ref.name, digest)
    if not layers:
        raise OnmetalError("no cosign signature for %s (no tag %s)" % (where, signature_tag(digest)), option="ref")
    verified, other_digests, annotation_misses, bad_key, unreadable, foreign = [], [], 0, 0, 0, 0
    for layer in layers:
        sig = (layer.get("annotations") or {}).get(mt.COSIGN_SIGNATURE_ANNOTATION)
        size = layer.get("size")
        if not sig or not isinstance(size, int) or size > MAX_PAYLOAD:
            bad_key += 1
            continue
        try:
            data = target.read_blob(layer.get("digest"), size)
        except OnmetalError:
            unreadable += 1
            continue
        if not verify_payload(public_key, data, sig):
            bad_key += 1
            continue
        payload = parse_payload(data)
        if payload is None or payload["critical"].get("type") != SIGNATURE_TYPE:
            foreign += 1
            continue
        named = payload_digest_of(payload)
        if named != digest:
            other_digests.append(named or "no digest")
            continue
        optional = payload.get("optional") or {}
        if not isinstance(optional, dict) or any(optional.get(k) != v for k, v in wanted.items()):
            annotation_misses += 1
            continue
        verified.append(payload)
    if verified:
        return verified
    if other_digests:
        raise OnmetalError(
            "the signature of %s signs %s, not %s: the manifest changed after signing, or the signature belongs to another image"
            % (ref.name, other_digests[0], digest),
            option="ref",
        )
    if annotation_misses:
        raise OnmetalError(
            "%d signature(s) of %s verify with the key, but none carries the annotations %s"
            % (annotation_misses, where, ", ".join("%s=%s" % kv for kv in sorted(wanted.items()))),
            option="annotations",
        )
    if foreign:
        raise OnmetalError(
            "%d signature(s) of %s verify with the key, but sign no %r payload" % (foreign, where, SIGNATURE_TYPE),
            option="ref",
        )
    if unreadable and not bad_key:
        raise OnmetalError("the signature payloads of %s cannot be read (%d missing or damaged)" % (where, unreadable), option="ref")
    raise OnmetalError(
        "none of the %d signature(s) of %s verifies with this public key" % (bad_key + unreadable, where), option="public_key"
    )
