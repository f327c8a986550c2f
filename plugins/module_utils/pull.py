# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Download layers to files: size and digest checked, written atomically, skipped when already there."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.files import atomic_file
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.info import layer_role, read_image


def _file_name(layer, role):
    title = (layer.get("annotations") or {}).get("org.opencontainers.image.title")
    if title:
        name = os.path.basename(title.replace("\\", "/"))
        if name not in ("", ".", ".."):
            return name
    return role or layer["digest"].split(":", 1)[1]


def select_layers(manifest, layers):
    """Layers picked by role (rootfs, kernel, ...) or media type; all when none are named."""
    chosen = []
    all_layers = manifest.get("layers") or []
    for wanted in layers or []:
        found = [layer for layer in all_layers if layer_role(layer) == wanted or layer.get("mediaType") == wanted]
        if not found:
            known = sorted({layer_role(layer) or layer.get("mediaType") for layer in all_layers})
            raise OnmetalError("the image has no '%s' layer; it has %s" % (wanted, ", ".join(known)), option="layers")
        chosen.extend(layer for layer in found if layer not in chosen)
    return chosen if layers else list(all_layers)


def holds(path, digest, size):
    if not os.path.isfile(path) or os.path.getsize(path) != size:
        return False
    return oci.file_digest(path)[0] == digest


def pull(target, dest, layers=None, check_mode=False, platform=None):
    if not dest:
        raise OnmetalError("a folder is required", option="dest")
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise OnmetalError("%s is not a folder" % dest, option="dest")
    image = read_image(target, platform=platform)
    if not image["manifest"].get("layers"):
        raise OnmetalError("%s has no layers to download" % target.ref, option="ref")
    digest = image["descriptor"]["digest"]
    files = []
    names = set()
    for layer in select_layers(image["manifest"], layers):
        oci.check_digest(layer.get("digest"), "layers")
        role = layer_role(layer)
        name = _file_name(layer, role)
        if name in names:
            name = "%s-%s" % (name, layer["digest"].split(":", 1)[1][:12])
        names.add(name)
        path = os.path.join(dest, name)
        entry = {"path": path, "digest": layer["digest"], "size": layer.get("size"), "role": role,
                 "media_type": layer.get("mediaType"), "changed": not holds(path, layer["digest"], layer.get("size"))}
        files.append(entry)
    received = 0
    if not check_mode:
        for entry in files:
            if entry["changed"]:
                received += _download(target, entry)
    return {
        "changed": any(entry["changed"] for entry in files),
        "digest": digest,
        "ref": str(target.ref.replace(digest=digest)),
        "files": files,
        "bytes_received": received if not check_mode else sum(e["size"] or 0 for e in files if e["changed"]),
    }


def _download(target, entry):
    folder = os.path.dirname(entry["path"]) or "."
    os.makedirs(folder, exist_ok=True)
    with atomic_file(entry["path"], prefix=".%s.part-" % os.path.basename(entry["path"])) as f:
        count = target.copy_blob_to(entry["digest"], entry["size"], f)
    return count
