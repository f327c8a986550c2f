"""Shared pytest setup for tests/unit, tests/integration and tests/interop.

- ``<repo>/.collections`` goes on sys.path, so both the engine and these helpers import as
  ``ansible_collections.gardenlinux.onmetal.plugins.module_utils.X`` and
  ``ansible_collections.gardenlinux.onmetal.tests.support.registry``.
- Tests under tests/integration and tests/interop get the ``integration`` / ``interop`` marker.
- Fixtures: ``registry`` (plain HTTP) and ``tls_registry`` (TLS with a throw-away CA + htpasswd),
  one of each per session; ``make_registry`` for tests that want their own (to crash it, say);
  ``require_docker_registry``; ``shared_dir``; ``repo_root``.

Missing tools skip a test with the reason only outside CI: with CI set (CI=true), a missing
tool fails the test, so a green CI run means the test really ran.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_PATH = REPO_ROOT / ".collections"

if str(COLLECTIONS_PATH) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_PATH))

# pylint: disable=wrong-import-position
from ansible_collections.gardenlinux.onmetal.tests.support import registry as registry_support  # noqa: E402
from ansible_collections.gardenlinux.onmetal.tests.support.fault_proxy import FaultProxy  # noqa: E402


def in_ci():
    """True when running under CI (CI=true/1/yes)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def missing_tool(reason):
    """Skip the current test with ``reason``, or fail it under CI."""
    if in_ci():
        pytest.fail("CI is set and %s" % reason, pytrace=False)
    pytest.skip(reason)


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: needs a real registry that the test starts (docker-registry)")
    config.addinivalue_line("markers", "interop: needs the real peer tools (oras, cosign, onmetal-image, ironcore-image, skopeo)")


def _repo_parts(path):
    try:
        return Path(str(path)).resolve().relative_to(REPO_ROOT).parts
    except ValueError:
        return ()


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
    for item in items:
        parts = _repo_parts(item.path)
        if parts[:2] == ("tests", "integration"):
            item.add_marker(pytest.mark.integration)
        elif parts[:2] == ("tests", "interop"):
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session")
def repo_root():
    """The checkout (collection root)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir():
    """The project's shared folder beside the checkout (``ONMETAL_SHARED_DIR`` overrides)."""
    path = Path(os.environ.get("ONMETAL_SHARED_DIR") or REPO_ROOT.parent / "shared")
    if not path.is_dir():
        pytest.skip("no shared folder at %s (set ONMETAL_SHARED_DIR)" % path)
    return path


@pytest.fixture(scope="session")
def require_docker_registry():
    """Path of the docker-registry binary; skips (fails under CI) when it is not installed."""
    binary = registry_support.find_registry_binary()
    if not binary:
        missing_tool("docker-registry is not installed (Debian package docker-registry; run scripts/setup.sh)")
    return binary


def _new_registry(workdir, **kwargs):
    try:
        return registry_support.Registry(workdir, **kwargs).start()
    except registry_support.RegistryUnavailable as exc:
        missing_tool(str(exc))
    return None  # not reached


@pytest.fixture(scope="session")
def registry(require_docker_registry, tmp_path_factory):
    """A plain-HTTP registry on 127.0.0.1 shared by the session. Use your own repository names."""
    reg = _new_registry(tmp_path_factory.mktemp("registry"), binary=require_docker_registry)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def tls_registry(require_docker_registry, tmp_path_factory):
    """An HTTPS registry (throw-away CA at ``.ca_path``) with htpasswd basic auth, shared by the session."""
    reg = _new_registry(tmp_path_factory.mktemp("tls-registry"), tls=True, auth=True,
                        binary=require_docker_registry)
    yield reg
    reg.stop()


@pytest.fixture
def proxy(registry):
    """A fault proxy in front of the session's registry (tests/support/fault_proxy.py)."""
    fault_proxy = FaultProxy(registry.url, max_lifetime=300).start()
    yield fault_proxy
    fault_proxy.stop()


@pytest.fixture
def make_registry(require_docker_registry, tmp_path_factory):
    """Factory for registries of the test's own: ``make_registry(tls=True, auth=True)``.

    Each is started, gets its own storage, and is stopped when the test ends. Stop, kill and
    restart them at will.
    """
    made = []

    def factory(**kwargs):
        kwargs.setdefault("binary", require_docker_registry)
        reg = _new_registry(tmp_path_factory.mktemp("registry"), **kwargs)
        made.append(reg)
        return reg

    yield factory
    for reg in made:
        reg.stop()
