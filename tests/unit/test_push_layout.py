"""The push engine on an OCI image layout: plan, idempotency, check mode, diff, annotations, errors."""

import json
import os

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.info import describe
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target


@pytest.fixture
def release(tmp_path):
    files = {}
    for ext, size in (("raw", 300000), ("vmlinuz", 70000), ("initrd", 90000), ("os-release", 51)):
        path = tmp_path / ("kvm-amd64." + ext)
        path.write_bytes(os.urandom(size))
        files[ext] = str(path)
    return files


def params(release, **extra):
    value = dict(rootfs=release["raw"], kernel=release["vmlinuz"], initramfs=release["initrd"], command_line="root=LABEL=ROOT ro")
    value.update(extra)
    return value


def target(tmp_path, tag="1.0"):
    return open_target(parse("oci:%s:%s" % (tmp_path / "store", tag)))


def test_push_then_nothing_changes(tmp_path, release):
    first = push_image(target(tmp_path), params(release, tags=["latest"]))
    assert first["changed"] is True
    assert len(first["blobs_sent"]) == 4
    assert first["tags_written"] == ["1.0", "latest"]
    index_before = (tmp_path / "store" / "index.json").read_bytes()
    mtimes = {p: os.stat(p).st_mtime_ns for p in (tmp_path / "store").rglob("*")}

    again = target(tmp_path)
    second = push_image(again, params(release, tags=["latest"]))
    assert second["changed"] is False
    assert second["digest"] == first["digest"]
    assert second["blobs_sent"] == [] and second["bytes_sent"] == 0 and second["manifests_written"] == []
    assert (tmp_path / "store" / "index.json").read_bytes() == index_before
    assert {p: os.stat(p).st_mtime_ns for p in (tmp_path / "store").rglob("*")} == mtimes


def test_layout_is_an_oci_image_layout(tmp_path, release):
    result = push_image(target(tmp_path), params(release))
    store = tmp_path / "store"
    assert json.loads((store / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((store / "index.json").read_bytes())
    assert index["manifests"] == [{
        "mediaType": mt.OCI_MANIFEST, "digest": result["digest"],
        "size": (store / "blobs" / "sha256" / result["digest"][7:]).stat().st_size,
        "annotations": {mt.REF_NAME_ANNOTATION: "1.0"},
    }]
    for path in (store / "blobs" / "sha256").iterdir():
        assert oci.sha256_digest(path.read_bytes()) == "sha256:" + path.name
    assert not list(store.rglob(".tmp-*"))


def test_manifest_structure(tmp_path, release):
    result = push_image(target(tmp_path), params(release, config={"os-release": "974.0"}))
    manifest = result["manifest"]
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        mt.FLAVORS["onmetal"]["rootfs"], mt.FLAVORS["onmetal"]["initramfs"], mt.FLAVORS["onmetal"]["kernel"]]
    assert [layer["annotations"][mt.TITLE_ANNOTATION] for layer in manifest["layers"]] == [
        "kvm-amd64.raw", "kvm-amd64.initrd", "kvm-amd64.vmlinuz"]
    assert "annotations" not in manifest  # no created stamp unless asked
    assert manifest["config"]["mediaType"] == mt.FLAVORS["onmetal"]["config"]
    assert result["config"] == {"commandLine": "root=LABEL=ROOT ro", "os-release": "974.0"}


def test_ironcore_flavor(tmp_path, release):
    result = push_image(target(tmp_path), params(release, flavor="ironcore", squashfs=release["os-release"]))
    types = [layer["mediaType"] for layer in result["manifest"]["layers"]]
    assert types == ["application/vnd.ironcore.image.rootfs", "application/vnd.ironcore.image.initramfs",
                     "application/vnd.ironcore.image.kernel", "application/vnd.ironcore.image.squashfs"]
    assert result["manifest"]["config"]["mediaType"] == "application/vnd.ironcore.image.config.v1+json"
    info = describe(target(tmp_path))
    assert info["flavor"] == "ironcore"
    assert set(info["urls"]) == {"rootfs", "initramfs", "kernel", "squashfs"}


def test_annotation_file_and_options(tmp_path, release):
    annotation_file = tmp_path / "annotations.json"
    annotation_file.write_text(json.dumps({
        "$config": {"os-release": "981.0", "signature/src": "x"},
        "$manifest": {"signed-by": "author"},
        release["raw"]: {"role": "root"},
        "kvm-amd64.vmlinuz": {"role": "kernel"},
    }))
    result = push_image(target(tmp_path), params(
        release, annotation_file=str(annotation_file), annotations={"extra": "m"}, config_annotations={"os-release": "982.0"},
        created="2022-12-07T11:17:04Z"))
    manifest = result["manifest"]
    assert manifest["annotations"] == {"signed-by": "author", "extra": "m", mt.CREATED_ANNOTATION: "2022-12-07T11:17:04Z"}
    assert manifest["config"]["annotations"] == {"os-release": "982.0", "signature/src": "x"}
    assert manifest["layers"][0]["annotations"] == {"role": "root", mt.TITLE_ANNOTATION: "kvm-amd64.raw"}
    assert manifest["layers"][2]["annotations"] == {"role": "kernel", mt.TITLE_ANNOTATION: "kvm-amd64.vmlinuz"}


def test_created_from_epoch_and_digest_repeats(tmp_path, release):
    one = push_image(target(tmp_path, "a"), params(release, created="1669815082"))
    two = push_image(target(tmp_path, "b"), params(release, created="1669815082"))
    assert one["manifest"]["annotations"][mt.CREATED_ANNOTATION] == "2022-11-30T13:31:22Z"
    assert one["digest"] == two["digest"]
    assert two["blobs_sent"] == []


def test_extra_artifacts_warn(tmp_path, release):
    result = push_image(target(tmp_path), params(
        release, artifacts=[{"path": release["os-release"], "media_type": "application/vnd.gardenlinux.os.release"}]))
    assert result["manifest"]["layers"][3]["mediaType"] == "application/vnd.gardenlinux.os.release"
    assert len(result["warnings"]) == 1 and "ResolveImage" in result["warnings"][0]


def test_check_mode_writes_nothing_and_tells(tmp_path, release):
    result = push_image(target(tmp_path), params(release), check_mode=True, diff=True)
    assert result["changed"] is True
    assert len(result["blobs_sent"]) == 4
    assert result["tags_written"] == ["1.0"]
    assert not (tmp_path / "store").exists()
    assert "(absent)" in result["diff"]["before"]
    assert result["digest"] in result["diff"]["after"]
    real = push_image(target(tmp_path), params(release))
    assert real["digest"] == result["digest"]
    assert real["bytes_sent"] >= result["bytes_sent"]


def test_diff_shows_the_old_manifest(tmp_path, release):
    push_image(target(tmp_path), params(release))
    result = push_image(target(tmp_path), params(release, command_line="root=other"), diff=True)
    assert result["changed"] is True
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert before.split("\n")[0] != after.split("\n")[0]
    assert json.loads(before.split("\n", 1)[1])["layers"] == json.loads(after.split("\n", 1)[1])["layers"]


def test_ref_digest_must_match(tmp_path, release):
    with pytest.raises(OnmetalError, match="^ref: names sha256:"):
        push_image(open_target(parse("oci:%s:1@sha256:%s" % (tmp_path / "s", "0" * 64))), params(release))


@pytest.mark.parametrize(
    "change, option",
    [
        ({"kernel": None}, "kernel"),
        ({"rootfs": "/nonexistent/file"}, "rootfs"),
        ({"initramfs": "/"}, "initramfs"),
        ({"flavor": "windows"}, "flavor"),
        ({"squashfs": "x"}, "squashfs"),
        ({"artifacts": [{"path": None}]}, "artifacts[0].path"),
        ({"artifacts": [{"path": __file__, "media_type": "no type"}]}, "artifacts[0].media_type"),
        ({"config": ["x"]}, "config"),
        ({"annotations": {"a": {"b": 1}}}, "annotations"),
        ({"created": "yesterday"}, "created"),
        ({"tags": ["bad tag"]}, "tags"),
        ({"annotation_file": "/nonexistent.json"}, "annotation_file"),
    ],
)
def test_bad_input_one_line_naming_the_option(tmp_path, release, change, option):
    value = params(release)
    value.update(change)
    with pytest.raises(OnmetalError) as info:
        push_image(target(tmp_path), value)
    assert str(info.value).startswith(option + ": ")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "store").exists()


def test_broken_annotation_file(tmp_path, release):
    broken = tmp_path / "a.json"
    broken.write_text("{not json")
    with pytest.raises(OnmetalError, match="^annotation_file: .*not valid JSON"):
        push_image(target(tmp_path), params(release, annotation_file=str(broken)))


def test_info_reads_back(tmp_path, release):
    pushed = push_image(target(tmp_path), params(release))
    info = describe(target(tmp_path), query="layers[?role=='kernel'].digest | [0]")
    assert info["digest"] == pushed["digest"]
    assert info["command_line"] == "root=LABEL=ROOT ro"
    assert info["query_result"] == pushed["manifest"]["layers"][2]["digest"]
    assert info["urls"]["kernel"].startswith("file://")
    assert info["signatures"] == [] and info["referrers"] == []
