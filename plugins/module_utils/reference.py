# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""References: `registry.example.com[:port]/repo[:tag][@sha256:...]` and `oci:PATH[:tag][@sha256:...]`."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError

try:
    from oras.container import Container
except ImportError:  # reported by the module through deps.require()
    Container = None

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
# distribution/reference: path components are lower-case alphanumerics with separators.
REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class Reference:
    """A parsed reference to a registry repository or an OCI image layout folder."""

    def __init__(self, kind, tag=None, digest=None, registry=None, repository=None, path=None):
        self.kind = kind
        self.registry = registry
        self.repository = repository
        self.path = path
        self.tag = tag
        self.digest = digest

    @property
    def is_layout(self):
        return self.kind == "oci"

    @property
    def name(self):
        """The reference without tag or digest: what cosign calls docker-reference."""
        if self.is_layout:
            return "oci:" + self.path
        return "%s/%s" % (self.registry, self.repository)

    @property
    def host(self):
        return self.registry.rsplit(":", 1)[0] if self.registry and not self.registry.endswith("]") else self.registry

    @property
    def is_loopback(self):
        return not self.is_layout and self.host in LOOPBACK_HOSTS

    def replace(self, tag=False, digest=False):
        """A copy with another tag and/or digest (None removes it; False keeps it)."""
        return Reference(
            self.kind,
            tag=self.tag if tag is False else tag,
            digest=self.digest if digest is False else digest,
            registry=self.registry,
            repository=self.repository,
            path=self.path,
        )

    def __str__(self):
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    def __repr__(self):
        return "Reference(%s)" % self


def check_tag(tag, option="tags"):
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise OnmetalError(
            "'%s' is not a valid tag (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')" % (tag,),
            option=option,
        )
    return tag


def _split_digest(text, option):
    if "@" not in text:
        return text, None
    text, digest = text.rsplit("@", 1)
    if not DIGEST_RE.match(digest):
        raise OnmetalError("'%s' is not a sha256 digest (sha256:<64 lower-case hex>)" % digest, option=option)
    return text, digest


def parse(text, option="ref"):
    """Parse a reference; raise OnmetalError naming `option` when it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise OnmetalError("a reference is required (registry/repository[:tag][@digest] or oci:PATH[:tag])", option=option)
    text = text.strip()
    if text.startswith("oci:"):
        return _parse_layout(text[4:], option)
    return _parse_registry(text, option)


def _parse_layout(text, option):
    text, digest = _split_digest(text, option)
    path, tag = text, None
    head, sep, tail = text.rpartition(":")
    if sep and "/" not in tail:
        path, tag = head, tail
        check_tag(tag, option)
    if not path:
        raise OnmetalError("oci: needs a folder, as in oci:./store:1.0", option=option)
    return Reference("oci", tag=tag, digest=digest, path=path)


def _parse_registry(text, option):
    if "://" in text:
        raise OnmetalError("'%s': give the reference without a scheme (host/repository:tag); use plain_http for HTTP" % text, option=option)
    first = text.split("/", 1)[0]
    if "/" not in text or not ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        raise OnmetalError(
            "'%s' names no registry: write registry.example.com/repository[:tag], or oci:PATH[:tag] for a folder" % text,
            option=option,
        )
    if Container is None:
        raise OnmetalError("the Python library 'oras' is required to parse registry references", option=option)
    body, digest = _split_digest(text, option)
    registry, rest = body.split("/", 1)
    try:
        container = Container(rest, registry=registry)
    except ValueError as e:
        raise OnmetalError("'%s' is not a valid reference (%s)" % (text, e), option=option)
    repository = "%s/%s" % (container.namespace, container.repository) if container.namespace else container.repository
    tag = rest.rsplit(":", 1)[1] if ":" in rest.rsplit("/", 1)[-1] else None
    if not HOST_RE.match(registry):
        raise OnmetalError("'%s' is not a valid registry host" % registry, option=option)
    if not REPO_RE.match(repository):
        raise OnmetalError(
            "'%s' is not a valid repository name (lower-case letters, digits and separators)" % repository, option=option
        )
    if tag is not None:
        check_tag(tag, option)
    return Reference("registry", tag=tag, digest=digest, registry=registry, repository=repository)
