"""Interop with ironcore-image (the CLI, pinned in scripts/build-peers.sh) and its ResolveImage."""

import json
import os

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.tests.interop.peertools import (
    CNAME, COMMAND_LINE, boot_args, release_file,
)

IRC = mt.FLAVORS["ironcore"]
ALL_ROLES = ("rootfs", "initramfs", "kernel", "squashfs", "uki", "iso")

# The legacy names ironcore-image v0.5.0 still reads (image.go, Legacy*MediaType): note the
# kernel's is "vmlinuz", and there are none for uki and iso.
IRONCORE_LEGACY_READ = {
    "config": "application/vnd.ironcore.image.config.v1alpha1+json",
    "rootfs": "application/vnd.ironcore.image.rootfs.v1alpha1.rootfs",
    "initramfs": "application/vnd.ironcore.image.initramfs.v1alpha1.initramfs",
    "kernel": "application/vnd.ironcore.image.vmlinuz.v1alpha1.vmlinuz",
    "squashfs": "application/vnd.ironcore.image.squashfs.v1alpha1.squashfs",
}


def ironcore_args(release, tmp_path, roles=ALL_ROLES):
    """All six ironcore roles; squashfs/uki/iso are small files of their own."""
    args = dict(boot_args(release), flavor="ironcore")
    for role in ("squashfs", "uki", "iso"):
        if role in roles:
            path = tmp_path / ("%s.%s" % (CNAME, role))
            path.write_bytes(os.urandom(4096 + len(role)))
            args[role] = str(path)
    return args


def test_ironcore_image_pull_inspect_url_of_our_push(registry, release, peers, modules, resolve_image, tmp_path):
    ref = "%s/interop-ironcore/all-roles:1.0" % registry.host
    pushed = modules.ok("onmetal_push", dict(ironcore_args(release, tmp_path), ref=ref, plain_http=True))
    assert pushed["manifest"]["config"]["mediaType"] == IRC["config"]
    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    assert info["flavor"] == "ironcore"
    assert sorted(info["urls"]) == sorted(ALL_ROLES)

    store = tmp_path / "store"
    out = peers.run("ironcore-image", "--store-path", store, "pull", ref).stdout
    assert out.split() == ["Successfully", "pulled", ref, pushed["digest"].split(":", 1)[1]]
    inspected = peers.json("ironcore-image", "--store-path", store, "inspect", ref)
    assert inspected["descriptor"]["digest"] == pushed["digest"]
    assert inspected["manifest"] == pushed["manifest"]
    assert inspected["config"] == {"commandLine": COMMAND_LINE}
    for role in ALL_ROLES:
        url = peers.json("ironcore-image", "--store-path", store, "url", "--layer", role, ref)
        assert url == {"url": info["urls"][role]}, role

    ok, resolved = resolve_image("ironcore", ref)
    assert ok, resolved
    by_role = {mt.role_of(layer["mediaType"])[1]: layer["digest"] for layer in pushed["manifest"]["layers"]}
    assert resolved == dict(by_role, commandLine=COMMAND_LINE)


def test_one_manifest_serves_one_flavor(registry, release, modules, resolve_image, tmp_path):
    onmetal = "%s/interop-ironcore/flavor-onmetal:1.0" % registry.host
    ironcore = "%s/interop-ironcore/flavor-ironcore:1.0" % registry.host
    modules.ok("onmetal_push", dict(boot_args(release), ref=onmetal, plain_http=True))
    modules.ok("onmetal_push", dict(ironcore_args(release, tmp_path, roles=()), ref=ironcore, plain_http=True))
    assert resolve_image("onmetal", onmetal)[0] is True
    assert resolve_image("ironcore", ironcore)[0] is True
    assert resolve_image("ironcore", onmetal) == (False, 'error: unknown layer type "%s"' % mt.FLAVORS["onmetal"]["rootfs"])
    assert resolve_image("onmetal", ironcore) == (False, 'error: unknown layer type "%s"' % IRC["rootfs"])


def test_we_read_what_ironcore_image_build_pushes(registry, release, peers, modules, tmp_path):
    """ironcore-image >= v0.3 builds a multi-arch OCI index (one manifest per --config arch=...).

    ironcore-image pull/inspect and ResolveImage follow the index to the first (or the matching
    platform's) manifest; onmetal_info and onmetal_pull must too, or they show an image with no
    layers (and onmetal_pull writes nothing and reports success).
    """
    ref = "%s/interop-ironcore/built-by-ironcore-image:1.0" % registry.host
    store = tmp_path / "store"
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(COMMAND_LINE, encoding="utf-8")
    peers.run("ironcore-image", "--store-path", store, "build", "--tag", ref, "--config",
              "arch=amd64,rootfs=%s,initramfs=%s,kernel=%s,cmdline=%s" % (
                  release_file(release, "raw"), release_file(release, "initrd"), release_file(release, "vmlinuz"), cmdline))
    peers.run("ironcore-image", "--store-path", store, "push", ref)
    pulled = peers.run("ironcore-image", "--store-path", tmp_path / "store2", "pull", ref).stdout.split()[-1]

    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    # the tag names an index; ironcore-image pulled its amd64 image manifest
    assert info["descriptor"]["mediaType"] == mt.OCI_INDEX or info["digest"] == "sha256:" + pulled
    assert info["flavor"] == "ironcore", "onmetal_info does not follow the index to its image manifest"
    assert info["command_line"] == COMMAND_LINE
    assert [(layer["role"], layer["digest"]) for layer in info["layers"]] == [
        (role, oci.file_digest(release_file(release, ext))[0])
        for role, ext in (("rootfs", "raw"), ("initramfs", "initrd"), ("kernel", "vmlinuz"))]

    dest = tmp_path / "pulled"
    result = modules.ok("onmetal_pull", {"ref": ref, "dest": str(dest), "plain_http": True})
    assert sorted(entry["role"] for entry in result["files"]) == ["initramfs", "kernel", "rootfs"]
    assert (dest / "kernel").read_bytes() == (release / ("%s.vmlinuz" % CNAME)).read_bytes()


def test_we_read_ironcore_legacy_media_types(registry, release, peers, modules, resolve_image, tmp_path):
    """Images with the legacy names ironcore-image still reads (pushed here with oras, as old builds did)."""
    ref = "%s/interop-ironcore/legacy:1.0" % registry.host
    config = tmp_path / "config.json"
    config.write_bytes(oci.go_json({"commandLine": COMMAND_LINE}))
    files = ["%s.%s:%s" % (CNAME, ext, IRONCORE_LEGACY_READ[role])
             for role, ext in (("rootfs", "raw"), ("initramfs", "initrd"), ("kernel", "vmlinuz"))]
    peers.run("oras", "push", "--plain-http", ref, *files,
              "--config", "%s:%s" % (config, IRONCORE_LEGACY_READ["config"]), cwd=release)
    ok, resolved = resolve_image("ironcore", ref)
    assert ok, resolved  # ironcore-image's own ResolveImage reads these names
    assert set(resolved) == {"commandLine", "rootfs", "initramfs", "kernel"}
    assert peers.json("ironcore-image", "--store-path", tmp_path / "s", "url", "--layer", "kernel", ref)["url"].endswith(
        resolved["kernel"])

    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    assert info["flavor"] == "ironcore"
    assert info["command_line"] == COMMAND_LINE
    assert [layer["role"] for layer in info["layers"]] == ["rootfs", "initramfs", "kernel"], \
        "roles of %s" % json.dumps([layer["media_type"] for layer in info["layers"]])
    assert info["urls"]["kernel"].endswith(resolved["kernel"])
