"""Interop with onmetal-image (the CLI, pinned in scripts/build-peers.sh) and its ResolveImage.

`onmetal-image pull`, `inspect` and `url` only copy and show content; none of them calls
`ResolveImage`, the function onmetal's boot consumers call. So the "does a consumer accept this
image" checks run the real ResolveImage of the pinned module (the `resolve_image` fixture).

onmetal-image treats localhost and 127.0.0.1 as plain HTTP registries (containerd's docker
resolver), so the registry fixture's 127.0.0.1:PORT works as it is; both spellings are tested.
"""

import json
import os

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.tests.interop.peertools import (
    CNAME, COMMAND_LINE, boot_args, release_file,
)

ONM = mt.FLAVORS["onmetal"]


def extras(release):
    return [{"path": release_file(release, ext), "media_type": mt.GARDENLINUX_EXTRAS[ext]}
            for ext in ("os-release", "log", "manifest")]


def check_onmetal_image_cli(peers, store, ref, pushed, info):
    """onmetal-image pull, inspect and url agree with what we pushed and what onmetal_info says."""
    out = peers.run("onmetal-image", "--store-path", store, "pull", ref).stdout
    assert out.split() == ["Successfully", "pulled", ref, pushed["digest"].split(":", 1)[1]]

    inspected = peers.json("onmetal-image", "--store-path", store, "inspect", ref)
    assert inspected["descriptor"]["digest"] == pushed["digest"]
    assert inspected["descriptor"]["mediaType"] == mt.OCI_MANIFEST
    assert inspected["descriptor"]["annotations"] == {mt.REF_NAME_ANNOTATION: ref}
    assert inspected["manifest"] == pushed["manifest"]
    assert inspected["config"] == {"commandLine": COMMAND_LINE}

    for role in ("kernel", "initramfs", "rootfs"):
        url = peers.json("onmetal-image", "--store-path", store, "url", "--layer", role, ref)
        assert url == {"url": info["urls"][role]}, role
        first = next(layer for layer in pushed["manifest"]["layers"] if layer["mediaType"] == ONM[role])
        assert url["url"].endswith("/blobs/" + first["digest"])
    manifest_url = peers.json("onmetal-image", "--store-path", store, "url", ref)
    host, rest = ref.split("/", 1)
    repo, tag = rest.rsplit(":", 1)
    assert manifest_url["url"] == "http://%s/v2/%s/manifests/%s" % (host, repo, tag)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_onmetal_image_pull_inspect_url_of_our_push(registry, release, peers, modules, tmp_path, host):
    ref = "%s:%d/interop-onmetal/boot-%s:1.0" % (host, registry.port, host.replace(".", "-"))
    pushed = modules.ok("onmetal_push", dict(boot_args(release), ref=ref, plain_http=True))
    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    assert info["urls"]["kernel"].startswith("http://%s:%d/" % (host, registry.port))
    check_onmetal_image_cli(peers, tmp_path / "store", ref, pushed, info)


def test_resolve_image_accepts_our_push(registry, release, modules, resolve_image):
    ref = "%s/interop-onmetal/resolve:1.0" % registry.host
    pushed = modules.ok("onmetal_push", dict(boot_args(release), ref=ref, plain_http=True))
    ok, resolved = resolve_image("onmetal", ref)
    assert ok, resolved
    by_role = {mt.role_of(layer["mediaType"])[1]: layer["digest"] for layer in pushed["manifest"]["layers"]}
    assert resolved == dict(by_role, commandLine=COMMAND_LINE)


def test_extra_layers_break_resolve_image_but_not_the_cli(registry, release, peers, modules, resolve_image, tmp_path):
    """Why the role publishes extras as a referrer: ResolveImage refuses any layer type it does not know."""
    ref = "%s/interop-onmetal/extras-as-layers:1.0" % registry.host
    run = modules("onmetal_push", dict(boot_args(release), ref=ref, plain_http=True, artifacts=extras(release)))
    assert not run.failed, run.output
    assert any("ResolveImage rejects unknown layer types" in warning for warning in run.result.get("warnings", [])), \
        run.result.get("warnings")

    ok, error = resolve_image("onmetal", ref)
    assert not ok
    assert error == 'error: unknown layer type "%s"' % mt.GARDENLINUX_EXTRAS["os-release"]

    # the CLI copies and shows it all the same (it never calls ResolveImage)
    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    check_onmetal_image_cli(peers, tmp_path / "store", ref, run.result, info)


def test_referrer_form_keeps_the_image_resolvable(registry, release, peers, modules, resolve_image, tmp_path):
    ref = "%s/interop-onmetal/extras-as-referrer:1.0" % registry.host
    pushed = modules.ok("onmetal_push", dict(boot_args(release), ref=ref, plain_http=True))
    attached = modules.ok("onmetal_attach", {"ref": ref, "plain_http": True, "files": [
        {"path": item["path"], "media_type": item["media_type"]} for item in extras(release)]})
    assert attached["subject"] == pushed["digest"]

    ok, resolved = resolve_image("onmetal", ref)
    assert ok, resolved
    assert resolved["commandLine"] == COMMAND_LINE
    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    assert info["digest"] == pushed["digest"]
    assert [r["digest"] for r in info["referrers"]] == [attached["digest"]]
    check_onmetal_image_cli(peers, tmp_path / "store", ref, pushed, info)

    # oras finds the referrer through the same sha256-<hex> tag fallback (distribution 2.8 has no referrers API)
    discovered = peers.json("oras", "discover", "--plain-http", "--format", "json", ref)
    assert discovered["digest"] == pushed["digest"]
    assert [(r["digest"], r["artifactType"]) for r in discovered["referrers"]] == [
        (attached["digest"], mt.GARDENLINUX_EXTRAS_ARTIFACT)]
    # and oras pull of the referrer gives the extras back, named by title
    out = tmp_path / "extras"
    peers.run("oras", "pull", "--plain-http", "-o", out, "%s@%s" % (ref.rsplit(":", 1)[0], attached["digest"]))
    assert sorted(os.listdir(out)) == sorted("%s.%s" % (CNAME, ext) for ext in ("os-release", "log", "manifest"))
    for name in os.listdir(out):
        assert (out / name).read_bytes() == (release / name).read_bytes()


def test_seed_oras_pushes_and_resolve_image(registry, release, peers, resolve_image, tmp_path):
    """The seed's plain oras push is a valid onmetal image; its push with extras is not."""
    config = tmp_path / "orasconfig.json"
    config.write_text(json.dumps({"commandLine": COMMAND_LINE}, indent="\t"), encoding="utf-8")
    boot = ["%s.raw:%s" % (CNAME, ONM["rootfs"]), "%s.vmlinuz:%s" % (CNAME, ONM["kernel"]),
            "%s.initrd:%s" % (CNAME, ONM["initramfs"])]
    extra = ["%s.os-release:%s" % (CNAME, mt.GARDENLINUX_EXTRAS["os-release"])]
    for tag, files in (("v2", boot), ("v4", boot + extra)):
        peers.run("oras", "push", "--plain-http", "%s/interop-onmetal/seed:%s" % (registry.host, tag), *files,
                  "--config", "%s:%s" % (config, ONM["config"]), cwd=release)
    ok, resolved = resolve_image("onmetal", "%s/interop-onmetal/seed:v2" % registry.host)
    assert ok, resolved
    assert resolved["commandLine"] == COMMAND_LINE
    assert resolved["kernel"] == oci.file_digest(release_file(release, "vmlinuz"))[0]
    ok, error = resolve_image("onmetal", "%s/interop-onmetal/seed:v4" % registry.host)
    assert (ok, error) == (False, 'error: unknown layer type "%s"' % mt.GARDENLINUX_EXTRAS["os-release"])


def test_we_read_what_onmetal_image_build_pushes(registry, release, peers, modules, tmp_path):
    ref = "%s/interop-onmetal/built-by-onmetal-image:1.0" % registry.host
    store = tmp_path / "store"
    built = peers.run("onmetal-image", "--store-path", store, "build",
                      "--rootfs-file", release_file(release, "raw"), "--kernel-file", release_file(release, "vmlinuz"),
                      "--initramfs-file", release_file(release, "initrd"), "--command-line", COMMAND_LINE,
                      "--tag", ref).stdout.split()[-1]
    peers.run("onmetal-image", "--store-path", store, "push", ref)

    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    assert info["digest"] == "sha256:" + built
    assert info["flavor"] == "onmetal"
    assert info["command_line"] == COMMAND_LINE
    assert [layer["role"] for layer in info["layers"]] == ["rootfs", "initramfs", "kernel"]
    for role, ext in (("rootfs", "raw"), ("initramfs", "initrd"), ("kernel", "vmlinuz")):
        digest = oci.file_digest(release_file(release, ext))[0]
        assert info["urls"][role] == "http://%s/v2/interop-onmetal/built-by-onmetal-image/blobs/%s" % (registry.host, digest)
    # its config blob is Go's json.Marshal of {commandLine}: the bytes we write for the same command line
    assert info["manifest"]["config"] == oci.bytes_descriptor(ONM["config"], oci.go_json({"commandLine": COMMAND_LINE}))

    dest = tmp_path / "pulled"
    pulled = modules.ok("onmetal_pull", {"ref": ref, "dest": str(dest), "plain_http": True})
    # no titles: files are named by role
    assert sorted(os.listdir(dest)) == ["initramfs", "kernel", "rootfs"]
    for role, ext in (("rootfs", "raw"), ("initramfs", "initrd"), ("kernel", "vmlinuz")):
        assert (dest / role).read_bytes() == (release / ("%s.%s" % (CNAME, ext))).read_bytes()
    assert pulled["digest"] == info["digest"]
