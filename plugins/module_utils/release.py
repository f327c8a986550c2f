# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Garden Linux build's output folder: which file is what, its version and command line."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import shlex

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import TAG_RE, parse

# Suffixes a Garden Linux build gives its files; the first three make the boot image.
SUFFIXES = {
    "rootfs": ".raw",
    "kernel": ".vmlinuz",
    "initramfs": ".initrd",
    "os_release": ".os-release",
    "log": ".log",
    "manifest": ".manifest",
    "command_line": ".cmdline",
}
REQUIRED = ("rootfs", "kernel", "initramfs")
EXTRAS = ("os_release", "log", "manifest")
EXTRA_MEDIA_TYPES = {"os_release": mt.GARDENLINUX_EXTRAS["os-release"], "log": mt.GARDENLINUX_EXTRAS["log"],
                     "manifest": mt.GARDENLINUX_EXTRAS["manifest"]}


def parse_os_release(text):
    """os-release(5): KEY=value lines, values optionally shell-quoted."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, dummy, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value]
        values[key.strip()] = parts[0] if parts else ""
    return values


def find_cname(release_dir, option="cname"):
    found = sorted(os.path.basename(p)[: -len(".raw")] for p in glob.glob(os.path.join(glob.escape(release_dir), "*.raw")))
    if len(found) == 1:
        return found[0]
    if not found:
        raise OnmetalError("no <cname>.raw in %s: name the build with %s" % (release_dir, option), option=option)
    raise OnmetalError("%s holds several builds (%s): choose one with %s" % (release_dir, ", ".join(found), option), option=option)


def release_ref(target, version, prefix=""):
    """The reference to publish to: target as given (a tag added from the version when it has none),
    or the embedded default, an OCI layout under .build/oci in the working folder."""
    option = prefix + "target"
    text = target or "oci:%s" % os.path.join(os.getcwd(), ".build", "oci")
    ref = parse(text, option=option)
    if not ref.tag and not ref.digest:
        if not version:
            raise OnmetalError("names no tag and the release's os-release gives no version to tag with", option=option)
        ref = ref.replace(tag=version)
    return str(ref)


def find_release(release_dir, cname=None, files=None, prefix=""):
    """Paths of a build's files, its version and command line; explicit files win over found ones.

    prefix names options the way the caller's user knows them (publish_ for the role).
    """
    files = {k: v for k, v in (files or {}).items() if v}
    if not release_dir and not all(files.get(role) for role in REQUIRED):
        raise OnmetalError("is required unless rootfs, kernel and initramfs are all given", option=prefix + "release_dir")
    if release_dir and not os.path.isdir(release_dir):
        raise OnmetalError("%s is not a folder" % release_dir, option=prefix + "release_dir")
    if release_dir and not cname:
        cname = find_cname(release_dir, prefix + "cname")
    found = {}
    for role, suffix in SUFFIXES.items():
        explicit = files.get(role)
        if explicit:
            if not os.path.isfile(explicit):
                raise OnmetalError("%s does not exist" % explicit, option=prefix + role)
            found[role] = explicit
            continue
        path = os.path.join(release_dir, cname + suffix) if release_dir else None
        if path and os.path.isfile(path):
            found[role] = path
        elif role in REQUIRED:
            raise OnmetalError(
                "the %s %s is missing from %s" % (role, os.path.basename(path), release_dir), option=prefix + "release_dir"
            )
    os_release = {}
    if found.get("os_release"):
        with open(found["os_release"], "r", errors="replace") as f:
            os_release = parse_os_release(f.read())
    version = os_release.get("GARDENLINUX_VERSION") or os_release.get("VERSION_ID") or None
    if version and not TAG_RE.match(version):
        version = re.sub(r"[^A-Za-z0-9_.-]", "-", version).lstrip(".-")[:128] or None
    command_line = ""
    if found.get("command_line"):
        with open(found["command_line"], "r") as f:
            command_line = " ".join(f.read().split())
    return {
        "cname": cname or os.path.basename(found["rootfs"]).rsplit(".", 1)[0],
        "files": found,
        "version": version,
        "os_release": os_release,
        "command_line": command_line,
        "artifacts": [{"path": found[role], "media_type": EXTRA_MEDIA_TYPES[role]} for role in EXTRAS if found.get(role)],
    }
