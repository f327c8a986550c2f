# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Digests, descriptors and the exact bytes of manifests and configs.

Bytes follow Go's json.Marshal of the image-spec structs, so that what we
write has the digest oras, onmetal-image and cosign would give it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import re

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt

READ_SIZE = 1024 * 1024
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")

_ESCAPE_PAIR = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_GO_SPECIAL = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_SPECIAL_RE = re.compile("[<>&\u2028\u2029]")

# Struct field orders of image-spec's Go types (json.Marshal follows declaration order).
MANIFEST_FIELDS = ("schemaVersion", "mediaType", "artifactType", "config", "layers", "subject", "annotations")
INDEX_FIELDS = ("schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations")
DESCRIPTOR_FIELDS = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType")


def _go_string(value):
    text = json.dumps(value, ensure_ascii=False)
    # Go writes \b and \f as \u0008 and \u000c; walk escape pairs so "\\b" stays literal.
    text = _ESCAPE_PAIR.sub(
        lambda m: {"b": "\\u0008", "f": "\\u000c"}.get(m.group(1), m.group(0)), text
    )
    return _GO_SPECIAL_RE.sub(lambda m: _GO_SPECIAL[m.group(0)], text)


def go_json(value):
    """Encode like Go's json.Marshal: compact, map keys sorted, HTML characters escaped.

    Dicts encode with sorted keys unless they are an OrderedStruct (field order kept).
    """
    return _encode(value).encode("utf-8")


class OrderedStruct(dict):
    """A dict that encodes in insertion order, like a Go struct."""


def _encode(value):
    if isinstance(value, OrderedStruct):
        items = value.items()
    elif isinstance(value, dict):
        items = sorted(value.items())
    elif isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    elif isinstance(value, bool) or value is None:
        return json.dumps(value)
    elif isinstance(value, int):
        return str(value)
    elif isinstance(value, float):
        return json.dumps(value)
    elif isinstance(value, str):
        return _go_string(value)
    else:
        raise TypeError("cannot encode %r as JSON" % type(value).__name__)
    return "{" + ",".join(_go_string(str(k)) + ":" + _encode(v) for k, v in items) + "}"


# Fields without omitempty in image-spec's Go structs.
REQUIRED_FIELDS = ("schemaVersion", "config", "layers", "manifests", "mediaType", "digest", "size")


def _struct(value, fields):
    """Keep known fields in Go's order, drop empty optional ones, keep unknown ones after."""
    out = OrderedStruct()
    for name in fields:
        if name in value and (name in REQUIRED_FIELDS or value[name] not in (None, "", {}, [])):
            out[name] = value[name]
    for name in sorted(set(value) - set(fields)):
        out[name] = value[name]
    return out


def descriptor(media_type, digest, size, annotations=None, **extra):
    desc = OrderedStruct()
    desc["mediaType"] = media_type
    desc["digest"] = digest
    desc["size"] = size
    if annotations:
        desc["annotations"] = dict(annotations)
    for name in DESCRIPTOR_FIELDS:
        if extra.get(name) not in (None, "", {}, []):
            desc[name] = extra[name]
    return _struct(desc, DESCRIPTOR_FIELDS)


def manifest_bytes(config, layers, annotations=None, artifact_type=None, subject=None):
    """The exact bytes of an OCI image manifest."""
    value = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": _struct(config, DESCRIPTOR_FIELDS),
        "layers": [_struct(layer, DESCRIPTOR_FIELDS) for layer in layers],
        "subject": _struct(subject, DESCRIPTOR_FIELDS) if subject else None,
        "annotations": dict(annotations) if annotations else None,
    }
    return go_json(_struct(value, MANIFEST_FIELDS))


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def bytes_descriptor(media_type, data, annotations=None):
    return descriptor(media_type, sha256_digest(data), len(data), annotations)


def file_digest(path, read_size=READ_SIZE):
    """sha256 digest and size of a file, read once in large blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        buf = bytearray(read_size)
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            size += n
    return "sha256:" + h.hexdigest(), size


def check_digest(digest, option="digest"):
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise OnmetalError("'%s' is not a sha256 digest (sha256:<64 hex>)" % (digest,), option=option)
    return digest


def empty_descriptor():
    return descriptor(mt.OCI_EMPTY, mt.EMPTY_DIGEST, 2, data=base64.b64encode(mt.EMPTY_JSON).decode("ascii"))


def parse_json_object(data, what):
    """Decode a JSON object from bytes; anything else is an error naming `what`."""
    try:
        value = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (ValueError, UnicodeDecodeError) as e:
        raise OnmetalError("%s is not valid JSON (%s)" % (what, e))
    if not isinstance(value, dict):
        raise OnmetalError("%s is not a JSON object" % what)
    return value


def signature_tag(digest):
    """cosign's tag for the signatures of a manifest: sha256-<hex>.sig."""
    return digest.replace(":", "-", 1) + ".sig"


def referrers_tag(digest):
    """The referrers tag fallback of distribution-spec 1.1: sha256-<hex>."""
    return digest.replace(":", "-", 1)
