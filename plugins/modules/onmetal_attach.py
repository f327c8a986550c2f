#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: onmetal_attach
short_description: Attach files to an image as a referrer artifact, as oras attach does
version_added: 0.1.0
description:
  - Pushes files (a build's os-release, log and package manifest, say) as a separate OCI artifact whose
    C(subject) is the image, so the image itself keeps only the layers its boot consumers understand.
  - The artifact is listed in the referrers tag C(sha256-<hex of the image digest>) (the tag fallback of
    distribution-spec 1.1), which is how clients find referrers on registries without the referrers API,
    such as distribution 2.8. M(gardenlinux.onmetal.onmetal_info) returns them as RV(gardenlinux.onmetal.onmetal_info#module:referrers).
  - Idempotent by digest - nothing is written when the same artifact is already stored and listed.
author:
  - Garden Linux onmetal maintainers (@gardenlinux)
extends_documentation_fragment:
  - gardenlinux.onmetal.connection
attributes:
  check_mode:
    support: full
    description: Says whether the artifact would be written.
  diff_mode:
    support: none
    description: Not supported.
options:
  ref:
    description: The image to attach to - V(registry/repository:tag), V(...@sha256:...) or V(oci:PATH:tag).
    type: str
    required: true
  files:
    description: The files, each a layer of the artifact with its own media type.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The file.
        type: path
        required: true
      media_type:
        description: Its media type.
        type: str
        required: true
      annotations:
        description: Annotations of this layer, beside its title.
        type: dict
  artifact_type:
    description: The C(artifactType) of the artifact.
    type: str
    default: application/vnd.gardenlinux.extras.v1
  annotations:
    description: Annotations of the artifact's manifest.
    type: dict
seealso:
  - module: gardenlinux.onmetal.onmetal_push
  - module: gardenlinux.onmetal.onmetal_info
"""

EXAMPLES = r"""
- name: Attach a build's extras to its image
  gardenlinux.onmetal.onmetal_attach:
    ref: registry.example.com/gardenlinux/kvm:1877.0
    files:
      - path: out/kvm-amd64.os-release
        media_type: application/vnd.gardenlinux.os.release
      - path: out/kvm-amd64.manifest
        media_type: application/vnd.gardenlinux.manifest
"""

RETURN = r"""
digest:
  description: Digest of the artifact's manifest.
  returned: success
  type: str
ref:
  description: The artifact by digest.
  returned: success
  type: str
subject:
  description: Digest of the image it refers to.
  returned: success
  type: str
referrers_tag:
  description: The tag of the referrers index that lists it.
  returned: success
  type: str
  sample: sha256-d3d8d1bbc4dbe8a9e74276fb5de439a82e4d18aa3491c2ec8229c5328716f061
manifest:
  description: The artifact's manifest.
  returned: success
  type: dict
blobs_sent:
  description: Digests of the blobs written.
  returned: success
  type: list
  elements: str
bytes_sent:
  description: Bytes written.
  returned: success
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.attach import attach
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.common import CONNECTION_SPEC, connection_params, run
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target


def main():
    argument_spec = dict(
        ref=dict(type="str", required=True),
        files=dict(type="list", elements="dict", required=True, options=dict(
            path=dict(type="path", required=True),
            media_type=dict(type="str", required=True),
            annotations=dict(type="dict"),
        )),
        artifact_type=dict(type="str", default="application/vnd.gardenlinux.extras.v1"),
        annotations=dict(type="dict"),
    )
    argument_spec.update(CONNECTION_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    def work():
        target = open_target(parse(module.params["ref"]), connection_params(module.params))
        return attach(target, module.params["files"], module.params["artifact_type"], module.params["annotations"],
                      check_mode=module.check_mode)

    run(module, work)


if __name__ == "__main__":
    main()
