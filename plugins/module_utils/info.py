# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a reference as onmetal-image inspect/url and oras manifest fetch(-config) show it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import NotFound, OnmetalError

try:
    import jmespath
except ImportError:  # reported by the module through deps.require()
    jmespath = None

MAX_CONFIG = 4 * 1024 * 1024


def layer_role(layer):
    role = mt.role_of(layer.get("mediaType"))[1]
    return role if role and role != "config" else None


def pick_from_index(index, platform, ref):
    """The index entry a consumer would pull: ironcore-image takes the first, or the one of its platform."""
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    if platform:
        if platform.count("/") < 1:
            raise OnmetalError("'%s' is not OS/ARCHITECTURE, such as linux/amd64" % platform, option="platform")
        os_name, arch = platform.split("/", 2)[:2]
        manifests = [m for m in manifests if (m.get("platform") or {}).get("os") == os_name
                     and (m.get("platform") or {}).get("architecture") == arch]
    if not manifests:
        raise OnmetalError("%s is an index with no manifest%s" % (ref, " for " + platform if platform else ""),
                           option="platform" if platform else "ref")
    return manifests[0]


def read_image(target, ref=None, platform=None):
    """descriptor, manifest and config of a reference, each checked against its digest.

    An index (ironcore-image build writes one) is followed to the manifest its consumers pick.
    """
    ref = ref or target.ref
    if not (ref.tag or ref.digest):
        raise OnmetalError("names no tag or digest", option="ref")
    data, media_type, digest = target.fetch_manifest(ref)
    manifest = oci.parse_json_object(data, "the manifest of %s" % ref)
    descriptor = oci.descriptor(media_type, digest, len(data), {mt.REF_NAME_ANNOTATION: str(ref)})
    index = None
    if media_type in (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST) or "manifests" in manifest:
        index = manifest
        entry = pick_from_index(index, platform, ref)
        data, media_type, manifest_digest = target.fetch_manifest(ref.replace(tag=None, digest=entry.get("digest")))
        manifest = oci.parse_json_object(data, "the manifest %s of %s" % (manifest_digest, ref))
    else:
        manifest_digest = digest
    config = None
    config_desc = manifest.get("config") or {}
    if config_desc.get("digest") and config_desc.get("size", 0) <= MAX_CONFIG:
        raw = target.read_blob(config_desc["digest"], config_desc.get("size"))
        try:
            config = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            config = None
    return {"descriptor": descriptor, "manifest": manifest, "config": config, "manifest_bytes": data,
            "index": index, "manifest_digest": manifest_digest}


def describe(target, ref=None, query=None, platform=None):
    """What onmetal_info returns."""
    ref = ref or target.ref
    image = read_image(target, ref, platform)
    manifest = image["manifest"]
    digest = image["descriptor"]["digest"]
    flavor = mt.flavor_of_config((manifest.get("config") or {}).get("mediaType"))
    layers = []
    urls = {}
    for layer in manifest.get("layers") or []:
        role = layer_role(layer)
        url = target.blob_url(layer["digest"]) if oci.DIGEST_RE.match(layer.get("digest", "")) else None
        layers.append({
            "role": role,
            "media_type": layer.get("mediaType"),
            "digest": layer.get("digest"),
            "size": layer.get("size"),
            "title": (layer.get("annotations") or {}).get(mt.TITLE_ANNOTATION),
            "annotations": layer.get("annotations") or {},
            "url": url,
        })
        # `onmetal-image url --layer X` answers the first layer of that type.
        if role and role not in urls:
            urls[role] = url
    config = image["config"]
    result = {
        "ref": str(ref.replace(digest=digest)),
        "digest": digest,
        "descriptor": image["descriptor"],
        "manifest": manifest,
        "manifest_digest": image["manifest_digest"],
        "index": image["index"],
        "config": config,
        "flavor": flavor,
        "command_line": (config or {}).get("commandLine", "") if isinstance(config, dict) else "",
        "layers": layers,
        "urls": urls,
        "annotations": manifest.get("annotations") or {},
        "signatures": _signatures(target, ref, digest),
        "referrers": _referrers(target, ref, digest),
    }
    if query is not None:
        result["query_result"] = run_query(query, result)
    return result


def _signatures(target, ref, digest):
    sig_ref = ref.replace(tag=oci.signature_tag(digest), digest=None)
    try:
        if target.resolve(sig_ref) is None:
            return []
        data = target.fetch_manifest(sig_ref)[0]
    except NotFound:
        return []
    layers = oci.parse_json_object(data, "the signature manifest %s" % sig_ref).get("layers") or []
    return [
        {"ref": str(sig_ref), "payload_digest": layer.get("digest"), "annotations": {
            k: v for k, v in (layer.get("annotations") or {}).items() if k != mt.COSIGN_SIGNATURE_ANNOTATION}}
        for layer in layers if layer.get("mediaType") == mt.COSIGN_SIMPLESIGNING
    ]


def _referrers(target, ref, digest):
    """Referrers through the sha256-<hex> tag fallback (distribution 2.8 has no referrers API)."""
    fallback = ref.replace(tag=oci.referrers_tag(digest), digest=None)
    if target.resolve(fallback) is None:
        return []
    data = target.fetch_manifest(fallback)[0]
    index = oci.parse_json_object(data, "the referrers index %s" % fallback)
    return index.get("manifests") or []


def run_query(query, data):
    if jmespath is None:
        raise OnmetalError("the Python library 'jmespath' is required", option="query")
    try:
        return jmespath.search(query, data)
    except jmespath.exceptions.JMESPathError as e:
        raise OnmetalError("'%s' is not a valid JMESPath expression (%s)" % (query, str(e).splitlines()[0]), option="query")
