#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: onmetal_info
short_description: Read an onmetal or ironcore image - manifest, config, layer URLs, signatures
version_added: 0.1.0
description:
  - Reads a reference as C(onmetal-image inspect) and C(onmetal-image url) show it, and as
    C(oras manifest fetch) and C(oras manifest fetch-config) print it.
  - Works on what any tool pushed, including images with extra layers and annotations.
  - Every manifest and config read is checked against its digest; a registry that answers with other
    content fails the task.
  - Never changes anything.
author:
  - Garden Linux onmetal maintainers (@gardenlinux)
extends_documentation_fragment:
  - gardenlinux.onmetal.connection
attributes:
  check_mode:
    support: full
    description: Reads the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
options:
  ref:
    description:
      - What to read. V(registry.example.com[:port]/repository:tag), V(...@sha256:...), or
        V(oci:PATH:tag) for an OCI image layout folder.
    type: str
    required: true
  platform:
    description:
      - For a reference that names an index (C(ironcore-image build) writes one), the entry to read, as
        V(OS/ARCHITECTURE) (V(linux/amd64)). Without it, the first entry, as C(ironcore-image) picks it.
    type: str
  query:
    description:
      - A JMESPath expression over the result; its value is returned as RV(query_result).
    type: str
seealso:
  - module: gardenlinux.onmetal.onmetal_push
  - module: gardenlinux.onmetal.onmetal_pull
"""

EXAMPLES = r"""
- name: Inspect an image as onmetal-image inspect does
  gardenlinux.onmetal.onmetal_info:
    ref: registry.example.com/gardenlinux/kvm:1877.0
  register: image

- name: Show the kernel command line and the kernel's blob URL
  ansible.builtin.debug:
    msg: "{{ image.command_line }} {{ image.urls.kernel }}"

- name: Only the digests of the layers, by role
  gardenlinux.onmetal.onmetal_info:
    ref: oci:./store:1877.0
    query: "layers[?role].{role: role, digest: digest}"
  register: layers
"""

RETURN = r"""
ref:
  description: The reference read, with its digest.
  returned: success
  type: str
  sample: localhost:5000/gardenlinux@sha256:e2887cc93eaad65be23b5d9631342b904d46c4d2d8b9138bce384decda743ca5
digest:
  description: Digest of the manifest.
  returned: success
  type: str
  sample: sha256:e2887cc93eaad65be23b5d9631342b904d46c4d2d8b9138bce384decda743ca5
descriptor:
  description: Descriptor of the manifest, as C(onmetal-image inspect) shows it.
  returned: success
  type: dict
  sample:
    mediaType: application/vnd.oci.image.manifest.v1+json
    digest: sha256:e2887cc93eaad65be23b5d9631342b904d46c4d2d8b9138bce384decda743ca5
    size: 713
    annotations:
      org.opencontainers.image.ref.name: localhost:5000/gardenlinux:latest
manifest:
  description: The manifest, as C(oras manifest fetch) prints it.
  returned: success
  type: dict
manifest_digest:
  description: Digest of the manifest read; differs from RV(digest) when the reference names an index.
  returned: success
  type: str
index:
  description: The index the reference names, when it names one; else null.
  returned: success
  type: dict
config:
  description: The config blob as JSON, as C(oras manifest fetch-config) prints it; null when it is not JSON.
  returned: success
  type: dict
  sample: {"commandLine": "root=LABEL=ROOT ro console=ttyS0,115200"}
flavor:
  description: V(onmetal) or V(ironcore) from the config media type; null for other artifacts.
  returned: success
  type: str
command_line:
  description: The kernel command line of the config; empty when there is none.
  returned: success
  type: str
layers:
  description: Every layer with its role (rootfs, initramfs, kernel, squashfs, uki, iso, or null), title and blob URL.
  returned: success
  type: list
  elements: dict
  sample:
    - role: kernel
      media_type: application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz
      digest: sha256:046ff03c1918ef70f7526d4820b66ac04b06415a5f0d5153d5f08d1b45dc87ca
      size: 13230144
      title: kvm.vmlinuz
      annotations: {"org.opencontainers.image.title": "kvm.vmlinuz"}
      url: https://registry.example.com/v2/gardenlinux/kvm/blobs/sha256:046ff03c1918ef70f7526d4820b66ac04b06415a5f0d5153d5f08d1b45dc87ca
urls:
  description:
    - Each known role to the URL of its first layer, as C(onmetal-image url --layer ROLE) prints it.
    - For an OCI image layout the URLs are C(file://) paths of the blobs.
  returned: success
  type: dict
  sample:
    kernel: http://localhost:5000/v2/gardenlinux/blobs/sha256:046ff03c1918ef70f7526d4820b66ac04b06415a5f0d5153d5f08d1b45dc87ca
annotations:
  description: Annotations of the manifest.
  returned: success
  type: dict
signatures:
  description: The cosign signatures stored under the C(sha256-<hex>.sig) tag (not verified; see M(gardenlinux.onmetal.cosign_verify)).
  returned: success
  type: list
  elements: dict
referrers:
  description: Artifacts that name this image as their subject, found through the C(sha256-<hex>) tag.
  returned: success
  type: list
  elements: dict
query_result:
  description: The value of O(query) over this result.
  returned: when O(query) is set
  type: raw
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.common import CONNECTION_SPEC, connection_params, run
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.info import describe
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target


def main():
    argument_spec = dict(
        ref=dict(type="str", required=True),
        query=dict(type="str"),
        platform=dict(type="str"),
    )
    argument_spec.update(CONNECTION_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    def work():
        target = open_target(parse(module.params["ref"]), connection_params(module.params))
        result = describe(target, query=module.params["query"], platform=module.params["platform"])
        result["changed"] = False
        return result

    run(module, work, libraries=("oras", "requests", "jmespath"))


if __name__ == "__main__":
    main()
