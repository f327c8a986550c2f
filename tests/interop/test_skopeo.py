"""Interop with skopeo (Debian's, from PATH): an independent reader and copier of our images.

    skopeo --policy P copy --src-tls-verify=false  docker://127.0.0.1:PORT/repo:tag oci:DIR:tag
    skopeo --policy P copy --dest-tls-verify=false oci:DIR:tag docker://127.0.0.1:PORT/repo:tag
    skopeo inspect --raw --tls-verify=false docker://127.0.0.1:PORT/repo:tag

P is an insecureAcceptAnything policy of the test's own, so no machine policy.json is read.
Debian 12's skopeo has sigstore patched out: it is no signature verifier (SPEC.md section 5).
"""

import json

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.tests.interop.peertools import COMMAND_LINE, boot_args, release_file


@pytest.fixture
def skopeo(peers, tmp_path):
    """Run skopeo with a policy of the test's own."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}), encoding="utf-8")

    def run(*args, **kwargs):
        return peers.run("skopeo", "--policy", policy, *args, **kwargs)
    return run


def raw_digest(skopeo, ref):
    """sha256 of the manifest bytes skopeo reads from the registry."""
    raw = skopeo("inspect", "--raw", "--tls-verify=false", "docker://" + ref).stdout.encode("utf-8")
    return oci.sha256_digest(raw), raw


def layout_entry(folder, tag):
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    found = [m for m in index["manifests"] if (m.get("annotations") or {}).get(mt.REF_NAME_ANNOTATION) == tag]
    assert len(found) == 1, index
    return found[0]


def test_skopeo_copy_registry_to_layout_and_back_keeps_digest(registry, release, skopeo, modules, tmp_path):
    ref = "%s/interop-skopeo/ours:1.0" % registry.host
    pushed = modules.ok("onmetal_push", dict(boot_args(release), ref=ref, plain_http=True, artifacts=[
        {"path": release_file(release, "os-release"), "media_type": mt.GARDENLINUX_EXTRAS["os-release"]}]))
    assert raw_digest(skopeo, ref)[0] == pushed["digest"]

    layout = tmp_path / "layout"
    skopeo("copy", "--src-tls-verify=false", "docker://" + ref, "oci:%s:1.0" % layout)
    assert layout_entry(layout, "1.0")["digest"] == pushed["digest"]

    # our reader on skopeo's layout
    info = modules.ok("onmetal_info", {"ref": "oci:%s:1.0" % layout})
    assert info["digest"] == pushed["digest"]
    assert info["command_line"] == COMMAND_LINE
    assert [layer["role"] for layer in info["layers"]] == ["rootfs", "initramfs", "kernel", None]

    back = "%s/interop-skopeo/back:1.0" % registry.host
    skopeo("copy", "--dest-tls-verify=false", "oci:%s:1.0" % layout, "docker://" + back)
    digest, raw = raw_digest(skopeo, back)
    assert digest == pushed["digest"]
    assert json.loads(raw) == pushed["manifest"]
    assert modules.ok("onmetal_info", {"ref": back, "plain_http": True})["digest"] == pushed["digest"]


def test_skopeo_copy_of_our_layout_push_keeps_digest(registry, release, skopeo, modules, tmp_path):
    layout = tmp_path / "store"
    pushed = modules.ok("onmetal_push", dict(boot_args(release), ref="oci:%s:1.0" % layout, created="1700000000"))
    assert pushed["manifest"]["annotations"] == {mt.CREATED_ANNOTATION: "2023-11-14T22:13:20Z"}
    assert layout_entry(layout, "1.0")["digest"] == pushed["digest"]

    ref = "%s/interop-skopeo/from-layout:1.0" % registry.host
    skopeo("copy", "--dest-tls-verify=false", "oci:%s:1.0" % layout, "docker://" + ref)
    assert raw_digest(skopeo, ref)[0] == pushed["digest"]
    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    assert info["digest"] == pushed["digest"]
    assert info["command_line"] == COMMAND_LINE
    # the same inputs pushed straight to the registry give the same digest (deterministic)
    direct = modules.ok("onmetal_push", dict(boot_args(release), ref="%s/interop-skopeo/direct:1.0" % registry.host,
                                             plain_http=True, created="1700000000"))
    assert direct["digest"] == pushed["digest"]
