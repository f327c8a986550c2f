# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one media-type table of the collection (SPEC.md sections 1, 2 and 5)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
UNKNOWN_CONFIG = "application/vnd.unknown.config.v1+json"
UNKNOWN_ARTIFACT = "application/vnd.unknown.artifact.v1"

# What we ask a registry for when reading a manifest.
MANIFEST_ACCEPT = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)

# The empty descriptor of image-spec 1.1, as oras writes it.
EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"

TITLE_ANNOTATION = "org.opencontainers.image.title"
CREATED_ANNOTATION = "org.opencontainers.image.created"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

# Garden Linux build extras, as the seed's `oras push` names them.
GARDENLINUX_EXTRAS = {
    "os-release": "application/vnd.gardenlinux.os.release",
    "log": "application/vnd.gardenlinux.log",
    "manifest": "application/vnd.gardenlinux.manifest",
}
GARDENLINUX_EXTRAS_ARTIFACT = "application/vnd.gardenlinux.extras.v1"

# Layer roles in the order `onmetal-image build` writes them.
BOOT_ROLES = ("rootfs", "initramfs", "kernel")
IRONCORE_ONLY_ROLES = ("squashfs", "uki", "iso")

FLAVORS = {
    "onmetal": {
        "config": "application/vnd.onmetal.image.config.v1alpha1+json",
        "rootfs": "application/vnd.onmetal.image.rootfs.v1alpha1.rootfs",
        "initramfs": "application/vnd.onmetal.image.initramfs.v1alpha1.initramfs",
        "kernel": "application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz",
    },
    "ironcore": {
        "config": "application/vnd.ironcore.image.config.v1+json",
        "rootfs": "application/vnd.ironcore.image.rootfs",
        "initramfs": "application/vnd.ironcore.image.initramfs",
        "kernel": "application/vnd.ironcore.image.kernel",
        "squashfs": "application/vnd.ironcore.image.squashfs",
        "uki": "application/vnd.ironcore.image.uki",
        "iso": "application/vnd.ironcore.image.iso",
    },
}

# Names ironcore-image >= v0.2.6 still reads (its Legacy*MediaType); we read them, we never write them.
IRONCORE_LEGACY = {
    "config": "application/vnd.ironcore.image.config.v1alpha1+json",
    "rootfs": "application/vnd.ironcore.image.rootfs.v1alpha1.rootfs",
    "initramfs": "application/vnd.ironcore.image.initramfs.v1alpha1.initramfs",
    "kernel": "application/vnd.ironcore.image.vmlinuz.v1alpha1.vmlinuz",
    "squashfs": "application/vnd.ironcore.image.squashfs.v1alpha1.squashfs",
}


def role_of(media_type):
    """Map a layer or config media type to (flavor, role), or (None, None) when unknown."""
    for flavor, table in FLAVORS.items():
        for role, known in table.items():
            if known == media_type:
                return flavor, role
    for role, known in IRONCORE_LEGACY.items():
        if known == media_type:
            return "ironcore", role
    return None, None


def flavor_of_config(media_type):
    flavor, role = role_of(media_type)
    return flavor if role == "config" else None
