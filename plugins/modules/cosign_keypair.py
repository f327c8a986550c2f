#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cosign_keypair
short_description: Create a cosign key pair, as cosign generate-key-pair does
version_added: 0.1.0
description:
  - Writes an encrypted ECDSA P-256 private key in cosign's format and its public key, with no cosign binary.
  - The private key file gets mode C(0600) before any byte is written.
  - No change when the private key exists (a missing public key is derived from it); O(force) replaces the pair.
author:
  - Garden Linux onmetal maintainers (@gardenlinux)
attributes:
  check_mode:
    support: full
    description: Says whether the pair would be written.
  diff_mode:
    support: none
    description: Key material is never shown.
options:
  private_key:
    description: Path of the private key file (C(cosign.key)).
    type: path
    required: true
  public_key:
    description: Path of the public key file; default the private key's path with C(.pub) for C(.key).
    type: path
  password:
    description:
      - Password that encrypts the private key. When unset, C(COSIGN_PASSWORD) from the environment, as cosign
        reads it (an empty value is a valid, empty password).
    type: str
  format:
    description:
      - V(sigstore) writes C(ENCRYPTED SIGSTORE PRIVATE KEY) with scrypt N=65536, as cosign 2.2 and newer do.
      - V(cosign-legacy) writes C(ENCRYPTED COSIGN PRIVATE KEY) with N=32768, for cosign before 2.2
        (before 2.0.1 cosign reads only this label).
    type: str
    choices: [sigstore, cosign-legacy]
    default: sigstore
  force:
    description: Replace an existing pair.
    type: bool
    default: false
seealso:
  - module: gardenlinux.onmetal.cosign_sign
  - module: gardenlinux.onmetal.cosign_verify
"""

EXAMPLES = r"""
- name: A signing key for the release pipeline
  gardenlinux.onmetal.cosign_keypair:
    private_key: /etc/gardenlinux/cosign.key
    password: "{{ vault_cosign_password }}"
"""

RETURN = r"""
private_key:
  description: Path of the private key.
  returned: success
  type: str
public_key:
  description: Path of the public key.
  returned: success
  type: str
format:
  description: V(sigstore) or V(cosign-legacy).
  returned: success
  type: str
kdf_n:
  description: The scrypt cost parameter N of the private key.
  returned: when the private key exists or was written
  type: int
  sample: 65536
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.common import run
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.keyfiles import ensure_keypair


def main():
    module = AnsibleModule(
        argument_spec=dict(
            private_key=dict(type="path", required=True, no_log=False),
            public_key=dict(type="path"),
            password=dict(type="str", no_log=True),
            format=dict(type="str", choices=["sigstore", "cosign-legacy"], default="sigstore"),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    run(module, lambda: ensure_keypair(p["private_key"], p["public_key"], p["password"], p["format"], p["force"],
                                       module.check_mode), libraries=("cryptography", "nacl"))


if __name__ == "__main__":
    main()
