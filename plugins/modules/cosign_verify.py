#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cosign_verify
short_description: Verify an image's cosign signature with a public key
version_added: 0.1.0
description:
  - Checks the C(sha256-<hex>.sig) signatures of what a reference names as
    C(cosign verify --key KEY --insecure-ignore-tlog) does - the ECDSA signature over each payload, that
    the payload names this manifest digest, and the required O(annotations). It passes when one signature holds.
  - Fails with one line saying why when none holds - no signature, wrong key, a manifest changed after
    signing, a payload naming another digest, or missing annotations.
  - Reads signatures made by cosign itself and by M(gardenlinux.onmetal.cosign_sign).
author:
  - Garden Linux onmetal maintainers (@gardenlinux)
extends_documentation_fragment:
  - gardenlinux.onmetal.connection
attributes:
  check_mode:
    support: full
    description: Verifies the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
options:
  ref:
    description: The image, V(registry/repository:tag), V(...@sha256:...) or V(oci:PATH:tag).
    type: str
    required: true
  public_key:
    description: cosign public key file (PEM C(PUBLIC KEY)).
    type: path
    required: true
  annotations:
    description: Annotations a signature must carry, as cosign's C(-a key=value).
    type: dict
seealso:
  - module: gardenlinux.onmetal.cosign_sign
"""

EXAMPLES = r"""
- name: Refuse to deploy an unsigned release
  gardenlinux.onmetal.cosign_verify:
    ref: registry.example.com/gardenlinux/kvm:1877.0
    public_key: cosign.pub
    annotations:
      release: "1877.0"
"""

RETURN = r"""
digest:
  description: The manifest digest verified.
  returned: success
  type: str
payloads:
  description: The payloads whose signatures hold.
  returned: success
  type: list
  elements: dict
  sample:
    - critical:
        identity:
          docker-reference: registry.example.com/gardenlinux/kvm
        image:
          docker-manifest-digest: sha256:d3d8d1bbc4dbe8a9e74276fb5de439a82e4d18aa3491c2ec8229c5328716f061
        type: cosign container image signature
      optional: null
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.common import CONNECTION_SPEC, connection_params, run
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.cosign import verify
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.keyfiles import read_public_key
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target


def main():
    argument_spec = dict(
        ref=dict(type="str", required=True),
        public_key=dict(type="path", required=True),
        annotations=dict(type="dict"),
    )
    argument_spec.update(CONNECTION_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    def work():
        p = module.params
        key = read_public_key(p["public_key"])
        ref = parse(p["ref"])
        payloads = verify(open_target(ref, connection_params(p)), ref, key, p["annotations"])
        digest = payloads[0]["critical"]["image"]["docker-manifest-digest"]
        return {"changed": False, "digest": digest, "payloads": payloads}

    run(module, work, libraries=("oras", "requests", "cryptography"))


if __name__ == "__main__":
    main()
