#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cosign_sign
short_description: Sign an image with a cosign key, as cosign sign --key does
version_added: 0.1.0
description:
  - Signs the manifest a reference names, by digest, in cosign's C(sha256-<hex>.sig) layout - a simple-signing
    payload per layer with its ECDSA signature in the C(dev.cosignproject.cosign/signature) annotation.
    C(cosign verify --key --insecure-ignore-tlog) of cosign v2 and v3 accepts it. No cosign binary is needed.
  - Existing signatures are kept; the new one is appended.
  - No change when a signature of this digest with this key and these annotations is there already.
  - Two signers at once both end up in the C(.sig) manifest - the module reads it back after writing and
    writes again when another signer replaced it.
  - Nothing is uploaded to a transparency log.
author:
  - Garden Linux onmetal maintainers (@gardenlinux)
extends_documentation_fragment:
  - gardenlinux.onmetal.connection
attributes:
  check_mode:
    support: full
    description: Says whether a signature would be added.
  diff_mode:
    support: none
    description: Not supported.
options:
  ref:
    description:
      - The image, V(registry/repository:tag), V(...@sha256:...) or V(oci:PATH:tag). A tag is resolved to
        its digest first; the digest is what gets signed.
    type: str
    required: true
  private_key:
    description: cosign private key file (C(ENCRYPTED SIGSTORE PRIVATE KEY) or C(ENCRYPTED COSIGN PRIVATE KEY)).
    type: path
    required: true
  key_password:
    description:
      - Password of the private key; when unset, C(COSIGN_PASSWORD) from the environment (may be empty).
      - O(password) is the registry's password, as in every module of the collection.
    type: str
  annotations:
    description: Annotations signed with the payload, as cosign's C(-a key=value).
    type: dict
seealso:
  - module: gardenlinux.onmetal.cosign_keypair
  - module: gardenlinux.onmetal.cosign_verify
"""

EXAMPLES = r"""
- name: Sign a release
  gardenlinux.onmetal.cosign_sign:
    ref: registry.example.com/gardenlinux/kvm:1877.0
    private_key: cosign.key
    key_password: "{{ vault_cosign_password }}"
    annotations:
      release: "1877.0"
"""

RETURN = r"""
digest:
  description: The manifest digest that was signed.
  returned: success
  type: str
signature_ref:
  description: Where the signatures are.
  returned: success
  type: str
  sample: registry.example.com/gardenlinux/kvm:sha256-d3d8d1bbc4dbe8a9e74276fb5de439a82e4d18aa3491c2ec8229c5328716f061.sig
signature_manifest_digest:
  description: Digest of the signature manifest (null in check mode when it would change).
  returned: success
  type: str
payload:
  description: The signed payload.
  returned: success
  type: dict
signatures:
  description: How many signatures the C(.sig) manifest holds.
  returned: success
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.common import CONNECTION_SPEC, connection_params, run
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.cosign import sign
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.keyfiles import read_private_key
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target


def main():
    argument_spec = dict(
        ref=dict(type="str", required=True),
        private_key=dict(type="path", required=True, no_log=False),
        key_password=dict(type="str", no_log=True),
        annotations=dict(type="dict"),
    )
    argument_spec.update(CONNECTION_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    def work():
        p = module.params
        ref = parse(p["ref"])
        target = open_target(ref, connection_params(p))
        key = read_private_key(p["private_key"], p["key_password"], password_option="key_password")
        result = sign(target, ref, key, p["annotations"], check_mode=module.check_mode)
        result.update(target.stats.as_dict())
        return result

    run(module, work, libraries=("oras", "requests", "cryptography", "nacl"))


if __name__ == "__main__":
    main()
