"""Reference parsing: registry and OCI layout spellings, and one clear line for bad ones."""

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "text, registry, repository, tag, digest",
    [
        ("registry.example.com/gardenlinux/kvm:1877.0", "registry.example.com", "gardenlinux/kvm", "1877.0", None),
        ("localhost:5000/oras-gardenlinux:v4", "localhost:5000", "oras-gardenlinux", "v4", None),
        ("localhost/x", "localhost", "x", None, None),
        ("127.0.0.1:5000/a/b/c@" + D, "127.0.0.1:5000", "a/b/c", None, D),
        ("r.io/a:t@" + D, "r.io", "a", "t", D),
        ("[::1]:5000/a:t", "[::1]:5000", "a", "t", None),
    ],
)
def test_registry_references(text, registry, repository, tag, digest):
    ref = parse(text)
    assert (ref.kind, ref.registry, ref.repository, ref.tag, ref.digest) == ("registry", registry, repository, tag, digest)
    assert str(ref) == text
    assert ref.name == "%s/%s" % (registry, repository)


@pytest.mark.parametrize(
    "text, path, tag, digest",
    [
        ("oci:./store:1877.0", "./store", "1877.0", None),
        ("oci:/abs/store", "/abs/store", None, None),
        ("oci:store@" + D, "store", None, D),
        ("oci:/a:b/store:t", "/a:b/store", "t", None),
    ],
)
def test_layout_references(text, path, tag, digest):
    ref = parse(text)
    assert (ref.kind, ref.path, ref.tag, ref.digest) == ("oci", path, tag, digest)
    assert ref.is_layout


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "required"),
        ("gardenlinux/kvm:1", "names no registry"),
        ("kvm", "names no registry"),
        ("https://r.io/a:t", "without a scheme"),
        ("r.io/UPPER:t", "not a valid repository"),
        ("r.io/a:-bad", "not a valid tag"),
        ("r.io/a@sha256:short", "not a sha256 digest"),
        ("oci::t", "needs a folder"),
        ("oci:store:" + "x" * 129, "not a valid tag"),
    ],
)
def test_bad_references_name_the_option(text, fragment):
    with pytest.raises(OnmetalError) as info:
        parse(text, option="ref")
    message = str(info.value)
    assert message.startswith("ref: ")
    assert fragment in message
    assert "\n" not in message


def test_replace_keeps_the_rest():
    ref = parse("r.io/a/b:t")
    other = ref.replace(tag="sha256-%s.sig" % ("a" * 64), digest=None)
    assert str(other) == "r.io/a/b:sha256-%s.sig" % ("a" * 64)
    assert str(ref.replace(tag=None, digest=D)) == "r.io/a/b@" + D
