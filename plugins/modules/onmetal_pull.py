#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: onmetal_pull
short_description: Download the layers of an onmetal or ironcore image to files
version_added: 0.1.0
description:
  - Downloads layers by role (V(rootfs), V(kernel), V(initramfs), V(squashfs), V(uki), V(iso)) or by
    media type into a folder, each under the name its C(org.opencontainers.image.title) annotation gives
    (else its role, else its digest).
  - Size and digest of every layer are checked while it streams to a temporary file, which is renamed
    into place only when both match; a mismatch fails the task and leaves no partial file.
  - A file that already holds the layer's digest is not downloaded again.
author:
  - Garden Linux onmetal maintainers (@gardenlinux)
extends_documentation_fragment:
  - gardenlinux.onmetal.connection
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Says which files would be downloaded without writing.
  diff_mode:
    support: none
    description: Not supported.
options:
  ref:
    description:
      - The image. V(registry.example.com[:port]/repository:tag), V(...@sha256:...), or V(oci:PATH:tag).
    type: str
    required: true
  dest:
    description: Folder for the files; created when missing.
    type: path
    required: true
  platform:
    description:
      - For a reference that names an index (C(ironcore-image build) writes one), the entry to read, as
        V(OS/ARCHITECTURE) (V(linux/amd64)). Without it, the first entry, as C(ironcore-image) picks it.
    type: str
  layers:
    description:
      - Roles or media types of the layers to download. Every layer when empty.
    type: list
    elements: str
    default: []
seealso:
  - module: gardenlinux.onmetal.onmetal_info
  - module: gardenlinux.onmetal.onmetal_push
"""

EXAMPLES = r"""
- name: Fetch kernel and initramfs for a PXE server
  gardenlinux.onmetal.onmetal_pull:
    ref: registry.example.com/gardenlinux/kvm:1877.0
    dest: /srv/tftp/gardenlinux/1877.0
    layers: [kernel, initramfs]
    mode: "0644"

- name: Fetch the Garden Linux package manifest pushed as an extra layer
  gardenlinux.onmetal.onmetal_pull:
    ref: oci:./store:1877.0
    dest: ./extras
    layers: [application/vnd.gardenlinux.manifest]
"""

RETURN = r"""
digest:
  description: Digest of the image manifest the layers came from.
  returned: success
  type: str
ref:
  description: The reference read, with its digest.
  returned: success
  type: str
files:
  description: One entry per layer selected.
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    digest:
      description: Digest of the layer.
      type: str
    size:
      description: Size in bytes.
      type: int
    role:
      description: Role of the layer, or null for other media types.
      type: str
    media_type:
      description: Media type of the layer.
      type: str
    changed:
      description: Whether the file was (or, in check mode, would be) written.
      type: bool
bytes_received:
  description: Bytes downloaded (in check mode, that would be).
  returned: success
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.common import CONNECTION_SPEC, connection_params, run
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.pull import pull
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target


def main():
    argument_spec = dict(
        ref=dict(type="str", required=True),
        dest=dict(type="path", required=True),
        layers=dict(type="list", elements="str", default=[]),
        platform=dict(type="str"),
    )
    argument_spec.update(CONNECTION_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, add_file_common_args=True)

    def work():
        target = open_target(parse(module.params["ref"]), connection_params(module.params))
        result = pull(target, module.params["dest"], module.params["layers"], check_mode=module.check_mode,
                      platform=module.params["platform"])
        if not module.check_mode:
            for entry in result["files"]:
                file_args = module.load_file_common_arguments(module.params, path=entry["path"])
                if module.set_fs_attributes_if_different(file_args, False):
                    entry["changed"] = True
                    result["changed"] = True
        return result

    run(module, work)


if __name__ == "__main__":
    main()
