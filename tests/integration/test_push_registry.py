"""onmetal_push and onmetal_info against the real distribution registry: the seed's cases, replayed."""

import json
import os
import shutil
import subprocess

import pytest
import requests

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.info import describe
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target
from ansible_collections.gardenlinux.onmetal.tests.support.ansible import run_module

CNAME = "kvm_oras-amd64-today-aab1c350"
COMMAND_LINE = "root=LABEL=ROOT ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0"
O = mt.FLAVORS["onmetal"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    sizes = {"raw": 5 * 1024 * 1024 + 3, "vmlinuz": 300000, "initrd": 700000, "os-release": 510, "log": 108288, "manifest": 6802}
    for ext, size in sizes.items():
        (folder / ("%s.%s" % (CNAME, ext))).write_bytes(os.urandom(size))
    return folder


def files(release, *exts):
    return {ext: str(release / ("%s.%s" % (CNAME, ext))) for ext in exts}


def boot_args(release):
    f = files(release, "raw", "vmlinuz", "initrd")
    return {"rootfs": f["raw"], "kernel": f["vmlinuz"], "initramfs": f["initrd"], "command_line": COMMAND_LINE}


def plain(registry):
    return {"plain_http": True}


def get(registry, path):
    response = requests.get(registry.url + path, headers={"Accept": mt.OCI_MANIFEST}, timeout=30, **registry.requests_kwargs())
    response.raise_for_status()
    return response


def test_seed_a_boot_image_round_trip(registry, release):
    ref = parse("%s/oras-gardenlinux:v2" % registry.host)
    pushed = push_image(open_target(ref, plain(registry)), boot_args(release))
    raw = get(registry, "/v2/oras-gardenlinux/manifests/v2").content
    assert oci.sha256_digest(raw) == pushed["digest"]
    manifest = json.loads(raw)
    assert manifest["mediaType"] == mt.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == O["config"]
    assert [layer["mediaType"] for layer in manifest["layers"]] == [O["rootfs"], O["initramfs"], O["kernel"]]
    assert [layer["annotations"][mt.TITLE_ANNOTATION] for layer in manifest["layers"]] == [
        CNAME + ".raw", CNAME + ".initrd", CNAME + ".vmlinuz"]
    config = get(registry, "/v2/oras-gardenlinux/blobs/" + manifest["config"]["digest"]).content
    assert config == oci.go_json({"commandLine": COMMAND_LINE})
    for layer, ext in zip(manifest["layers"], ("raw", "initrd", "vmlinuz")):
        assert get(registry, "/v2/oras-gardenlinux/blobs/" + layer["digest"]).content == (release / ("%s.%s" % (CNAME, ext))).read_bytes()

    info = describe(open_target(ref, plain(registry)))
    assert info["digest"] == pushed["digest"]
    assert info["config"] == {"commandLine": COMMAND_LINE}
    assert info["command_line"] == COMMAND_LINE
    assert info["urls"] == {
        role: "http://%s/v2/oras-gardenlinux/blobs/%s" % (registry.host, layer["digest"])
        for role, layer in zip(("rootfs", "initramfs", "kernel"), manifest["layers"])
    }


def test_seed_b_extra_artifacts_as_layers(registry, release):
    extras = files(release, "os-release", "log", "manifest")
    args = dict(boot_args(release), artifacts=[
        {"path": extras["os-release"], "media_type": "application/vnd.gardenlinux.os.release"},
        {"path": extras["log"], "media_type": "application/vnd.gardenlinux.log"},
        {"path": extras["manifest"], "media_type": "application/vnd.gardenlinux.manifest"},
    ], config={"os-release": "974.0", "signature/crc": "Put valid content here", "manifest": "URL"})
    pushed = push_image(open_target(parse("%s/oras-gardenlinux:v4" % registry.host), plain(registry)), args)
    assert pushed["warnings"]
    manifest = json.loads(get(registry, "/v2/oras-gardenlinux/manifests/v4").content)
    assert [layer["mediaType"] for layer in manifest["layers"]][3:] == [
        "application/vnd.gardenlinux.os.release", "application/vnd.gardenlinux.log", "application/vnd.gardenlinux.manifest"]
    assert manifest["layers"][4]["annotations"] == {mt.TITLE_ANNOTATION: CNAME + ".log"}
    info = describe(open_target(parse("%s/oras-gardenlinux:v4" % registry.host), plain(registry)))
    assert info["config"]["os-release"] == "974.0"
    assert [layer["role"] for layer in info["layers"]] == ["rootfs", "initramfs", "kernel", None, None, None]
    # Blobs already there from case (a) were not sent again.
    assert set(pushed["blobs_skipped"]) >= {layer["digest"] for layer in manifest["layers"][:3]}


def test_seed_c_annotation_file(registry, release, tmp_path):
    annotation_file = tmp_path / "annotations.json"
    annotation_file.write_text(json.dumps({
        "$config": {"os-release": "981.0", "signature/src": "kjldaslkdjasdklsjada"},
        "$manifest": {"signed-by": "author"},
        CNAME + ".raw": {"part": "root"},
    }))
    args = dict(boot_args(release), annotation_file=str(annotation_file), created="2022-12-07T11:17:04Z")
    push_image(open_target(parse("%s/oras-gardenlinux:981.0" % registry.host), plain(registry)), args)
    manifest = json.loads(get(registry, "/v2/oras-gardenlinux/manifests/981.0").content)
    assert manifest["annotations"] == {mt.CREATED_ANNOTATION: "2022-12-07T11:17:04Z", "signed-by": "author"}
    assert manifest["config"]["annotations"] == {"os-release": "981.0", "signature/src": "kjldaslkdjasdklsjada"}
    assert manifest["layers"][0]["annotations"] == {"part": "root", mt.TITLE_ANNOTATION: CNAME + ".raw"}
    assert "annotations" not in json.loads(get(registry, "/v2/oras-gardenlinux/blobs/" + manifest["config"]["digest"]).content)


@pytest.mark.skipif(not shutil.which("skopeo") and not os.environ.get("CI"), reason="skopeo is not installed")
def test_seed_d_skopeo_reads_our_exact_bytes(registry, release):
    pushed = push_image(open_target(parse("%s/skopeo-check:1" % registry.host), plain(registry)), boot_args(release))
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://%s/skopeo-check:1" % registry.host],
        capture_output=True, check=True, timeout=60,
    ).stdout
    assert oci.sha256_digest(out) == pushed["digest"]
    assert out == get(registry, "/v2/skopeo-check/manifests/1").content


def test_seed_e_second_run_changes_nothing_and_writes_nothing(registry, release):
    args = dict(boot_args(release), ref="%s/idempotent:1" % registry.host, plain_http=True, tags=["latest"])
    first = run_module("onmetal_push", args)
    assert not first.failed, first.output
    assert first.result["changed"] is True
    mark = registry.mark()
    second = run_module("onmetal_push", args)
    assert not second.failed, second.output
    assert second.result["changed"] is False
    assert second.result["digest"] == first.result["digest"]
    assert second.result["bytes_sent"] == 0
    assert registry.writes_since(mark) == []
    check = run_module("onmetal_push", dict(args, command_line="root=changed"), check=True, diff=True)
    assert check.result["changed"] is True
    assert check.result["tags_written"] == ["1", "latest"]
    assert len(check.result["blobs_sent"]) == 1  # only the new config
    assert registry.writes_since(mark) == []


def test_info_module_with_query(registry, release):
    ref = "%s/info-check:1" % registry.host
    pushed = push_image(open_target(parse(ref), plain(registry)), boot_args(release))
    run = run_module("onmetal_info", {"ref": ref, "plain_http": True, "query": "urls.kernel"}, check=True)
    assert not run.failed, run.output
    assert run.result["changed"] is False
    assert run.result["digest"] == pushed["digest"]
    assert run.result["query_result"].endswith(pushed["manifest"]["layers"][2]["digest"])


def test_tls_registry_with_credentials(tls_registry, release):
    args = dict(boot_args(release), ref="%s/secure/kvm:1" % tls_registry.host, username=tls_registry.username,
                password=tls_registry.password, ca_path=tls_registry.ca_path)
    run = run_module("onmetal_push", args)
    assert not run.failed, run.output
    assert run.result["changed"] is True
    info = run_module("onmetal_info", {k: args[k] for k in ("ref", "username", "password", "ca_path")})
    assert info.result["digest"] == run.result["digest"]
    assert info.result["urls"]["kernel"].startswith("https://%s/v2/secure/kvm/blobs/" % tls_registry.host)


def _one_clear_line(run, option, secret=None):
    assert run.failed
    assert run.msg.startswith(option + ": ") or (" %s" % option) in run.msg, run.msg
    assert "\n" not in run.msg
    assert "Traceback" not in run.output
    if secret:
        assert secret not in run.output


def test_seed_f_wrong_password(tls_registry, release):
    wrong = "not-the-password-%s" % os.getpid()
    run = run_module("onmetal_push", dict(boot_args(release), ref="%s/secure/kvm:2" % tls_registry.host,
                                          username=tls_registry.username, password=wrong, ca_path=tls_registry.ca_path))
    _one_clear_line(run, "password", secret=wrong)


def test_seed_f_tls_without_ca(tls_registry, release):
    run = run_module("onmetal_push", dict(boot_args(release), ref="%s/secure/kvm:3" % tls_registry.host,
                                          username=tls_registry.username, password=tls_registry.password),
                     env={"REQUESTS_CA_BUNDLE": "", "SSL_CERT_FILE": ""})
    _one_clear_line(run, "ca_path", secret=tls_registry.password)
    assert "certificate" in run.msg


def test_seed_f_unreachable_registry(release):
    run = run_module("onmetal_push", dict(boot_args(release), ref="127.0.0.1:9/nowhere:1", plain_http=True, retries=1))
    _one_clear_line(run, "ref")
    assert "cannot reach 127.0.0.1:9" in run.msg


def test_seed_f_missing_file(registry, release):
    args = dict(boot_args(release), ref="%s/x:1" % registry.host, plain_http=True)
    args["kernel"] = str(release / "missing.vmlinuz")
    run = run_module("onmetal_push", args)
    _one_clear_line(run, "kernel")
    assert "missing.vmlinuz does not exist" in run.msg


def test_plain_http_registry_spoken_to_with_tls(registry, release):
    run = run_module("onmetal_push", dict(boot_args(release), ref="%s/x:1" % registry.host, retries=0))
    assert run.failed and "\n" not in run.msg and "Traceback" not in run.output
    assert "plain_http" in run.msg
