"""The role gardenlinux.onmetal.publish and the publish playbook, as release engineers run them."""

import os
import subprocess
import sys

import pytest

from ansible_collections.gardenlinux.onmetal.tests.support.ansible import REPO_ROOT, run_module, run_playbook

PASSWORD = "role-test-key-password"


def make_release(folder, cname, version, rootfs_mib=1):
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "sample_release.py"), str(folder), "--cname", cname,
                    "--version", version, "--rootfs-mib", str(rootfs_mib), "--initrd-mib", "0.5", "--kernel-mib", "0.25"],
                   check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    run = run_module("cosign_keypair", {"private_key": str(folder / "cosign.key"), "password": PASSWORD})
    assert not run.failed, run.output
    return folder / "cosign.key", folder / "cosign.pub"


def publish_vars(**extra):
    value = {"publish_key_password": PASSWORD}
    value.update(extra)
    return value


def changed_tasks(run):
    return [name for name, status, result in run.result["tasks"] if result.get("changed")]


def test_registry_publish_signed_then_nothing_changes(registry, tmp_path, keys):
    release = make_release(tmp_path / "kvm", "kvm-gardener_prod-amd64-1877.0-aaaa0001", "1877.0")
    extra = publish_vars(publish_release_dir=str(release), publish_target="%s/gardenlinux/kvm" % registry.host,
                         publish_plain_http=True, publish_private_key=str(keys[0]), publish_public_key=str(keys[1]),
                         publish_tags=["latest"])
    first = run_playbook("playbooks/publish.yml", extra)
    assert first.rc == 0, first.output
    assert first.result["stats"]["changed"] >= 3
    summary = [task[2] for task in first.result["tasks"] if task[0] == "Summary"][0]
    assert "signed and verified" in summary["results"][0]["msg"]

    mark = registry.mark()
    second = run_playbook("playbooks/publish.yml", extra)
    assert second.rc == 0, second.output
    assert second.result["stats"]["changed"] == 0, changed_tasks(second)
    assert registry.writes_since(mark) == []
    assert "changed=0" in second.stdout

    info = run_module("onmetal_info", {"ref": "%s/gardenlinux/kvm:1877.0" % registry.host, "plain_http": True})
    assert info.result["command_line"].startswith("root=LABEL=ROOT")
    assert [layer["role"] for layer in info.result["layers"]] == ["rootfs", "initramfs", "kernel"]
    assert len(info.result["signatures"]) == 1
    assert len(info.result["referrers"]) == 1
    assert info.result["referrers"][0]["artifactType"] == "application/vnd.gardenlinux.extras.v1"
    latest = run_module("onmetal_info", {"ref": "%s/gardenlinux/kvm:latest" % registry.host, "plain_http": True})
    assert latest.result["digest"] == info.result["digest"]


def test_check_mode_writes_nothing_and_says_what_would_change(registry, tmp_path):
    release = make_release(tmp_path / "kvm", "kvm-amd64-1877.1-check0001", "1877.1")
    extra = {"publish_release_dir": str(release), "publish_target": "%s/gardenlinux/check" % registry.host,
             "publish_plain_http": True}
    mark = registry.mark()
    run = run_playbook("playbooks/publish.yml", extra, check=True)
    assert run.rc == 0, run.output
    assert registry.writes_since(mark) == []
    push = [task[2] for task in run.result["tasks"] if task[0].endswith("Push the image")][0]
    assert push["changed"] is True and len(push["blobs_sent"]) == 4 and push["tags_written"] == ["1877.1"]


def test_oci_layout_several_releases_extras_both_ways(tmp_path, keys):
    kvm = make_release(tmp_path / "kvm", "kvm-amd64-1877.0-multi0001", "1877.0")
    metal = make_release(tmp_path / "metal", "metal-amd64-1877.0-multi0002", "1877.0")
    store = tmp_path / "store"
    extra = publish_vars(publish_private_key=str(keys[0]), publish_public_key=str(keys[1]), publish_releases=[
        {"release_dir": str(kvm), "target": "oci:%s/kvm" % store, "extras": "referrer"},
        {"release_dir": str(metal), "target": "oci:%s/metal" % store, "extras": "layers", "flavor": "ironcore"},
    ])
    run = run_playbook("playbooks/publish.yml", extra)
    assert run.rc == 0, run.output
    kvm_info = run_module("onmetal_info", {"ref": "oci:%s/kvm:1877.0" % store})
    metal_info = run_module("onmetal_info", {"ref": "oci:%s/metal:1877.0" % store})
    assert [layer["role"] for layer in kvm_info.result["layers"]] == ["rootfs", "initramfs", "kernel"]
    assert [layer["title"] for layer in kvm_info.result["layers"]] == [
        "kvm-amd64-1877.0-multi0001.raw", "kvm-amd64-1877.0-multi0001.initrd", "kvm-amd64-1877.0-multi0001.vmlinuz"]
    assert len(kvm_info.result["referrers"]) == 1
    assert metal_info.result["flavor"] == "ironcore"
    assert [layer["media_type"] for layer in metal_info.result["layers"]][3:] == [
        "application/vnd.gardenlinux.os.release", "application/vnd.gardenlinux.log", "application/vnd.gardenlinux.manifest"]
    assert metal_info.result["referrers"] == []
    assert len(metal_info.result["signatures"]) == 1
    again = run_playbook("playbooks/publish.yml", extra)
    assert again.result["stats"]["changed"] == 0, changed_tasks(again)

    # The extras of the referrer come back with onmetal_pull, byte for byte.
    referrer = kvm_info.result["referrers"][0]["digest"]
    pulled = run_module("onmetal_pull", {"ref": "oci:%s/kvm@%s" % (store, referrer), "dest": str(tmp_path / "extras")})
    assert not pulled.failed, pulled.output
    assert (tmp_path / "extras" / "kvm-amd64-1877.0-multi0001.os-release").read_bytes() == (
        kvm / "kvm-amd64-1877.0-multi0001.os-release").read_bytes()


def test_default_target_is_the_working_folder_layout(tmp_path):
    release = make_release(tmp_path / "kvm", "kvm-amd64-1877.2-default01", "1877.2")
    work = tmp_path / "work"
    work.mkdir()
    run = run_playbook(str(REPO_ROOT / "playbooks" / "publish.yml"), {"publish_release_dir": str(release)},
                       env={"PWD": str(work)})
    assert run.rc == 0, run.output
    assert (work / ".build" / "oci" / "index.json").is_file()
    assert "1877.2" in (work / ".build" / "oci" / "index.json").read_text()


def test_release_without_kernel_names_the_missing_file(tmp_path):
    release = make_release(tmp_path / "kvm", "kvm-amd64-1877.3-nokernel", "1877.3")
    os.unlink(release / "kvm-amd64-1877.3-nokernel.vmlinuz")
    run = run_playbook("playbooks/publish.yml", {"publish_release_dir": str(release), "publish_target": "oci:%s/s" % tmp_path})
    assert run.rc != 0
    failed = [task[2] for task in run.result["tasks"] if task[1] == "failed"]
    assert len(failed) == 1
    assert failed[0]["msg"] == "publish_release_dir: the kernel kvm-amd64-1877.3-nokernel.vmlinuz is missing from %s" % release
    assert "Traceback" not in run.output
    assert not (tmp_path / "s").exists()
