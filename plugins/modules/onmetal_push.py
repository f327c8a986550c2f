#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: onmetal_push
short_description: Push a built OS image as an onmetal or ironcore OCI image
version_added: 0.1.0
description:
  - Turns a rootfs, a kernel and an initramfs (and, for ironcore, squashfs, UKI or ISO) into an OCI
    image that C(onmetal-image) or C(ironcore-image) read, with the kernel command line in its config,
    and pushes it to a registry or an OCI image layout folder the way C(oras push) would.
  - The manifest is deterministic, so the same inputs always give the same digest. No
    C(org.opencontainers.image.created) annotation is added unless O(created) is set.
  - Idempotent by digest. When every tag already holds the computed digest nothing is sent and
    nothing is written. Blobs the target already has are not sent again (one exception below).
  - Blobs go first, the manifest next, further tags last, so no tag ever points at missing content.
  - Each file is read twice, streamed, so memory stays flat. When every tag exists the files are
    hashed first; when a tag is to be written a second thread hashes while each missing blob is
    uploaded as soon as its digest is known.
  - In a registry repository that has no tag yet and not the image's config, a file of 64 MiB or
    more starts uploading before its digest is known; if the repository turns out to hold that
    blob, at most a quarter of the file was sent and the upload is cancelled.
author:
  - Garden Linux onmetal maintainers (@gardenlinux)
extends_documentation_fragment:
  - gardenlinux.onmetal.connection
attributes:
  check_mode:
    support: full
    description: Says which blobs and tags would be written, and the digest, without writing.
  diff_mode:
    support: full
    description: Shows the digest of each tag and the manifest, before and after.
options:
  ref:
    description:
      - Where to push. V(registry.example.com[:port]/repository:tag) for a registry, or
        V(oci:PATH:tag) for an OCI image layout folder (created when missing).
      - A digest (V(@sha256:...)) may be added; the push then fails unless the inputs make exactly that digest.
    type: str
    required: true
  rootfs:
    description: Root file system image (a Garden Linux build's C(<cname>.raw)).
    type: path
  initramfs:
    description: Initramfs (a Garden Linux build's C(<cname>.initrd)).
    type: path
  kernel:
    description: Kernel (a Garden Linux build's C(<cname>.vmlinuz)).
    type: path
  squashfs:
    description: Squashfs root file system; O(flavor=ironcore) only.
    type: path
  uki:
    description: Unified kernel image; O(flavor=ironcore) only.
    type: path
  iso:
    description: ISO image; O(flavor=ironcore) only.
    type: path
  command_line:
    description:
      - Kernel command line, stored as C(commandLine) in the image config. Omitted when empty,
        as C(onmetal-image build) does.
    type: str
    default: ''
  config:
    description:
      - Further fields of the image config beside C(commandLine), such as C(os-release).
        The consumers read only C(commandLine) and ignore the rest.
    type: dict
  flavor:
    description:
      - V(onmetal) writes the C(application/vnd.onmetal.image.*) media types that all C(onmetal-image)
        versions read, and needs O(rootfs), O(initramfs) and O(kernel).
      - V(ironcore) writes C(application/vnd.ironcore.image.*), read by C(ironcore-image) 0.2.5 and newer.
      - Neither reads the other's types, so one image serves one flavor.
    type: str
    choices: [onmetal, ironcore]
    default: onmetal
  artifacts:
    description:
      - Extra files pushed as further layers, each with its own media type, as the C(oras push) of the
        Garden Linux feature does with os-release, build log and package manifest.
      - onmetal's and ironcore's C(ResolveImage) reject layers of unknown types, so boot consumers fail on
        such an image; the module warns. The role C(gardenlinux.onmetal.publish) can publish extras as a
        separate referrer artifact instead.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file.
        type: path
        required: true
      media_type:
        description: Its media type, for example C(application/vnd.gardenlinux.os.release).
        type: str
        required: true
      annotations:
        description: Annotations of this layer, beside the title.
        type: dict
  annotations:
    description: Annotations of the manifest.
    type: dict
  config_annotations:
    description: Annotations of the config descriptor.
    type: dict
  annotation_file:
    description:
      - 'A JSON file in the format of C(oras push --annotation-file) -
        C({"$manifest": {...}, "$config": {...}, "<file as given>": {...}}).'
      - Per-file entries match a file as given in the options or by its name.
        O(annotations) and O(config_annotations) win over the file.
    type: path
  created:
    description:
      - Value of the C(org.opencontainers.image.created) annotation, RFC 3339
        (V(2022-11-30T13:31:22Z)), or seconds since the epoch as in C(SOURCE_DATE_EPOCH).
      - Unset by default, so the same inputs always give the same digest.
    type: str
  tags:
    description: Further tags for the same manifest, written after the tag of O(ref).
    type: list
    elements: str
    default: []
notes:
  - Each layer gets the annotation C(org.opencontainers.image.title) with the file's name, as C(oras push) writes it.
  - Layers are written in the order rootfs, initramfs, kernel (as C(onmetal-image build) does), then
    squashfs, uki, iso, then O(artifacts) as given.
  - The config is compact JSON with keys sorted, as Go writes it; with only a command line it is
    byte for byte what C(onmetal-image build) writes.
seealso:
  - module: gardenlinux.onmetal.onmetal_info
  - module: gardenlinux.onmetal.onmetal_pull
"""

EXAMPLES = r"""
- name: Push a Garden Linux build as an onmetal image
  gardenlinux.onmetal.onmetal_push:
    ref: registry.example.com/gardenlinux/kvm:1877.0
    rootfs: out/kvm-amd64.raw
    kernel: out/kvm-amd64.vmlinuz
    initramfs: out/kvm-amd64.initrd
    command_line: root=LABEL=ROOT ro console=ttyS0,115200
    config:
      os-release: "1877.0"
    tags: [latest]
  register: pushed

- name: The same into an OCI image layout folder, no registry needed
  gardenlinux.onmetal.onmetal_push:
    ref: oci:./store:1877.0
    rootfs: out/kvm-amd64.raw
    kernel: out/kvm-amd64.vmlinuz
    initramfs: out/kvm-amd64.initrd
    command_line: root=LABEL=ROOT ro console=ttyS0,115200

- name: As the Garden Linux oras feature does, extras as layers and an annotation file
  gardenlinux.onmetal.onmetal_push:
    ref: localhost:5000/oras-gardenlinux:981.0
    plain_http: true
    rootfs: kvm_oras-amd64-today-aab1c350.raw
    kernel: kvm_oras-amd64-today-aab1c350.vmlinuz
    initramfs: kvm_oras-amd64-today-aab1c350.initrd
    command_line: root=LABEL=ROOT ro console=tty0 console=ttyS0,115200
    artifacts:
      - path: kvm_oras-amd64-today-aab1c350.os-release
        media_type: application/vnd.gardenlinux.os.release
      - path: kvm_oras-amd64-today-aab1c350.log
        media_type: application/vnd.gardenlinux.log
    annotation_file: annotations.json

- name: An ironcore image with a squashfs, credentials shared by every module of the collection
  module_defaults:
    group/gardenlinux.onmetal.registry:
      username: robot
      password: "{{ vault_registry_token }}"
      ca_path: /etc/ssl/registry-ca.pem
  gardenlinux.onmetal.onmetal_push:
    ref: registry.example.com/ironcore/kvm:1877.0
    flavor: ironcore
    kernel: out/kvm-amd64.vmlinuz
    initramfs: out/kvm-amd64.initrd
    squashfs: out/kvm-amd64.squashfs
    created: "{{ lookup('env', 'SOURCE_DATE_EPOCH') }}"
"""

RETURN = r"""
digest:
  description: Digest of the manifest, known before anything was sent.
  returned: success
  type: str
  sample: sha256:d3d8d1bbc4dbe8a9e74276fb5de439a82e4d18aa3491c2ec8229c5328716f061
ref:
  description: The pushed reference with its tag and digest.
  returned: success
  type: str
  sample: registry.example.com/gardenlinux/kvm:1877.0@sha256:d3d8d1bbc4dbe8a9e74276fb5de439a82e4d18aa3491c2ec8229c5328716f061
tags:
  description: Every tag that names the manifest now (or would, in check mode).
  returned: success
  type: list
  elements: str
  sample: [1877.0, latest]
flavor:
  description: The flavor written.
  returned: success
  type: str
  sample: onmetal
manifest:
  description: The manifest, as stored.
  returned: success
  type: dict
config:
  description: The image config, as stored (C(commandLine) and any O(config) fields).
  returned: success
  type: dict
  sample: {"commandLine": "root=LABEL=ROOT ro console=ttyS0,115200"}
blobs_sent:
  description: Digests of the blobs written (in check mode, those that would be).
  returned: success
  type: list
  elements: str
blobs_skipped:
  description: Digests of the blobs the target already had.
  returned: success
  type: list
  elements: str
bytes_sent:
  description: Bytes of blobs and manifests written (in check mode, the blob bytes that would be).
  returned: success
  type: int
  sample: 761993600
manifests_written:
  description: Digests of the manifests written.
  returned: success
  type: list
  elements: str
tags_written:
  description: Tags written (in check mode, those that would be).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.common import CONNECTION_SPEC, connection_params, run
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target


def main():
    argument_spec = dict(
        ref=dict(type="str", required=True),
        rootfs=dict(type="path"),
        initramfs=dict(type="path"),
        kernel=dict(type="path"),
        squashfs=dict(type="path"),
        uki=dict(type="path"),
        iso=dict(type="path"),
        command_line=dict(type="str", default=""),
        config=dict(type="dict"),
        flavor=dict(type="str", choices=["onmetal", "ironcore"], default="onmetal"),
        artifacts=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                path=dict(type="path", required=True),
                media_type=dict(type="str", required=True),
                annotations=dict(type="dict"),
            ),
        ),
        annotations=dict(type="dict"),
        config_annotations=dict(type="dict"),
        annotation_file=dict(type="path"),
        created=dict(type="str"),
        tags=dict(type="list", elements="str", default=[]),
    )
    argument_spec.update(CONNECTION_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    def work():
        target = open_target(parse(module.params["ref"]), connection_params(module.params))
        return push_image(target, module.params, check_mode=module.check_mode, diff=module._diff)

    run(module, work)


if __name__ == "__main__":
    main()
