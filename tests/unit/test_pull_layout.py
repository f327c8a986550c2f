"""onmetal_pull's engine on an OCI layout: selection, skip when present, no partial file on a bad blob."""

import os

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import DigestMismatch, OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.pull import pull
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target


@pytest.fixture
def image(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for ext in ("raw", "vmlinuz", "initrd", "manifest"):
        (src / ("kvm." + ext)).write_bytes(os.urandom(50000))
    ref = "oci:%s:1" % (tmp_path / "store")
    pushed = push_image(open_target(parse(ref)), {
        "rootfs": str(src / "kvm.raw"), "kernel": str(src / "kvm.vmlinuz"), "initramfs": str(src / "kvm.initrd"),
        "artifacts": [{"path": str(src / "kvm.manifest"), "media_type": "application/vnd.gardenlinux.manifest"}]})
    return ref, src, pushed


def test_pull_by_role_and_media_type_then_no_change(tmp_path, image):
    ref, src, pushed = image
    dest = tmp_path / "out"
    first = pull(open_target(parse(ref)), str(dest), ["kernel", "application/vnd.gardenlinux.manifest"])
    assert first["changed"] is True
    assert sorted(os.listdir(dest)) == ["kvm.manifest", "kvm.vmlinuz"]
    assert (dest / "kvm.vmlinuz").read_bytes() == (src / "kvm.vmlinuz").read_bytes()
    assert first["bytes_received"] == 100000
    second = pull(open_target(parse(ref)), str(dest), ["kernel", "application/vnd.gardenlinux.manifest"])
    assert second["changed"] is False and second["bytes_received"] == 0


def test_check_mode_writes_nothing(tmp_path, image):
    ref = image[0]
    result = pull(open_target(parse(ref)), str(tmp_path / "out"), check_mode=True)
    assert result["changed"] is True and len(result["files"]) == 4
    assert not (tmp_path / "out").exists()


def test_unknown_layer_names_the_option(tmp_path, image):
    with pytest.raises(OnmetalError, match="^layers: the image has no 'uki' layer"):
        pull(open_target(parse(image[0])), str(tmp_path / "out"), ["uki"])


def test_altered_blob_fails_and_leaves_no_partial_file(tmp_path, image):
    ref, pushed = image[0], image[2]
    kernel = pushed["manifest"]["layers"][2]["digest"]
    blob = tmp_path / "store" / "blobs" / "sha256" / kernel[7:]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    dest = tmp_path / "out"
    with pytest.raises(DigestMismatch):
        pull(open_target(parse(ref)), str(dest), ["kernel"])
    assert os.listdir(dest) == []


def test_existing_file_with_other_content_is_replaced(tmp_path, image):
    ref, src = image[0], image[1]
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "kvm.initrd").write_bytes(b"old")
    result = pull(open_target(parse(ref)), str(dest), ["initramfs"])
    assert result["changed"] is True
    assert (dest / "kvm.initrd").read_bytes() == (src / "kvm.initrd").read_bytes()
