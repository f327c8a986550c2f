"""Bad input over every module and the role: each fails with one line naming the option, no traceback,
nothing written."""

import os
import subprocess
import sys

import pytest

from ansible_collections.gardenlinux.onmetal.tests.support.ansible import REPO_ROOT, run_module, run_playbook

PASSWORD = "bad-input-key-password"


@pytest.fixture(scope="module")
def world(tmp_path_factory, registry, tls_registry):
    """A release, a pushed image (layout and registry), a key pair, and the odd files the cases need."""
    base = tmp_path_factory.mktemp("bad")
    release = base / "release"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "sample_release.py"), str(release), "--cname", "kvm",
                    "--version", "1.0", "--rootfs-mib", "0.5", "--initrd-mib", "0.1", "--kernel-mib", "0.1"],
                   check=True, capture_output=True)
    keys = base / "keys"
    assert not run_module("cosign_keypair", {"private_key": str(keys / "cosign.key"), "password": PASSWORD}).failed
    files = {"rootfs": str(release / "kvm.raw"), "kernel": str(release / "kvm.vmlinuz"),
             "initramfs": str(release / "kvm.initrd")}
    store = base / "store"
    assert not run_module("onmetal_push", dict(files, ref="oci:%s:1.0" % store)).failed
    (base / "broken.json").write_text("{not json")
    (base / "list.json").write_text("[1, 2]")
    (base / "empty-folder").mkdir()
    return {"base": base, "files": files, "store": store, "keys": keys, "registry": registry, "tls": tls_registry,
            "release": release}


def push(w, **change):
    args = dict(w["files"], ref="oci:%s:2.0" % (w["base"] / "out"))
    args.update(change)
    return args


def public(w):
    return str(w["keys"] / "cosign.pub")


def private(w):
    return str(w["keys"] / "cosign.key")


SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "testvectors", "cosign", "keys")

# (case id, module, args builder, option named, text the message contains)
CASES = [
    ("missing rootfs", "onmetal_push", lambda w: push(w, rootfs=str(w["base"] / "nope.raw")), "rootfs", "does not exist"),
    ("artifact that is a folder", "onmetal_push",
     lambda w: push(w, artifacts=[{"path": str(w["base"] / "empty-folder"), "media_type": "a/b"}]), "artifacts[0].path", "folder"),
    ("folder as initramfs", "onmetal_push", lambda w: push(w, initramfs=str(w["base"] / "empty-folder")), "initramfs", "folder"),
    ("no kernel at all", "onmetal_push", lambda w: {k: v for k, v in push(w).items() if k != "kernel"}, "kernel", "needs"),
    ("reference without registry", "onmetal_push", lambda w: push(w, ref="gardenlinux/kvm:1"), "ref", "names no registry"),
    ("reference with scheme", "onmetal_push", lambda w: push(w, ref="https://r.example/kvm:1"), "ref", "scheme"),
    ("upper-case repository", "onmetal_push", lambda w: push(w, ref="r.example/KVM:1"), "ref", "repository"),
    ("invalid tag in ref", "onmetal_push", lambda w: push(w, ref="r.example/kvm:-1"), "ref", "not a valid tag"),
    ("invalid extra tag", "onmetal_push", lambda w: push(w, tags=["has space"]), "tags", "not a valid tag"),
    ("short digest", "onmetal_push", lambda w: push(w, ref="r.example/kvm@sha256:abc"), "ref", "sha256"),
    ("squashfs in onmetal", "onmetal_push", lambda w: push(w, squashfs=w["files"]["rootfs"]), "squashfs", "onmetal flavor"),
    ("artifact without media type", "onmetal_push",
     lambda w: push(w, artifacts=[{"path": w["files"]["rootfs"], "media_type": ""}]), "artifacts[0].media_type", "media_type"),
    ("artifact with invalid media type", "onmetal_push",
     lambda w: push(w, artifacts=[{"path": w["files"]["rootfs"], "media_type": "not a type"}]), "artifacts[0].media_type", "media_type"),
    ("broken annotation file", "onmetal_push", lambda w: push(w, annotation_file=str(w["base"] / "broken.json")),
     "annotation_file", "not valid JSON"),
    ("annotation file not an object", "onmetal_push", lambda w: push(w, annotation_file=str(w["base"] / "list.json")),
     "annotation_file", "not a JSON object"),
    ("commandLine twice", "onmetal_push", lambda w: push(w, command_line="ro", config={"commandLine": "x"}), "config", "command_line"),
    ("created not a time", "onmetal_push", lambda w: push(w, created="yesterday"), "created", "RFC 3339"),
    ("nested annotation", "onmetal_push", lambda w: push(w, annotations={"a": {"b": "c"}}), "annotations", "string"),
    ("unreachable registry", "onmetal_push", lambda w: push(w, ref="127.0.0.1:9/kvm:1", plain_http=True, retries=0),
     "ref", "cannot reach"),
    ("wrong registry password", "onmetal_push", lambda w: push(
        w, ref="%s/bad/kvm:1" % w["tls"].host, username=w["tls"].username, password="wrong", ca_path=w["tls"].ca_path),
     "password", "refused"),
    ("TLS without its CA", "onmetal_push", lambda w: push(
        w, ref="%s/bad/kvm:1" % w["tls"].host, username=w["tls"].username, password=w["tls"].password), "ca_path", "certificate"),
    ("username without password", "onmetal_push", lambda w: push(w, ref="%s/bad/kvm:1" % w["registry"].host, plain_http=True,
                                                                 username="someone"), "username", "go together"),
    ("CA file missing", "onmetal_info", lambda w: {"ref": "%s/x:1" % w["tls"].host, "ca_path": "/nonexistent/ca.pem"},
     "ca_path", "not a readable file"),
    ("missing docker config", "onmetal_info", lambda w: {"ref": "%s/x:1" % w["registry"].host, "plain_http": True,
                                                         "docker_config": "/nonexistent/config.json"}, "docker_config", "does not exist"),
    ("invalid JMESPath", "onmetal_info", lambda w: {"ref": "oci:%s:1.0" % w["store"], "query": "layers[?"}, "query", "JMESPath"),
    ("unknown tag in a layout", "onmetal_info", lambda w: {"ref": "oci:%s:9.9" % w["store"]}, "ref", "not found"),
    ("pull of an unknown role", "onmetal_pull", lambda w: {"ref": "oci:%s:1.0" % w["store"], "dest": str(w["base"] / "pulled"),
                                                           "layers": ["uki"]}, "layers", "no 'uki' layer"),
    ("pull into a file", "onmetal_pull", lambda w: {"ref": "oci:%s:1.0" % w["store"], "dest": w["files"]["rootfs"]},
     "dest", "not a folder"),
    ("attach to a missing image", "onmetal_attach", lambda w: {"ref": "oci:%s:9.9" % w["store"],
                                                               "files": [{"path": w["files"]["kernel"], "media_type": "a/b"}]},
     "ref", "push the image first"),
    ("sign with a wrong key password", "cosign_sign", lambda w: {"ref": "oci:%s:1.0" % w["store"], "private_key": private(w),
                                                                 "key_password": "wrong"}, "key_password", "password"),
    ("public key given as private", "cosign_sign", lambda w: {"ref": "oci:%s:1.0" % w["store"], "private_key": public(w),
                                                              "key_password": PASSWORD}, "private_key", "public key"),
    ("SEC1 private key", "cosign_sign", lambda w: {"ref": "oci:%s:1.0" % w["store"], "key_password": "hello",
                                                   "private_key": os.path.join(SHARED, "pemcosigneckey.pem")}, "private_key", "SEC1"),
    ("private key given as public", "cosign_verify", lambda w: {"ref": "oci:%s:1.0" % w["store"], "public_key": private(w)},
     "public_key", "private key"),
    ("verify without any signature", "cosign_verify", lambda w: {"ref": "oci:%s:1.0" % w["store"], "public_key": public(w)},
     "ref", "no cosign signature"),
    ("key pair in a folder", "cosign_keypair", lambda w: {"private_key": str(w["base"] / "empty-folder"), "password": "x"},
     "private_key", "folder"),
    ("release without cname", "onmetal_release", lambda w: {"release_dir": str(w["base"] / "empty-folder")}, "cname", ".raw"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_module_bad_input(world, case):
    name, module, build, option, text = case
    args = build(world)
    if "SEC1" in name and not os.path.isfile(args["private_key"]):
        pytest.skip("the shared cosign test vectors are absent")
    before = sorted(p.name for p in world["base"].iterdir())
    mark = world["registry"].mark()
    run = run_module(module, args)
    assert run.failed, run.output
    msg = run.msg
    assert "\n" not in msg.strip(), msg
    assert "Traceback" not in run.output
    assert "unexpected" not in msg, msg
    assert msg.startswith(option + ":") or option in msg.split(":")[0], msg
    assert text in msg, msg
    assert sorted(p.name for p in world["base"].iterdir()) == before
    assert world["registry"].writes_since(mark) == []


ROLE_CASES = [
    ("release folder missing", {"publish_release_dir": "/nonexistent/release"}, "publish_release_dir", "not a folder"),
    ("unknown extras mode", {"publish_extras": "inline"}, "publish_extras", "must be one of"),
    ("unknown flavor", {"publish_flavor": "windows"}, "publish_flavor", "must be one of"),
    ("target with bad reference", {"publish_target": "not a reference"}, "publish_target", "registry"),
]


@pytest.mark.parametrize("case", ROLE_CASES, ids=[c[0] for c in ROLE_CASES])
def test_role_bad_input(world, tmp_path, case):
    name, extra, option, text = case
    variables = {"publish_release_dir": str(world["release"]), "publish_target": "oci:%s:1" % (tmp_path / "s")}
    variables.update(extra)
    run = run_playbook("playbooks/publish.yml", variables)
    assert run.rc != 0, run.output
    failed = [task[2] for task in run.result["tasks"] if task[1] == "failed"]
    assert len(failed) == 1, run.output
    msg = failed[0].get("msg", "")
    assert option in msg and text in msg, msg
    assert "Traceback" not in run.output
    assert not (tmp_path / "s").exists()
