# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one target interface: a registry repository or an OCI image layout folder.

Every module works on either through these methods:

- ``resolve(ref)``: descriptor of the manifest a tag or digest names, or None.
- ``has_blob(digest)``
- ``push_blob(descriptor, source)``: source is a path or bytes; returns bytes sent.
- ``read_blob(digest, size=None)``: small blob as bytes, digest checked.
- ``copy_blob_to(digest, size, fileobj)``: stream a blob into an open file, digest checked.
- ``push_manifest(data, media_type, tag=None)``: returns the digest.
- ``fetch_manifest(ref)``: (bytes, media type, digest), digest checked.
- ``tag(digest, tag)``
- ``list_tags()``
- ``blob_url(digest)``

Stats of what was written are kept in ``stats`` for the module's result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import DigestMismatch


class Stats:
    def __init__(self):
        self.blobs_sent = []
        self.blobs_skipped = []
        self.bytes_sent = 0
        self.manifests_written = []
        self.tags_written = []

    @property
    def wrote(self):
        return bool(self.blobs_sent or self.manifests_written or self.tags_written)

    def as_dict(self):
        return {
            "blobs_sent": list(self.blobs_sent),
            "blobs_skipped": list(self.blobs_skipped),
            "bytes_sent": self.bytes_sent,
            "manifests_written": list(self.manifests_written),
            "tags_written": list(self.tags_written),
        }


class DigestingWriter:
    """Wraps a writable file: hashes and counts what passes, checks it at the end."""

    def __init__(self, fileobj, digest, size=None, what="blob"):
        self.fileobj = fileobj
        self.digest = digest
        self.size = size
        self.what = what
        self.count = 0
        self._hash = hashlib.sha256()

    def write(self, chunk):
        self._hash.update(chunk)
        self.count += len(chunk)
        if self.size is not None and self.count > self.size:
            raise DigestMismatch("%s %s is larger than its descriptor's %d bytes" % (self.what, self.digest, self.size))
        self.fileobj.write(chunk)

    def check(self):
        if self.size is not None and self.count != self.size:
            raise DigestMismatch(
                "%s %s: got %d bytes, its descriptor says %d" % (self.what, self.digest, self.count, self.size)
            )
        got = "sha256:" + self._hash.hexdigest()
        if got != self.digest:
            raise DigestMismatch("%s content does not match its digest %s (got %s)" % (self.what, self.digest, got))


def open_target(ref, connection=None):
    """The target for a parsed reference; connection is the shared connection options dict."""
    if ref.is_layout:
        from ansible_collections.gardenlinux.onmetal.plugins.module_utils.layout import LayoutTarget

        return LayoutTarget(ref)
    from ansible_collections.gardenlinux.onmetal.plugins.module_utils.registry import RegistryTarget

    return RegistryTarget(ref, connection or {})
