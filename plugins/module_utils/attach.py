# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attach files to an image as a separate artifact whose subject is the image, as `oras attach` does.

Boot consumers never see it (the image's manifest is unchanged), and it is found through the
referrers tag fallback `sha256-<hex>` of distribution-spec 1.1, since distribution 2.8 has no
referrers API.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import NotFound, OnmetalError, RegistryError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import check_artifact, string_map

INDEX_ATTEMPTS = 5


def _layers(files):
    layers = []
    for index, item in enumerate(files or []):
        media_type, extra = check_artifact(item, "files[%d]" % index)
        annotations = {mt.TITLE_ANNOTATION: os.path.basename(item["path"])}
        annotations.update(extra)
        digest, size = oci.file_digest(item["path"])
        layers.append((oci.descriptor(media_type, digest, size, annotations), item["path"]))
    if not layers:
        raise OnmetalError("name at least one file to attach", option="files")
    return layers


def attach(target, files, artifact_type=mt.GARDENLINUX_EXTRAS_ARTIFACT, annotations=None, check_mode=False):
    """Push the artifact (by digest) and list it in the subject's referrers tag; idempotent."""
    ref = target.ref
    subject = target.resolve(ref)
    if subject is None:
        raise NotFound("%s not found: push the image first" % ref, option="ref")
    if not artifact_type or "/" not in artifact_type:
        raise OnmetalError("must be a media type such as %s" % mt.GARDENLINUX_EXTRAS_ARTIFACT, option="artifact_type")
    layers = _layers(files)
    manifest_annotations = string_map(annotations, "annotations")
    subject_desc = oci.descriptor(subject["mediaType"], subject["digest"], subject["size"])
    data = oci.manifest_bytes(oci.empty_descriptor(), [layer[0] for layer in layers], manifest_annotations,
                              artifact_type=artifact_type, subject=subject_desc)
    digest = oci.sha256_digest(data)
    entry = oci.descriptor(mt.OCI_MANIFEST, digest, len(data), manifest_annotations or None, artifactType=artifact_type)
    index_ref = ref.replace(tag=oci.referrers_tag(subject["digest"]), digest=None)
    result = {
        "digest": digest,
        "ref": str(ref.replace(tag=None, digest=digest)),
        "subject": subject["digest"],
        "referrers_tag": index_ref.tag,
        "manifest": json.loads(data),
        "changed": False,
    }
    stored = target.resolve(ref.replace(tag=None, digest=digest)) is not None
    listed = _listed(target, index_ref, digest)
    if stored and listed:
        result.update(target.stats.as_dict())
        return result
    result["changed"] = True
    if check_mode:
        return result
    for desc, path in [(oci.empty_descriptor(), mt.EMPTY_JSON)] + layers:
        target.push_blob(desc, path)
    if not stored:
        target.push_manifest(data, mt.OCI_MANIFEST)
    for attempt in range(INDEX_ATTEMPTS):
        try:
            _add_to_index(target, index_ref, entry)
        except RegistryError as e:
            # Written once per read: a blind retry could drop an entry another writer added.
            if not e.retryable or attempt == INDEX_ATTEMPTS - 1:
                raise
        # Another writer may have replaced the index between our read and write: read it again.
        if _listed(target, index_ref, digest):
            break
        time.sleep(0.2 * (attempt + 1))
    else:
        raise OnmetalError("could not keep %s in the referrers tag %s: other writers kept replacing it" % (digest, index_ref))
    result.update(target.stats.as_dict())
    return result


def _read_index(target, index_ref):
    if target.resolve(index_ref) is None:
        return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    data = target.fetch_manifest(index_ref)[0]
    index = oci.parse_json_object(data, "the referrers index %s" % index_ref)
    index.setdefault("manifests", [])
    return index


def _listed(target, index_ref, digest):
    return any(m.get("digest") == digest for m in _read_index(target, index_ref)["manifests"])


def _add_to_index(target, index_ref, entry):
    index = _read_index(target, index_ref)
    manifests = [m for m in index["manifests"] if m.get("digest") != entry["digest"]] + [entry]
    value = oci.OrderedStruct(schemaVersion=2)
    value["mediaType"] = mt.OCI_INDEX
    value["manifests"] = [oci.descriptor(m.get("mediaType"), m.get("digest"), m.get("size"), m.get("annotations"),
                                         artifactType=m.get("artifactType")) for m in manifests]
    target.push_manifest(oci.go_json(value), mt.OCI_INDEX, index_ref.tag, retry=False)
