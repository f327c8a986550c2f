"""Exact bytes: Go json.Marshal conventions, descriptors, manifests, configs."""

import json

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import build_config

SEED_COMMAND_LINE = (
    "root=LABEL=ROOT ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0 "
    "cgroup_enable=memory swapaccount=1 ignition.firstboot=1 ignition.platform.id=qemu security=selinux"
)


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"b": 1, "a": "x"}, b'{"a":"x","b":1}'),
        ({"s": "<a>&b"}, b'{"s":"\\u003ca\\u003e\\u0026b"}'),
        ({"s": "line\nfeed\ttab"}, b'{"s":"line\\nfeed\\ttab"}'),
        ({"s": "\b\f"}, b'{"s":"\\u0008\\u000c"}'),
        ({"s": "back\\bslash"}, b'{"s":"back\\\\bslash"}'),
        ({"s": "\u2028\u2029"}, b'{"s":"\\u2028\\u2029"}'),
        ({"s": "gr\u00fc\u00dfe"}, '{"s":"gr\u00fc\u00dfe"}'.encode("utf-8")),
        ({"s": "\x01"}, b'{"s":"\\u0001"}'),
        ([True, False, None, 0, -3], b"[true,false,null,0,-3]"),
        ({"Z": 1, "a": 2, "B": 3}, b'{"B":3,"Z":1,"a":2}'),
    ],
)
def test_go_json(value, expected):
    assert oci.go_json(value) == expected


def test_onmetal_config_matches_onmetal_image_build():
    # SPEC.md section 1: the bytes and digest onmetal-image writes for this command line.
    data = build_config("root=LABEL=ROOT ro console=ttyS0,115200", None)
    assert data == b'{"commandLine":"root=LABEL=ROOT ro console=ttyS0,115200"}'
    assert len(data) == 57
    assert oci.sha256_digest(data) == "sha256:f5896f37be0fc15e381952113730eaaa40a8b395231949843bb528807e65fb20"


def test_seed_config_digest():
    # The seed's onmetal-image build: 209 bytes, digest 9074eb95...
    data = build_config(SEED_COMMAND_LINE, None)
    assert len(data) == 209
    assert oci.sha256_digest(data) == "sha256:9074eb95a07ed98222ffc0c94a3e6577b972ce62073fe4d14c32d005700f1aba"


def test_empty_command_line_gives_empty_object():
    assert build_config("", None) == b"{}"
    assert build_config(None, {}) == b"{}"


def test_config_extra_fields_sorted():
    data = build_config("root=x", {"os-release": "974.0", "manifest": "URL"})
    assert data == b'{"commandLine":"root=x","manifest":"URL","os-release":"974.0"}'


def test_config_refuses_command_line_twice_and_non_objects():
    with pytest.raises(OnmetalError, match="^config: "):
        build_config("root=x", {"commandLine": "other"})
    with pytest.raises(OnmetalError, match="^config: "):
        build_config("root=x", ["not", "a", "mapping"])


def test_seed_onmetal_image_build_manifest_digest():
    # The seed's `onmetal-image inspect` output: no mediaType field, layers rootfs, initramfs, kernel.
    config = oci.descriptor(mt.FLAVORS["onmetal"]["config"], "sha256:9074eb95a07ed98222ffc0c94a3e6577b972ce62073fe4d14c32d005700f1aba", 209)
    layers = [
        oci.descriptor(mt.FLAVORS["onmetal"]["rootfs"], "sha256:89c372adab112641ca4b554cb458bb1ea3f9be02d13b48d8e53178c9f19b858d", 721420288),
        oci.descriptor(mt.FLAVORS["onmetal"]["initramfs"], "sha256:a45c40c17c93fb1cb1275126f82bc5383a3f53fb7bf42e7d335deb263eab3e8b", 27363208),
        oci.descriptor(mt.FLAVORS["onmetal"]["kernel"], "sha256:046ff03c1918ef70f7526d4820b66ac04b06415a5f0d5153d5f08d1b45dc87ca", 13230144),
    ]
    value = oci.OrderedStruct(schemaVersion=2)
    value["config"] = config
    value["layers"] = layers
    data = oci.go_json(value)
    assert len(data) == 713
    assert oci.sha256_digest(data) == "sha256:e2887cc93eaad65be23b5d9631342b904d46c4d2d8b9138bce384decda743ca5"


def test_seed_oras_manifest_digest_v4():
    # The seed's `oras push ... :v4` (six layers, created annotation): 1809 bytes, sha256:d3d8d1bb...
    o = mt.FLAVORS["onmetal"]
    rows = [
        (o["rootfs"], "a6baf04f08ae108f23eb76d8ccf3704f4d52bc10fa5645657f55a5185a52cfb5", 721420288, "raw"),
        (o["kernel"], "046ff03c1918ef70f7526d4820b66ac04b06415a5f0d5153d5f08d1b45dc87ca", 13230144, "vmlinuz"),
        (o["initramfs"], "ad1e195f8d7874a6cbf6a972a0badf8e7de03ccac54f4ae920c4ed9398bf7110", 27363804, "initrd"),
        ("application/vnd.gardenlinux.os.release", "9664cc6fb8ab048760c776064f0391a5949459986fed2e3ed0189e3aa6376c7d", 510, "os-release"),
        ("application/vnd.gardenlinux.log", "bda2276cbf5fc37d411883ef9d441a19482c7a4363782da108ac17e6130eff47", 108288, "log"),
        ("application/vnd.gardenlinux.manifest", "7977d5a6cd277d0241c23320069d6a91902643cd6c8f8865181d8b1c15512fe2", 6802, "manifest"),
    ]
    layers = [
        oci.descriptor(media, "sha256:" + hexd, size, {mt.TITLE_ANNOTATION: "kvm_oci-amd64-today-dc5ce3cd." + ext})
        for media, hexd, size, ext in rows
    ]
    config = oci.descriptor(o["config"], "sha256:5bb41d1b9f4ab6c20f7f5a5576286fce6b7664a8f058f38085ddb3066c0faf35", 214)
    data = oci.manifest_bytes(config, layers, {mt.CREATED_ANNOTATION: "2022-11-30T13:31:22Z"})
    assert len(data) == 1809
    assert oci.sha256_digest(data) == "sha256:d3d8d1bbc4dbe8a9e74276fb5de439a82e4d18aa3491c2ec8229c5328716f061"


def test_manifest_field_order_and_omitted_fields():
    config = oci.descriptor("a/b", "sha256:" + "0" * 64, 2)
    data = oci.manifest_bytes(config, [], None, artifact_type="x/y", subject=oci.descriptor("m/n", "sha256:" + "1" * 64, 3))
    keys = list(json.loads(data))
    assert keys == ["schemaVersion", "mediaType", "artifactType", "config", "layers", "subject"]
    assert b"annotations" not in data


def test_empty_descriptor_is_oras_empty():
    assert oci.go_json(oci.empty_descriptor()) == (
        b'{"mediaType":"application/vnd.oci.empty.v1+json",'
        b'"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="}'
    )
    assert oci.sha256_digest(mt.EMPTY_JSON) == mt.EMPTY_DIGEST


def test_file_digest_streams(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * (3 * oci.READ_SIZE + 5))
    digest, size = oci.file_digest(str(path))
    assert size == 3 * oci.READ_SIZE + 5
    assert digest == oci.sha256_digest(path.read_bytes())
