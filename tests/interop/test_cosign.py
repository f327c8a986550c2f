"""Interop with the real cosign, v2 and v3 (pinned in scripts/build-peers.sh), in the legacy `.sig` layout.

Invocations that work offline against a registry on loopback (no Rekor, no Fulcio, no TUF):

    cosign    sign   --key K --tlog-upload=false --allow-insecure-registry -y [-a k=v] REF@DIGEST
    cosign-v3 sign   --key K --tlog-upload=false --use-signing-config=false --new-bundle-format=false \\
                     --allow-insecure-registry -y [-a k=v] REF@DIGEST
    cosign[-v3] verify --key PUB --insecure-ignore-tlog --allow-insecure-registry [-a k=v] REF

`--allow-insecure-registry` is what lets cosign speak plain HTTP to 127.0.0.1; over TLS it needs the
CA in SSL_CERT_FILE and the login in DOCKER_CONFIG instead. The key password comes from COSIGN_PASSWORD.
"""

import json

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign as cosign_engine
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import push_image
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target
from ansible_collections.gardenlinux.onmetal.tests.interop.peertools import PEERS_BIN, Modules, Peers, boot_args

COSIGNS = {"v2": "cosign", "v3": "cosign-v3"}
SIGN_FLAGS = {
    "v2": ["--tlog-upload=false", "-y"],
    "v3": ["--tlog-upload=false", "--use-signing-config=false", "--new-bundle-format=false", "-y"],
}
VERIFY_FLAGS = ["--insecure-ignore-tlog"]
PLAIN_FLAGS = ["--allow-insecure-registry"]
OUR_PASSWORD = "our-key-password"
THEIR_PASSWORD = "their-key-password"
ANNOTATIONS = {"release": "1877.0", "flavor": "kvm"}


def a_flags(annotations):
    return [arg for key, value in sorted(annotations.items()) for arg in ("-a", "%s=%s" % (key, value))]


@pytest.fixture(scope="module")
def our_keys(tmp_path_factory):
    """{format: (private, public)} made by our cosign_keypair module, plus a second pair "other"."""
    folder = tmp_path_factory.mktemp("our-keys")
    modules = Modules(folder / "home")
    keys = {}
    for name, fmt in (("sigstore", "sigstore"), ("cosign-legacy", "cosign-legacy"), ("other", "sigstore")):
        private = folder / ("%s.key" % name)
        result = modules.ok("cosign_keypair", {"private_key": str(private), "password": OUR_PASSWORD, "format": fmt})
        assert result["format"] == fmt
        keys[name] = (str(private), result["public_key"])
    label = {"sigstore": b"ENCRYPTED SIGSTORE PRIVATE KEY", "cosign-legacy": b"ENCRYPTED COSIGN PRIVATE KEY"}
    for fmt, (private, unused) in keys.items():
        if fmt in label:
            with open(private, "rb") as handle:
                assert label[fmt] in handle.read()
    return keys


@pytest.fixture(scope="module")
def their_keys(tmp_path_factory):
    """{"v2"|"v3": (cosign.key, cosign.pub)} from `cosign generate-key-pair` (COSIGN_PASSWORD set)."""
    keys = {}
    for version, name in COSIGNS.items():
        folder = tmp_path_factory.mktemp("cosign-keys-" + version)
        peers = Peers(folder / "home")
        if not (PEERS_BIN / name).is_file():
            continue  # the tests that need it skip (or fail under CI) through their_key()
        peers.run(name, "generate-key-pair", env={"COSIGN_PASSWORD": THEIR_PASSWORD}, cwd=folder)
        keys[version] = (str(folder / "cosign.key"), str(folder / "cosign.pub"))
    return keys


def their_key(their_keys, peers, version):
    peers.require(COSIGNS[version])
    return their_keys[version]


def push(registry_host, repo, release, connection=None, tag="1.0"):
    """Push a boot image with the engine; (reference text, digest)."""
    ref = parse("%s/%s:%s" % (registry_host, repo, tag))
    pushed = push_image(open_target(ref, connection or {"plain_http": True}), boot_args(release))
    return str(ref), pushed["digest"]


def cosign_verify(peers, version, pub, ref, annotations=None, extra=None, env=None):
    return peers.run(COSIGNS[version], "verify", "--key", pub, *VERIFY_FLAGS, *(extra if extra is not None else PLAIN_FLAGS),
                     *a_flags(annotations or {}), ref, check=False, env=env)


def cosign_sign(peers, version, key, password, ref, annotations=None, extra=None, env=None):
    return peers.run(COSIGNS[version], "sign", "--key", key, *SIGN_FLAGS[version],
                     *(extra if extra is not None else PLAIN_FLAGS), *a_flags(annotations or {}), ref,
                     env=dict(env or {}, COSIGN_PASSWORD=password))


def verified_payloads(proc):
    """The payloads `cosign verify` prints (a JSON array on stdout)."""
    assert proc.returncode == 0, "cosign verify failed:\n%s\n%s" % (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def assert_refused(proc, why="no matching signatures"):
    assert proc.returncode != 0, "cosign verify passed where it must not:\n%s" % proc.stdout
    assert why in proc.stderr, proc.stderr


# --- cosign verifies what we sign ----------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["sigstore", "cosign-legacy"])
@pytest.mark.parametrize("version", sorted(COSIGNS))
def test_cosign_verifies_our_signature(registry, release, peers, modules, our_keys, version, fmt):
    repo = "interop-cosign/ours-%s-%s" % (version, fmt)
    ref, digest = push(registry.host, repo, release)
    private, public = our_keys[fmt]
    signed = modules.ok("cosign_sign", {"ref": ref, "private_key": private, "key_password": OUR_PASSWORD,
                                        "annotations": ANNOTATIONS, "plain_http": True})
    assert signed["changed"] is True and signed["digest"] == digest

    for where in (ref, "%s/%s@%s" % (registry.host, repo, digest)):
        payloads = verified_payloads(cosign_verify(peers, version, public, where, ANNOTATIONS))
        assert payloads == [{
            "critical": {"identity": {"docker-reference": "%s/%s" % (registry.host, repo)},
                         "image": {"docker-manifest-digest": digest},
                         "type": "cosign container image signature"},
            "optional": ANNOTATIONS,
        }]
    assert_refused(cosign_verify(peers, version, public, ref, {"release": "1443.0"}))
    assert_refused(cosign_verify(peers, version, our_keys["other"][1], ref))


# --- we verify what cosign signs -------------------------------------------------------------------

@pytest.mark.parametrize("version", sorted(COSIGNS))
def test_we_verify_cosign_signatures(registry, release, peers, modules, their_keys, our_keys, version):
    key, pub = their_key(their_keys, peers, version)
    repo = "interop-cosign/theirs-%s" % version
    ref, digest = push(registry.host, repo, release)
    cosign_sign(peers, version, key, THEIR_PASSWORD, "%s/%s@%s" % (registry.host, repo, digest), ANNOTATIONS)

    verified = modules.ok("cosign_verify", {"ref": ref, "public_key": pub, "annotations": ANNOTATIONS, "plain_http": True})
    assert verified["digest"] == digest
    wrong_value = modules("cosign_verify", {"ref": ref, "public_key": pub, "annotations": {"release": "1443.0"},
                                            "plain_http": True})
    assert wrong_value.failed and "none carries the annotations release=1443.0" in wrong_value.msg, wrong_value.msg
    wrong_key = modules("cosign_verify", {"ref": ref, "public_key": our_keys["other"][1], "plain_http": True})
    assert wrong_key.failed and "verifies with this public key" in wrong_key.msg, wrong_key.msg

    # byte parity: cosign's payload is ours (our sign with its key and annotations finds it: no change),
    # and its .sig manifest and config are what we would write for those layers
    again = modules.ok("cosign_sign", {"ref": ref, "private_key": key, "key_password": THEIR_PASSWORD,
                                       "annotations": ANNOTATIONS, "plain_http": True})
    assert again["changed"] is False
    target = open_target(parse(ref), {"plain_http": True})
    sig_ref = parse(ref).replace(tag=cosign_engine.signature_tag(digest), digest=None)
    data = target.fetch_manifest(sig_ref)[0]
    layers = json.loads(data)["layers"]
    manifest, config = cosign_engine.signature_manifest(layers)
    assert manifest == data
    assert target.read_blob(json.loads(data)["config"]["digest"]) == config
    assert len(layers) == 1 and layers[0]["mediaType"] == mt.COSIGN_SIMPLESIGNING


@pytest.mark.parametrize("fmt", ["sigstore", "cosign-legacy"])
@pytest.mark.parametrize("version", sorted(COSIGNS))
def test_cosign_signs_with_our_key_files(registry, release, peers, modules, our_keys, version, fmt):
    private, public = our_keys[fmt]
    repo = "interop-cosign/our-key-%s-%s" % (version, fmt)
    ref, digest = push(registry.host, repo, release)
    cosign_sign(peers, version, private, OUR_PASSWORD, "%s/%s@%s" % (registry.host, repo, digest), {"signer": "cosign"})

    assert verified_payloads(cosign_verify(peers, version, public, ref, {"signer": "cosign"}))
    verified = modules.ok("cosign_verify", {"ref": ref, "public_key": public, "annotations": {"signer": "cosign"},
                                            "plain_http": True})
    assert verified["digest"] == digest


@pytest.mark.parametrize("version", sorted(COSIGNS))
def test_we_sign_with_cosign_generated_keys(registry, release, peers, modules, their_keys, version):
    key, pub = their_key(their_keys, peers, version)
    repo = "interop-cosign/their-key-%s" % version
    ref, digest = push(registry.host, repo, release)
    # the password from COSIGN_PASSWORD, as cosign takes it
    signed = modules.ok("cosign_sign", {"ref": ref, "private_key": key, "annotations": ANNOTATIONS, "plain_http": True},
                        env={"COSIGN_PASSWORD": THEIR_PASSWORD})
    assert signed["digest"] == digest
    payloads = verified_payloads(cosign_verify(peers, version, pub, ref, ANNOTATIONS))
    assert [p["critical"]["image"]["docker-manifest-digest"] for p in payloads] == [digest]
    modules.ok("cosign_verify", {"ref": ref, "public_key": pub, "plain_http": True})


def test_wrong_key_fails_on_both_sides(registry, release, peers, modules, our_keys, their_keys):
    key, pub = their_key(their_keys, peers, "v2")
    other_pub = our_keys["other"][1]
    ours_ref, unused = push(registry.host, "interop-cosign/wrong-key-ours", release)
    modules.ok("cosign_sign", {"ref": ours_ref, "private_key": our_keys["sigstore"][0], "key_password": OUR_PASSWORD,
                               "plain_http": True})
    theirs_ref, digest = push(registry.host, "interop-cosign/wrong-key-theirs", release)
    cosign_sign(peers, "v2", key, THEIR_PASSWORD, "%s/interop-cosign/wrong-key-theirs@%s" % (registry.host, digest))

    for ref in (ours_ref, theirs_ref):
        for version in sorted(COSIGNS):
            assert_refused(cosign_verify(peers, version, other_pub, ref))
        run = modules("cosign_verify", {"ref": ref, "public_key": other_pub, "plain_http": True})
        assert run.failed and "none of the 1 signature(s)" in run.msg, run.msg
    # and the right keys pass, so the refusals above are about the key
    assert verified_payloads(cosign_verify(peers, "v2", our_keys["sigstore"][1], ours_ref))
    assert verified_payloads(cosign_verify(peers, "v2", pub, theirs_ref))


# --- over TLS with a login -----------------------------------------------------------------------

def test_tls_registry_with_login(tls_registry, release, peers, modules, our_keys, their_keys, tmp_path):
    key, pub = their_key(their_keys, peers, "v2")
    user, password = tls_registry.credentials
    connection = {"ca_path": tls_registry.ca_path, "username": user, "password": password}
    docker_dir = tmp_path / "docker"
    tls_registry.docker_config(str(docker_dir))
    cosign_env = {"SSL_CERT_FILE": tls_registry.ca_path, "DOCKER_CONFIG": str(docker_dir)}

    ref, digest = push(tls_registry.host, "interop-cosign/tls", release, connection=connection)
    modules.ok("cosign_sign", dict(connection, ref=ref, private_key=our_keys["sigstore"][0],
                                   key_password=OUR_PASSWORD, annotations=ANNOTATIONS))
    for version in sorted(COSIGNS):
        peers.require(COSIGNS[version])
        payloads = verified_payloads(cosign_verify(peers, version, our_keys["sigstore"][1], ref, ANNOTATIONS,
                                                   extra=[], env=cosign_env))
        assert [p["critical"]["image"]["docker-manifest-digest"] for p in payloads] == [digest]
    # without the login cosign is refused: the registry really checks it
    anonymous = cosign_verify(peers, "v2", our_keys["sigstore"][1], ref, extra=[],
                              env={"SSL_CERT_FILE": tls_registry.ca_path})
    assert anonymous.returncode != 0 and "UNAUTHORIZED" in anonymous.stderr.upper(), anonymous.stderr

    cosign_sign(peers, "v2", key, THEIR_PASSWORD, "%s/interop-cosign/tls@%s" % (tls_registry.host, digest),
                {"signer": "cosign"}, extra=[], env=cosign_env)
    verified = modules.ok("cosign_verify", dict(connection, ref=ref, public_key=pub, annotations={"signer": "cosign"}))
    assert verified["digest"] == digest
    # both signatures live in one .sig manifest: ours was kept when cosign appended its own
    modules.ok("cosign_verify", dict(connection, ref=ref, public_key=our_keys["sigstore"][1], annotations=ANNOTATIONS))
