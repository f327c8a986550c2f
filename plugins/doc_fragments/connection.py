# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  username:
    description:
      - User name for the registry.
      - Without O(username) and O(password), credentials come from the docker C(config.json)
        (see O(docker_config)), including C(credHelpers) and C(credsStore), as oras and cosign read them.
      - Registries that answer with a bearer challenge get a token for the scope they ask for
        (pull, then push); Basic challenges get these credentials directly.
      - Not used for C(oci:) references.
    type: str
  password:
    description:
      - Password or token for O(username). Never shown in any output.
    type: str
  docker_config:
    description:
      - Path of a docker C(config.json) to read credentials from.
      - Defaults to C($DOCKER_CONFIG/config.json), else C(~/.docker/config.json).
    type: path
  validate_certs:
    description:
      - Verify the registry's TLS certificate.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA that signed the registry's certificate.
    type: path
  plain_http:
    description:
      - Talk plain HTTP instead of HTTPS. Only for registries on loopback or in a trusted network.
      - Nothing switches to plain HTTP by itself, not even for C(localhost).
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for the registry to answer any one request.
    type: int
    default: 60
  retries:
    description:
      - How many times a request is tried again after a connection error, 408, 429 (honouring
        C(Retry-After)) or 5xx, with growing pauses in between.
    type: int
    default: 5
notes:
  - All options of this group can be set once for all modules of the collection with
    C(module_defaults) and the action group C(group/gardenlinux.onmetal.registry).
"""
