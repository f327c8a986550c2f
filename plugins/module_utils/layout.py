# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An OCI image layout folder as a target (image-spec image-layout.md).

Tags are `org.opencontainers.image.ref.name` entries of index.json holding the bare
tag, as oras, skopeo and oras-go write them. Every file is written to a temporary name
and renamed, and index.json is updated under a lock, so a reader or a second writer
never sees a half-written file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import fcntl
import json
import os

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import DigestMismatch, NotFound, OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.files import atomic_file, write_atomic
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import DigestingWriter, Stats

LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'


class LayoutTarget:
    def __init__(self, ref):
        self.ref = ref
        self.root = os.path.abspath(os.path.expanduser(ref.path))
        self.stats = Stats()

    # -- reading ---------------------------------------------------------------

    def _blob_path(self, digest):
        oci.check_digest(digest)
        return os.path.join(self.root, "blobs", "sha256", digest.split(":", 1)[1])

    def _index(self):
        path = os.path.join(self.root, "index.json")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {"schemaVersion": 2, "manifests": []}
        except OSError as e:
            raise OnmetalError("cannot read %s: %s" % (path, e.strerror), option="ref")
        index = oci.parse_json_object(data, path)
        if not isinstance(index.get("manifests", []), list):
            raise OnmetalError("%s has no list of manifests" % path, option="ref")
        index.setdefault("manifests", [])
        return index

    def resolve(self, ref=None):
        ref = ref or self.ref
        if ref.digest:
            path = self._blob_path(ref.digest)
            if not os.path.isfile(path):
                return None
            for entry in self._index()["manifests"]:
                if entry.get("digest") == ref.digest:
                    return oci.descriptor(entry.get("mediaType", mt.OCI_MANIFEST), ref.digest, entry.get("size"))
            data = self.read_blob(ref.digest)
            media_type = oci.parse_json_object(data, "manifest %s" % ref.digest).get("mediaType", mt.OCI_MANIFEST)
            return oci.descriptor(media_type, ref.digest, len(data))
        if not ref.tag:
            return None
        for entry in reversed(self._index()["manifests"]):
            if (entry.get("annotations") or {}).get(mt.REF_NAME_ANNOTATION) == ref.tag:
                return oci.descriptor(entry.get("mediaType", mt.OCI_MANIFEST), entry["digest"], entry.get("size"))
        return None

    def has_blob(self, digest):
        return os.path.isfile(self._blob_path(digest))

    def read_blob(self, digest, size=None):
        path = self._blob_path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound("blob %s is not in %s" % (digest, self.root))
        if size is not None and len(data) != size:
            raise DigestMismatch("blob %s in %s has %d bytes, its descriptor says %d" % (digest, self.root, len(data), size))
        if oci.sha256_digest(data) != digest:
            raise DigestMismatch("blob %s in %s does not match its digest" % (digest, self.root))
        return data

    def copy_blob_to(self, digest, size, fileobj):
        path = self._blob_path(digest)
        writer = DigestingWriter(fileobj, digest, size)
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(oci.READ_SIZE), b""):
                    writer.write(chunk)
        except FileNotFoundError:
            raise NotFound("blob %s is not in %s" % (digest, self.root))
        writer.check()
        return writer.count

    def fetch_manifest(self, ref=None):
        ref = ref or self.ref
        desc = self.resolve(ref)
        if desc is None:
            raise NotFound("%s not found" % ref, option="ref")
        data = self.read_blob(desc["digest"])
        media_type = oci.parse_json_object(data, "manifest %s" % desc["digest"]).get("mediaType") or desc["mediaType"]
        return data, media_type, desc["digest"]

    def list_tags(self):
        tags = []
        for entry in self._index()["manifests"]:
            name = (entry.get("annotations") or {}).get(mt.REF_NAME_ANNOTATION)
            if name and name not in tags:
                tags.append(name)
        return sorted(tags)

    def blob_url(self, digest):
        return "file://" + self._blob_path(digest)

    # -- writing ---------------------------------------------------------------

    def _ensure_layout(self):
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise OnmetalError("%s exists and is not a folder" % self.root, option="ref")
        os.makedirs(os.path.join(self.root, "blobs", "sha256"), exist_ok=True)
        marker = os.path.join(self.root, "oci-layout")
        if not os.path.exists(marker):
            write_atomic(marker, LAYOUT_FILE)

    def push_blob(self, desc, source):
        self._ensure_layout()
        path = self._blob_path(desc["digest"])
        if os.path.isfile(path):
            self.stats.blobs_skipped.append(desc["digest"])
            return 0
        if isinstance(source, bytes):
            if oci.sha256_digest(source) != desc["digest"]:
                raise DigestMismatch("content for %s does not match its digest" % desc["digest"])
            write_atomic(path, source)
            count = len(source)
        else:
            with atomic_file(path) as out, open(source, "rb") as src:
                # Checked while copying: a file that changed since it was hashed is refused.
                writer = DigestingWriter(out, desc["digest"], desc.get("size"), what="file %s" % source)
                for chunk in iter(lambda: src.read(oci.READ_SIZE), b""):
                    writer.write(chunk)
                writer.check()
            count = writer.count
        self.stats.blobs_sent.append(desc["digest"])
        self.stats.bytes_sent += count
        return count

    @contextlib.contextmanager
    def _locked_index(self):
        self._ensure_layout()
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            index = self._index()
            yield index
            data = json.dumps(index, separators=(",", ":"), sort_keys=False).encode("utf-8")
            write_atomic(os.path.join(self.root, "index.json"), data)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def push_manifest(self, data, media_type, tag=None, retry=True):  # pylint: disable=unused-argument
        digest = oci.sha256_digest(data)
        desc = oci.descriptor(media_type, digest, len(data))
        self._ensure_layout()
        path = self._blob_path(digest)
        if not os.path.isfile(path):
            write_atomic(path, data)
            self.stats.bytes_sent += len(data)
        with self._locked_index() as index:
            _set_entry(index, desc, tag)
        self.stats.manifests_written.append(digest)
        if tag:
            self.stats.tags_written.append(tag)
        return digest

    def tag(self, digest, tag):
        desc = self.resolve(self.ref.replace(tag=None, digest=digest))
        if desc is None:
            raise NotFound("manifest %s is not in %s" % (digest, self.root))
        with self._locked_index() as index:
            _set_entry(index, desc, tag)
        self.stats.tags_written.append(tag)


def _set_entry(index, desc, tag):
    entry = dict(desc)
    manifests = index["manifests"]
    if tag:
        entry["annotations"] = {mt.REF_NAME_ANNOTATION: tag}
        manifests[:] = [m for m in manifests if (m.get("annotations") or {}).get(mt.REF_NAME_ANNOTATION) != tag]
        # An untagged entry of the same manifest is superseded by the tagged one.
        manifests[:] = [m for m in manifests if m.get("digest") != desc["digest"] or m.get("annotations")]
    elif any(m.get("digest") == desc["digest"] for m in manifests):
        return
    manifests.append(entry)
