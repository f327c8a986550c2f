#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: onmetal_release
short_description: Find the files of a Garden Linux build, its version and kernel command line
version_added: 0.1.0
description:
  - Looks in a build's output folder for C(<cname>.raw), C(.vmlinuz), C(.initrd), C(.os-release), C(.log),
    C(.manifest) and C(.cmdline), as a Garden Linux build names them; explicit paths win.
  - The version is C(GARDENLINUX_VERSION) (else C(VERSION_ID)) of the os-release file, made a valid tag.
  - Fails with one line naming the missing file when rootfs, kernel or initramfs is not there.
  - Reads only; used by the role C(gardenlinux.onmetal.publish).
author:
  - Garden Linux onmetal maintainers (@gardenlinux)
attributes:
  check_mode:
    support: full
    description: Reads the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
options:
  release_dir:
    description: The build's output folder.
    type: path
  cname:
    description: The build's name, the common part of its file names. Found when the folder holds one C(.raw).
    type: str
  files:
    description:
      - Explicit paths by role - V(rootfs), V(kernel), V(initramfs), V(os_release), V(log), V(manifest), V(command_line).
    type: dict
  target:
    description:
      - Where the release goes, returned as RV(ref) - a registry reference or V(oci:PATH[:tag]). A reference
        without tag gets the release's version as tag.
      - Default - the OCI image layout C(.build/oci) in the working folder, tagged with the version.
    type: str
  option_prefix:
    description: Prefix of the option names in error messages (the role passes V(publish_)).
    type: str
    default: ''
"""

EXAMPLES = r"""
- name: Find a build's files
  gardenlinux.onmetal.onmetal_release:
    release_dir: .build/kvm-gardener_prod-amd64-1877.0-abcdef12
  register: release
"""

RETURN = r"""
cname:
  description: The build's name.
  returned: success
  type: str
files:
  description: Paths by role (rootfs, kernel, initramfs, and os_release, log, manifest, command_line when present).
  returned: success
  type: dict
version:
  description: The release's version from its os-release, or null.
  returned: success
  type: str
  sample: "1877.0"
os_release:
  description: The os-release fields.
  returned: success
  type: dict
command_line:
  description: The kernel command line from the C(.cmdline) file, or empty.
  returned: success
  type: str
ref:
  description: The reference to publish to (see O(target)).
  returned: success
  type: str
  sample: oci:/home/me/gardenlinux/.build/oci:1877.0
artifacts:
  description: The extras (os-release, log, manifest) with their Garden Linux media types, ready for O(gardenlinux.onmetal.onmetal_push#module:artifacts).
  returned: success
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.common import run
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.release import find_release, release_ref


def main():
    module = AnsibleModule(
        argument_spec=dict(
            release_dir=dict(type="path"),
            cname=dict(type="str"),
            files=dict(type="dict"),
            target=dict(type="str"),
            option_prefix=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )

    def work():
        p = module.params
        result = find_release(p["release_dir"], p["cname"], p["files"], prefix=p["option_prefix"])
        result["ref"] = release_ref(p["target"], result["version"], prefix=p["option_prefix"])
        result["changed"] = False
        return result

    run(module, work, libraries=("oras",))


if __name__ == "__main__":
    main()
