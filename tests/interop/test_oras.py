"""Interop with the real oras CLI (v1.x, pinned in scripts/build-peers.sh).

- oras reads what we push: `oras manifest fetch` gives our exact bytes, `oras manifest fetch-config` our
  config bytes, `oras pull` byte-identical files named by their titles.
- we read what the seed's own `oras push` commands write (../shared/seed/oras-feature.md): plain,
  with the Garden Linux extras, with `--annotation-file`: onmetal_info and onmetal_pull get it right.
- digest parity: the same inputs with `created` pinned give the same manifest digest as `oras push`.
- idempotency: our unchanged re-push writes nothing; oras writes the manifest again.
"""

import json
import os
import re
import shutil
import time

import pytest
import requests

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target

from ansible_collections.gardenlinux.onmetal.tests.interop.peertools import CNAME, COMMAND_LINE, boot_args, release_file

ONM = mt.FLAVORS["onmetal"]
CREATED = "2022-11-30T13:31:22Z"
PLAIN = {"plain_http": True}

# The seed's orasconfig.json, as `jq .` printed it there (pretty, not our compact bytes).
SEED_CONFIG = {
    "commandLine": COMMAND_LINE,
    "os-release": "974.0",
    "signature/crc": "Put valid content here",
    "manifest": "URL",
}
# The seed's annotations.json for `oras push --annotation-file`.
SEED_ANNOTATIONS = {
    "$config": {"os-release": "981.0", "signature/src": "kjldaslkdjasdklsjada"},
    "$manifest": {"signed-by": "author"},
}


def names(*exts):
    return ["%s.%s" % (CNAME, ext) for ext in exts]


def seed_boot_files():
    """The seed's file arguments: rootfs, vmlinuz, initrd in that order, with onmetal media types."""
    raw, vmlinuz, initrd = names("raw", "vmlinuz", "initrd")
    return ["%s:%s" % (raw, ONM["rootfs"]), "%s:%s" % (vmlinuz, ONM["kernel"]), "%s:%s" % (initrd, ONM["initramfs"])]


def seed_extra_files():
    osr, log, man = names("os-release", "log", "manifest")
    return ["%s:%s" % (osr, mt.GARDENLINUX_EXTRAS["os-release"]), "%s:%s" % (log, mt.GARDENLINUX_EXTRAS["log"]),
            "%s:%s" % (man, mt.GARDENLINUX_EXTRAS["manifest"])]


def oras_digest(proc):
    """The digest `oras push` prints on its 'Digest:' line."""
    found = re.findall(r"^Digest: (sha256:[0-9a-f]{64})$", proc.stdout, re.M)
    assert found, "no Digest line in oras output:\n%s" % proc.stdout
    return found[-1]


def registry_manifest(registry, repo, ref):
    """(bytes, digest header) of a manifest straight from the registry."""
    response = requests.get("%s/v2/%s/manifests/%s" % (registry.url, repo, ref), timeout=30,
                            headers={"Accept": ",".join(mt.MANIFEST_ACCEPT)}, **registry.requests_kwargs())
    response.raise_for_status()
    return response.content, response.headers.get("Docker-Content-Digest")


def manifest_puts(requests_):
    return [r for r in requests_ if r.method == "PUT" and "/manifests/" in r.path]


# --- oras reads what we write ---------------------------------------------------------------------

def test_oras_fetch_and_pull_our_push(registry, release, peers, modules, tmp_path):
    ref = "%s/interop-oras/ours:1.0" % registry.host
    pushed = modules.ok("onmetal_push", dict(boot_args(release), ref=ref, plain_http=True,
                                             config={"os-release": "974.0"},
                                             annotations={"org.gardenlinux.cname": CNAME}))
    raw, header = registry_manifest(registry, "interop-oras/ours", "1.0")
    assert oci.sha256_digest(raw) == header == pushed["digest"]

    fetched = peers.run("oras", "manifest", "fetch", "--plain-http", ref).stdout.encode("utf-8")
    assert fetched == raw
    by_digest = peers.run("oras", "manifest", "fetch", "--plain-http",
                          "%s/interop-oras/ours@%s" % (registry.host, pushed["digest"])).stdout.encode("utf-8")
    assert by_digest == raw

    config = peers.run("oras", "manifest", "fetch-config", "--plain-http", ref).stdout.encode("utf-8")
    assert config == oci.go_json({"commandLine": COMMAND_LINE, "os-release": "974.0"})
    assert oci.sha256_digest(config) == json.loads(raw)["config"]["digest"]

    out = tmp_path / "oras-pull"
    peers.run("oras", "pull", "--plain-http", "-o", out, ref)
    assert sorted(os.listdir(out)) == sorted(names("raw", "vmlinuz", "initrd"))
    for name in os.listdir(out):
        assert (out / name).read_bytes() == (release / name).read_bytes(), name


# --- we read what the seed's oras push writes ------------------------------------------------------

@pytest.fixture
def seed_config(release, tmp_path):
    """The seed's orasconfig.json, pretty printed with tabs as in the seed."""
    path = tmp_path / "orasconfig.json"
    path.write_text(json.dumps(SEED_CONFIG, indent="\t") + "\n", encoding="utf-8")
    return path


def check_seed_info(info, registry, repo, release, files):
    """onmetal_info of a seed push: roles, titles, URLs, command line, config."""
    assert info["flavor"] == "onmetal"
    assert info["command_line"] == COMMAND_LINE
    assert info["config"] == SEED_CONFIG
    assert info["descriptor"]["mediaType"] == mt.OCI_MANIFEST
    expect = []
    for spec in files:
        name, media_type = spec.rsplit(":", 1)
        digest, size = oci.file_digest(str(release / name))
        flavor, role = mt.role_of(media_type)
        expect.append({
            "role": role if flavor else None, "media_type": media_type, "digest": digest, "size": size,
            "title": name, "annotations": {mt.TITLE_ANNOTATION: name},
            "url": "http://%s/v2/%s/blobs/%s" % (registry.host, repo, digest),
        })
    assert info["layers"] == expect
    assert info["urls"] == {layer["role"]: layer["url"] for layer in expect if layer["role"]}
    # oras stamps every push with the time (SPEC.md section 2)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", info["annotations"][mt.CREATED_ANNOTATION])


def check_pulled(result, dest, release, files):
    assert result["changed"] is True
    got = sorted(os.listdir(dest))
    assert got == sorted(spec.rsplit(":", 1)[0] for spec in files)
    for name in got:
        assert (dest / name).read_bytes() == (release / name).read_bytes(), name


def test_seed_plain_oras_push_read_by_us(registry, release, peers, modules, seed_config, tmp_path):
    repo = "interop-oras/seed-plain"
    ref = "%s/%s:v2" % (registry.host, repo)
    files = seed_boot_files()
    digest = oras_digest(peers.run("oras", "push", "--plain-http", ref, *files,
                                   "--config", "%s:%s" % (seed_config, ONM["config"]), cwd=release))

    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    assert info["digest"] == digest
    check_seed_info(info, registry, repo, release, files)
    # the config blob is the seed's file byte for byte (pretty, with tabs): we never re-encode what we read
    assert peers.run("oras", "manifest", "fetch-config", "--plain-http", ref).stdout.encode() == seed_config.read_bytes()

    dest = tmp_path / "pulled"
    check_pulled(modules.ok("onmetal_pull", {"ref": ref, "dest": str(dest), "plain_http": True}), dest, release, files)
    again = modules.ok("onmetal_pull", {"ref": ref, "dest": str(dest), "plain_http": True})
    assert again["changed"] is False


def test_seed_extras_oras_push_read_by_us(registry, release, peers, modules, seed_config, tmp_path):
    repo = "interop-oras/seed-extras"
    ref = "%s/%s:v4" % (registry.host, repo)
    files = seed_boot_files() + seed_extra_files()
    digest = oras_digest(peers.run("oras", "push", "--plain-http", ref, *files,
                                   "--config", "%s:%s" % (seed_config, ONM["config"]), cwd=release))

    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    assert info["digest"] == digest
    check_seed_info(info, registry, repo, release, files)
    assert [layer["role"] for layer in info["layers"]] == ["rootfs", "kernel", "initramfs", None, None, None]

    dest = tmp_path / "all"
    check_pulled(modules.ok("onmetal_pull", {"ref": ref, "dest": str(dest), "plain_http": True}), dest, release, files)

    some = tmp_path / "some"
    result = modules.ok("onmetal_pull", {"ref": ref, "dest": str(some), "plain_http": True,
                                         "layers": ["kernel", mt.GARDENLINUX_EXTRAS["log"]]})
    assert sorted(os.listdir(some)) == sorted(names("vmlinuz", "log"))
    assert [entry["role"] for entry in result["files"]] == ["kernel", None]
    for name in os.listdir(some):
        assert (some / name).read_bytes() == (release / name).read_bytes()


def test_seed_annotation_file_oras_push_read_by_us(registry, release, peers, modules, seed_config, tmp_path):
    repo = "interop-oras/seed-annotations"
    ref = "%s/%s:981.0" % (registry.host, repo)
    annotation_file = tmp_path / "annotations.json"
    annotation_file.write_text(json.dumps(SEED_ANNOTATIONS, indent=2), encoding="utf-8")
    files = seed_boot_files()
    digest = oras_digest(peers.run("oras", "push", "--plain-http", "--annotation-file", annotation_file, ref, *files,
                                   "--config", "%s:%s" % (seed_config, ONM["config"]), cwd=release))

    info = modules.ok("onmetal_info", {"ref": ref, "plain_http": True})
    assert info["digest"] == digest
    check_seed_info(info, registry, repo, release, files)
    # where the seed says they land: $manifest on the manifest, $config on the config descriptor
    assert info["annotations"]["signed-by"] == "author"
    assert set(info["annotations"]) == {"signed-by", mt.CREATED_ANNOTATION}
    assert info["manifest"]["config"]["annotations"] == SEED_ANNOTATIONS["$config"]
    assert info["manifest"]["config"]["mediaType"] == ONM["config"]

    dest = tmp_path / "pulled"
    check_pulled(modules.ok("onmetal_pull", {"ref": ref, "dest": str(dest), "plain_http": True}), dest, release, files)


# --- digest parity --------------------------------------------------------------------------------

PARITY_CASES = {
    "boot": {"params": {}, "extras": False, "annotation_file": None},
    "extras": {"params": {}, "extras": True, "annotation_file": None},
    "annotation-file": {
        "params": {"config": {"os-release": "981.0"}},
        "extras": False,
        # Go escapes <, > and & in strings; a per-file entry is keyed by the path as given
        "annotation_file": {
            "$config": {"os-release": "981.0", "signature/src": "a<b>&c"},
            "$manifest": {"signed-by": "Author <author@example.com>"},
            CNAME + ".vmlinuz": {"org.gardenlinux.kind": "kernel & more"},
        },
    },
}


@pytest.mark.parametrize("case", sorted(PARITY_CASES))
def test_digest_parity_with_oras_push(registry, release, peers, tmp_path, case):
    spec = PARITY_CASES[case]
    repo = "interop-oras/parity-" + case
    params = dict(boot_args(release), created=CREATED, **spec["params"])
    oras_files = ["%s:%s" % (n, ONM[role])
                  for n, role in zip(names("raw", "initrd", "vmlinuz"), ("rootfs", "initramfs", "kernel"))]
    if spec["extras"]:
        params["artifacts"] = [{"path": release_file(release, ext), "media_type": mt.GARDENLINUX_EXTRAS[ext]}
                               for ext in ("os-release", "log", "manifest")]
        oras_files += seed_extra_files()
    if spec["annotation_file"]:
        ours_file = tmp_path / "ours-annotations.json"
        ours_file.write_text(json.dumps(spec["annotation_file"]), encoding="utf-8")
        params["annotation_file"] = str(ours_file)
        # oras refuses --annotation beside --annotation-file: its pinned created goes into $manifest
        content = json.loads(json.dumps(spec["annotation_file"]))
        content["$manifest"][mt.CREATED_ANNOTATION] = CREATED
        oras_file = tmp_path / "oras-annotations.json"
        oras_file.write_text(json.dumps(content), encoding="utf-8")
        oras_args = ["--annotation-file", oras_file]
    else:
        oras_args = ["--annotation", "%s=%s" % (mt.CREATED_ANNOTATION, CREATED)]

    ours_ref = parse("%s/%s:ours" % (registry.host, repo))
    target = open_target(ours_ref, PLAIN)
    pushed = push_image(target, params)
    config_file = tmp_path / "config.json"
    config_file.write_bytes(target.read_blob(pushed["manifest"]["config"]["digest"]))

    # in the release folder, so that oras's titles are the bare names, as ours are
    proc = peers.run("oras", "push", "--plain-http", *oras_args, "%s/%s:oras" % (registry.host, repo), *oras_files,
                     "--config", "%s:%s" % (config_file, ONM["config"]), cwd=release)
    theirs, unused = registry_manifest(registry, repo, "oras")
    ours, unused = registry_manifest(registry, repo, "ours")
    assert theirs == ours
    assert oras_digest(proc) == pushed["digest"]


def test_title_convention_differs_from_oras_for_paths(registry, release, peers, tmp_path):
    """oras titles a layer with the path as given, we with its base name (what `oras pull` writes to).

    Same inputs named as sub/<file>: the only difference in the manifests is the title values, so the
    digests differ. Run oras in the folder of the files (bare names) for digest parity.
    """
    repo = "interop-oras/titles"
    sub = tmp_path / "sub"
    sub.mkdir()
    for ext in ("raw", "vmlinuz", "initrd"):
        shutil.copyfile(release_file(release, ext), str(sub / ("%s.%s" % (CNAME, ext))))
    params = {"rootfs": str(sub / names("raw")[0]), "initramfs": str(sub / names("initrd")[0]),
              "kernel": str(sub / names("vmlinuz")[0]), "command_line": COMMAND_LINE, "created": CREATED}
    target = open_target(parse("%s/%s:ours" % (registry.host, repo)), PLAIN)
    pushed = push_image(target, params)
    config_file = tmp_path / "config.json"
    config_file.write_bytes(target.read_blob(pushed["manifest"]["config"]["digest"]))
    oras_files = ["sub/%s:%s" % (n, ONM[role])
                  for n, role in zip(names("raw", "initrd", "vmlinuz"), ("rootfs", "initramfs", "kernel"))]
    digest = oras_digest(peers.run("oras", "push", "--plain-http", "--annotation",
                                   "%s=%s" % (mt.CREATED_ANNOTATION, CREATED), "%s/%s:oras" % (registry.host, repo),
                                   *oras_files, "--config", "%s:%s" % (config_file, ONM["config"]), cwd=tmp_path))
    assert digest != pushed["digest"]
    theirs = json.loads(registry_manifest(registry, repo, "oras")[0])
    ours = json.loads(registry_manifest(registry, repo, "ours")[0])
    assert [layer["annotations"][mt.TITLE_ANNOTATION] for layer in theirs["layers"]] == [
        "sub/" + n for n in names("raw", "initrd", "vmlinuz")]
    assert [layer["annotations"][mt.TITLE_ANNOTATION] for layer in ours["layers"]] == names("raw", "initrd", "vmlinuz")
    for layer in theirs["layers"]:
        layer["annotations"][mt.TITLE_ANNOTATION] = os.path.basename(layer["annotations"][mt.TITLE_ANNOTATION])
    assert oci.sha256_digest(oci.manifest_bytes(theirs["config"], theirs["layers"], theirs["annotations"])) == pushed["digest"]


# --- re-push --------------------------------------------------------------------------------------

def test_unchanged_repush_writes_nothing_oras_writes_a_manifest(registry, release, peers, modules, seed_config):
    repo = "interop-oras/repush"
    ours_ref = "%s/%s:ours" % (registry.host, repo)
    args = dict(boot_args(release), ref=ours_ref, plain_http=True)
    first = modules.ok("onmetal_push", args)
    assert first["changed"] is True
    mark = registry.mark()
    second = modules.ok("onmetal_push", args)
    assert second["changed"] is False
    assert second["digest"] == first["digest"]
    assert registry.writes_since(mark) == []

    oras_ref = "%s/%s:oras" % (registry.host, repo)
    push = ["push", "--plain-http", oras_ref, *seed_boot_files(), "--config", "%s:%s" % (seed_config, ONM["config"])]
    one = oras_digest(peers.run("oras", *push, cwd=release))
    time.sleep(1.1)  # oras's created stamp has one-second resolution
    mark = registry.mark()
    two = oras_digest(peers.run("oras", *push, cwd=release))
    assert two != one  # a new created stamp, a new digest, for the same files
    assert [r.path for r in manifest_puts(registry.writes_since(mark))] == ["/v2/%s/manifests/oras" % repo]

    # created pinned: the same digest, but oras still writes the manifest again
    pinned = ["--annotation", "%s=%s" % (mt.CREATED_ANNOTATION, CREATED)] + push[1:]
    three = oras_digest(peers.run("oras", "push", *pinned, cwd=release))
    mark = registry.mark()
    four = oras_digest(peers.run("oras", "push", *pinned, cwd=release))
    assert four == three
    assert [r.path for r in manifest_puts(registry.writes_since(mark))] == ["/v2/%s/manifests/oras" % repo]


def test_oras_copy_of_our_layout_push_keeps_digest(registry, release, peers, modules, tmp_path):
    """The embedded default (an OCI layout) goes to a registry with `oras cp --from-oci-layout`, digest intact."""
    layout = tmp_path / "store"
    pushed = modules.ok("onmetal_push", dict(boot_args(release), ref="oci:%s:1.0" % layout))
    ref = "%s/interop-oras/from-layout:1.0" % registry.host
    proc = peers.run("oras", "cp", "--from-oci-layout", "%s:1.0" % layout, "--to-plain-http", ref)
    assert oras_digest(proc) == pushed["digest"]
    assert registry_manifest(registry, "interop-oras/from-layout", "1.0")[0] == oci.manifest_bytes(
        pushed["manifest"]["config"], pushed["manifest"]["layers"])
    # and back: oras copies our registry image into a layout our reader opens
    back = tmp_path / "back"
    peers.run("oras", "cp", "--from-plain-http", ref, "--to-oci-layout", "%s:2.0" % back)
    info = modules.ok("onmetal_info", {"ref": "oci:%s:2.0" % back})
    assert info["digest"] == pushed["digest"]
    assert info["command_line"] == COMMAND_LINE
