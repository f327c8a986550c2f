"""Fixtures for the interop tests: the real peer tools, run hermetically (helpers in peertools.py).

- ``peers``: the peer binaries (``peers["oras"]`` is a path; ``peers.run("oras", ...)`` runs it). The
  pinned builds live in ``<repo>/.peers/bin`` (``scripts/build-peers.sh``, ``make peers``); ``skopeo``
  comes from PATH (Debian package). A missing one skips the test with the reason, or FAILS it under
  CI=true: a green CI run means the peers really ran.
- Every peer process gets a bounded timeout and a clean environment: HOME and DOCKER_CONFIG in the
  test's own tmp folder (no user config leaks in), a private TMPDIR, and HTTP(S)_PROXY pointing at a
  closed port on 127.0.0.1 with NO_PROXY for loopback, so a peer talks to the test registries on
  127.0.0.1 only (cosign's TUF lookup of sigstore.dev fails at once instead of going out).
- ``modules``: the collection's modules through the ansible CLI, with a clean HOME and DOCKER_CONFIG.
- ``release``: small Garden Linux style release files (``<cname>.raw``, ``.vmlinuz``, ``.initrd``, ...).
- ``resolve_image``: the real ``ResolveImage`` of onmetal-image / ironcore-image (what boot consumers
  call; the CLIs never call it), built once per session from the pinned module source in the peers'
  Go module cache, offline.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.gardenlinux.onmetal.tests.conftest import missing_tool
from ansible_collections.gardenlinux.onmetal.tests.interop.peertools import (
    CNAME, RELEASE_SIZES, Modules, Peers, ResolveImage, build_resolve_helpers,
)


@pytest.fixture
def peers(tmp_path):
    """The peers, with HOME/DOCKER_CONFIG/TMPDIR in this test's tmp folder."""
    return Peers(tmp_path / "peer-home")


@pytest.fixture
def modules(tmp_path):
    """``modules.ok(name, args)``: a module through the ansible CLI; fails the test when it fails."""
    return Modules(tmp_path / "ansible-home")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A folder with <cname>.raw/.vmlinuz/.initrd/.os-release/.log/.manifest (random bytes, a few MiB)."""
    folder = tmp_path_factory.mktemp("release")
    for ext, size in RELEASE_SIZES.items():
        (folder / ("%s.%s" % (CNAME, ext))).write_bytes(os.urandom(size))
    return folder


@pytest.fixture(scope="session")
def resolve_image_binaries(tmp_path_factory):
    """The ResolveImage helpers, built once per session: {flavor: path} or {"missing": reason}."""
    return build_resolve_helpers(tmp_path_factory.mktemp("resolveimage"))


@pytest.fixture
def resolve_image(resolve_image_binaries, tmp_path):
    """``resolve_image(flavor, ref)`` -> (True, {"commandLine": ..., role: digest}) or (False, "error: ...")."""
    if "missing" in resolve_image_binaries:
        missing_tool(resolve_image_binaries["missing"])
    helper = ResolveImage(resolve_image_binaries)
    return lambda flavor, ref: helper(flavor, ref, tmp_path / "resolve-home")
