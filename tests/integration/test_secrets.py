"""No secret in any output, at -vvv, whether the run works or fails.

The modules (cosign_keypair, cosign_sign, cosign_verify, onmetal_push, onmetal_info) and the
publish playbook run against a TLS registry with htpasswd auth at ``-vvv``. Their stdout,
stderr and results, and every file left in the folders the runs used (HOME, TMPDIR, ansible's
local and remote temporary folders, the test's own folder, the registry's storage and logs),
are searched for:

- the registry password (also as the ``user:password`` base64 of a Basic header), the right one
  and a wrong one;
- the key password, right and wrong;
- the private key: its PKCS#8 and SEC1 DER (base64, PEM body, raw bytes), the private scalar
  (hex, decimal, base64, raw), the encrypted key file's base64 body and the ciphertext in it, and
  the scrypt-derived secretbox key.

Passwords are distinctive random strings, so a match is a leak. Long base64 secrets are searched
as overlapping 24-character windows, so a leak wrapped at another width is still found.
The encrypted key file itself is the one file allowed to hold its own body.

Failing runs whose secrets would be module arguments run as a one-task playbook with the values
in variables (as a user writes them): ansible-core 2.19 prints the start of an ad-hoc command's
``-a`` text under "Origin:" when the task fails, which would show what the test itself typed on
the command line, not anything the collection wrote.
"""

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign_keys
from ansible_collections.gardenlinux.onmetal.tests.support import registry as registry_support
from ansible_collections.gardenlinux.onmetal.tests.support.ansible import REPO_ROOT, run_module, run_playbook

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

REGISTRY_USER = "onmetal"
REGISTRY_PASSWORD = "RegPw-" + secrets.token_hex(12)
WRONG_REGISTRY_PASSWORD = "WrongRegPw-" + secrets.token_hex(12)
KEY_PASSWORD = "KeyPw-" + secrets.token_hex(12)
WRONG_KEY_PASSWORD = "WrongKeyPw-" + secrets.token_hex(12)
PASSWORDS = (REGISTRY_PASSWORD, WRONG_REGISTRY_PASSWORD, KEY_PASSWORD, WRONG_KEY_PASSWORD)
VERBOSITY = 3
WINDOW = 24
STRIDE = 8


@pytest.fixture(scope="module")
def secret_registry(require_docker_registry, tmp_path_factory):
    """A TLS registry with htpasswd auth whose password is REGISTRY_PASSWORD."""
    try:
        reg = registry_support.Registry(tmp_path_factory.mktemp("secret-registry"), tls=True, auth=True,
                                        username=REGISTRY_USER, password=REGISTRY_PASSWORD,
                                        binary=require_docker_registry).start()
    except registry_support.RegistryUnavailable as exc:
        pytest.skip(str(exc))
    yield reg
    reg.stop()


# -- what counts as a secret ---------------------------------------------------------------


def _windows(text):
    text = "".join(text.split())
    if len(text) <= WINDOW:
        return {text}
    found = {text[i:i + WINDOW] for i in range(0, len(text) - WINDOW + 1, STRIDE)}
    found.add(text[-WINDOW:])
    return found


def _b64(data):
    return base64.b64encode(data).decode("ascii")


ENCODING_NAMES = (
    "private key PKCS#8 DER (base64)", "private key PKCS#8 PEM body", "private key SEC1 DER (base64)",
    "private key SEC1 PEM body", "private key base64url", "private key PKCS#8 DER (hex)", "private scalar (hex)",
    "private scalar (HEX)", "private scalar (decimal)", "private scalar (base64)",
)


def _der(key):
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    sec1 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
    return pkcs8, sec1


def _pem_body(key, fmt):
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()
    return "".join(pem.split("-----")[2].split())


def _encodings(key):
    """The private key's usual spellings, in ENCODING_NAMES order."""
    pkcs8, sec1 = _der(key)
    scalar = key.private_numbers().private_value
    return (
        _b64(pkcs8), _pem_body(key, serialization.PrivateFormat.PKCS8), _b64(sec1),
        _pem_body(key, serialization.PrivateFormat.TraditionalOpenSSL), base64.urlsafe_b64encode(pkcs8).decode(),
        pkcs8.hex(), "%064x" % scalar, "%064X" % scalar, str(scalar), _b64(scalar.to_bytes(32, "big")),
    )


class Secrets:
    """Text needles (for outputs and files) and byte needles (for files) with their names."""

    def __init__(self):
        self.text = {}     # needle -> what it is
        self.binary = {}   # bytes needle -> what it is
        # Text that is public or mere structure (every P-256 key's DER starts alike): windows found
        # in it are not secrets. Two unrelated keys' encodings give the structure.
        self.public = ""
        for unused in range(2):
            self.public += "\n".join(_encodings(ec.generate_private_key(ec.SECP256R1())))
        for password in PASSWORDS:
            self.text[password] = "password %s..." % password[:10]
        for password in (REGISTRY_PASSWORD, WRONG_REGISTRY_PASSWORD):
            basic = _b64(("%s:%s" % (REGISTRY_USER, password)).encode())
            self.text[basic.rstrip("=")] = "Basic auth header of %s..." % password[:10]

    def add_text(self, what, text):
        for window in _windows(text):
            if window not in self.public:
                self.text[window] = what

    def add_key_file(self, path, password):
        """Everything secret about an encrypted cosign key file and its password."""
        pem = path.read_bytes()
        label, envelope_bytes = cosign_keys.pem_decode(pem, "private_key")
        assert "ENCRYPTED" in label
        key = cosign_keys.load_private_key(pem, password)
        public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        public_pem = cosign_keys.public_pem(key).decode()
        point = key.public_key().public_numbers()
        self.public += "\n".join([
            public_pem, "".join(public_pem.split()), _b64(public_der),
            "%064x" % point.x, "%064x" % point.y, str(point.x), str(point.y),
        ])

        body = "".join(pem.decode().split("-----")[2].split())
        self.add_text("encrypted key file body (%s)" % path.name, body)
        envelope = json.loads(envelope_bytes)
        self.add_text("encrypted key ciphertext", envelope["ciphertext"])
        params = envelope["kdf"]["params"]
        derived = Scrypt(salt=base64.b64decode(envelope["kdf"]["salt"]), length=32, n=params["N"],
                         r=params["r"], p=params["p"]).derive(password.encode())
        self.add_text("scrypt-derived secretbox key (hex)", derived.hex())
        self.add_text("scrypt-derived secretbox key (base64)", _b64(derived))
        self.binary[derived] = "scrypt-derived secretbox key (raw)"

        pkcs8, sec1 = _der(key)
        scalar = key.private_numbers().private_value
        raw = scalar.to_bytes(32, "big")
        for what, text in zip(ENCODING_NAMES, _encodings(key)):
            self.add_text(what, text)
        self.binary[raw] = "private scalar (raw bytes)"
        self.binary[pkcs8[:48]] = "private key PKCS#8 DER (raw bytes)"
        self.binary[sec1[:40]] = "private key SEC1 DER (raw bytes)"
        self.binary[base64.b64decode(envelope["ciphertext"])[:48]] = "encrypted key ciphertext (raw bytes)"

    def found_in_text(self, text):
        return sorted({what for needle, what in self.text.items() if needle in text})

    def found_in_bytes(self, data):
        found = set()
        text = data.decode("latin-1")
        for needle, what in self.text.items():
            if needle in text:
                found.add(what)
        for needle, what in self.binary.items():
            if needle in data:
                found.add(what)
        return sorted(found)


class Sandbox:
    """The folders a test's ansible runs use, and every output they made."""

    def __init__(self, tmp_path, registry):
        self.root = tmp_path
        self.registry = registry
        self.home = tmp_path / "home"
        self.tmp = tmp_path / "tmp"
        for folder in (self.home, self.tmp):
            folder.mkdir()
        self.env = {
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "ANSIBLE_LOCAL_TEMP": str(self.tmp / "ansible-local"),
            "ANSIBLE_REMOTE_TEMP": str(self.tmp / "ansible-remote"),
        }
        self.runs = []          # (label, Run)
        self.key_files = []     # allowed to hold their own body
        self.secrets = Secrets()

    @property
    def conn(self):
        return {"username": self.registry.username, "password": self.registry.password,
                "ca_path": self.registry.ca_path}

    def module(self, label, name, args, env=None, expect_failure=False):
        run = run_module(name, args, verbosity=VERBOSITY, env=dict(self.env, **(env or {})))
        self.runs.append((label, run))
        assert run.failed == expect_failure, "%s: %s" % (label, run.output)
        return run

    def one_task_playbook(self, label, name, args, expect_failure=True):
        """The module in a playbook, its arguments templated from a variable."""
        path = self.root / ("%s.yml" % label.replace(" ", "-"))
        task = {"name": label, "gardenlinux.onmetal." + name: {
            key: "{{ module_args[%r] }}" % key for key in args}}
        play = [{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [task]}]
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        run = run_playbook(str(path), {"module_args": args}, verbosity=VERBOSITY, env=self.env)
        self.runs.append((label, run))
        assert (run.rc != 0) == expect_failure, "%s: %s" % (label, run.output)
        return run

    def playbook(self, label, extra_vars, expect_failure=False):
        run = run_playbook(str(REPO_ROOT / "playbooks" / "publish.yml"), extra_vars, verbosity=VERBOSITY, env=self.env)
        self.runs.append((label, run))
        assert (run.rc != 0) == expect_failure, "%s: %s" % (label, run.output)
        return run

    def files(self):
        skip = {os.path.realpath(str(path)) for path in self.key_files}
        for top in (self.root, self.registry.workdir):
            for folder, _dirs, names in os.walk(str(top)):
                for name in names:
                    path = os.path.join(folder, name)
                    if os.path.realpath(path) in skip or os.path.islink(path):
                        continue
                    yield path

    def assert_no_leak(self):
        assert (self.tmp / "ansible-remote").is_dir(), "the runs did not use the sandbox's remote tmp"
        leaks = []
        for label, run in self.runs:
            assert "<localhost> EXEC" in run.output, "%s did not run at -vvv" % label
            for where, text in (("output", run.output), ("result", json.dumps(run.result, default=str))):
                for what in self.secrets.found_in_text(text):
                    leaks.append("%s: %s in the %s" % (label, what, where))
        scanned = 0
        for path in self.files():
            with open(path, "rb") as f:
                data = f.read()
            scanned += 1
            for what in self.secrets.found_in_bytes(data):
                leaks.append("%s in the file %s" % (what, path))
        assert scanned > 0
        assert leaks == [], "\n".join(leaks)


def check_failure(run, *needles):
    text = run.output
    for needle in needles:
        assert needle in text, "%r not in:\n%s" % (needle, text)


def make_release(folder, cname):
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "sample_release.py"), str(folder), "--cname", cname,
                    "--version", "1.0", "--rootfs-mib", "1", "--initrd-mib", "0.25", "--kernel-mib", "0.25"],
                   check=True, capture_output=True)
    return folder


def make_keys(box, folder):
    key = folder / "cosign.key"
    box.module("cosign_keypair", "cosign_keypair", {"private_key": str(key), "password": KEY_PASSWORD})
    box.key_files.append(key)
    box.secrets.add_key_file(key, KEY_PASSWORD)
    return key, folder / "cosign.pub"


# -- the tests ------------------------------------------------------------------------------


def test_modules_at_vvv_leak_nothing(secret_registry, tmp_path):
    box = Sandbox(tmp_path, secret_registry)
    (tmp_path / "keys").mkdir()
    key, pub = make_keys(box, tmp_path / "keys")

    files = {}
    for role, size in (("rootfs", 8192), ("kernel", 1024), ("initramfs", 2048)):
        files[role] = str(tmp_path / role)
        (tmp_path / role).write_bytes(os.urandom(size))
    ref = "%s/secrets/image:1.0" % secret_registry.host
    pushed = box.module("push", "onmetal_push", dict(files, ref=ref, command_line="root=LABEL=ROOT", **box.conn))
    digest = pushed.result["digest"]
    box.module("info", "onmetal_info", dict(ref=ref, **box.conn))
    signed = box.module("sign", "cosign_sign", dict(ref=ref, private_key=str(key), key_password=KEY_PASSWORD,
                                                    **box.conn))
    assert signed.result["changed"] is True and signed.result["digest"] == digest
    again = box.module("sign again", "cosign_sign", dict(ref=ref, private_key=str(key), key_password=KEY_PASSWORD,
                                                         **box.conn))
    assert again.result["changed"] is False
    env_signed = box.module("sign, COSIGN_PASSWORD", "cosign_sign",
                            dict(ref=ref, private_key=str(key), annotations={"by": "env"}, **box.conn),
                            env={"COSIGN_PASSWORD": KEY_PASSWORD})
    assert env_signed.result["signatures"] == 2
    verified = box.module("verify", "cosign_verify", dict(ref=ref, public_key=str(pub), **box.conn))
    assert verified.result["digest"] == digest and len(verified.result["payloads"]) == 2
    pub.unlink()
    derived = box.module("derive public key", "cosign_keypair", {"private_key": str(key), "password": KEY_PASSWORD})
    assert derived.result["changed"] is True and pub.is_file()
    box.module("info with signatures", "onmetal_info", dict(ref=ref, **box.conn))

    # Failing runs.
    wrong_registry = dict(box.conn, password=WRONG_REGISTRY_PASSWORD)
    run = box.one_task_playbook("push wrong registry password", "onmetal_push",
                                dict(files, ref="%s/secrets/other:1.0" % secret_registry.host,
                                     command_line="x", **wrong_registry))
    check_failure(run, "FAILED")
    box.one_task_playbook("info wrong registry password", "onmetal_info", dict(ref=ref, **wrong_registry))
    box.one_task_playbook("sign wrong registry password", "cosign_sign",
                          dict(ref=ref, private_key=str(key), key_password=KEY_PASSWORD, annotations={"n": "2"},
                               **wrong_registry))
    run = box.one_task_playbook("sign wrong key password", "cosign_sign",
                                dict(ref=ref, private_key=str(key), key_password=WRONG_KEY_PASSWORD, **box.conn))
    check_failure(run, "key_password: cannot decrypt the private key")
    box.one_task_playbook("verify wrong registry password", "cosign_verify",
                          dict(ref=ref, public_key=str(pub), **wrong_registry))
    pub.unlink()
    box.one_task_playbook("derive public key wrong password", "cosign_keypair",
                          {"private_key": str(key), "password": WRONG_KEY_PASSWORD})
    # No secret in the -a text here: the key password comes from the environment.
    run = box.module("sign wrong COSIGN_PASSWORD", "cosign_sign", dict(ref=ref, private_key=str(key), **{
        k: v for k, v in box.conn.items() if k != "password"}), env={"COSIGN_PASSWORD": WRONG_KEY_PASSWORD},
        expect_failure=True)
    check_failure(run, "key_password")
    run = box.module("keypair wrong COSIGN_PASSWORD", "cosign_keypair", {"private_key": str(key)},
                     env={"COSIGN_PASSWORD": WRONG_KEY_PASSWORD}, expect_failure=True)
    check_failure(run, "password")
    box.assert_no_leak()


def test_publish_playbook_at_vvv_leaks_nothing(secret_registry, tmp_path):
    box = Sandbox(tmp_path, secret_registry)
    (tmp_path / "keys").mkdir()
    key, pub = make_keys(box, tmp_path / "keys")
    release = make_release(tmp_path / "release", "kvm-amd64-1.0-secret01")
    extra = {
        "publish_release_dir": str(release),
        "publish_target": "%s/secrets/publish" % secret_registry.host,
        "publish_username": REGISTRY_USER,
        "publish_password": REGISTRY_PASSWORD,
        "publish_ca_path": secret_registry.ca_path,
        "publish_private_key": str(key),
        "publish_key_password": KEY_PASSWORD,
        "publish_public_key": str(pub),
    }
    run = box.playbook("publish", extra)
    summary = [result for name, unused, result in run.result["tasks"] if name == "Summary"][0]
    assert "signed and verified" in summary["results"][0]["msg"], run.output

    run = box.playbook("publish wrong registry password", dict(extra, publish_password=WRONG_REGISTRY_PASSWORD),
                       expect_failure=True)
    assert [name for name, status, unused in run.result["tasks"] if status == "failed"], run.output
    # A target not signed yet, so that signing needs the private key (an existing signature may
    # be recognised with the public key alone, without decrypting the private key).
    run = box.playbook("publish wrong key password", dict(
        extra, publish_key_password=WRONG_KEY_PASSWORD,
        publish_target="%s/secrets/publish-unsigned" % secret_registry.host), expect_failure=True)
    failed = [(name, result) for name, status, result in run.result["tasks"] if status == "failed"]
    assert [name for name, unused in failed] == ["Sign the image"], run.output
    assert failed[0][1]["msg"].startswith("key_password:"), failed
    box.assert_no_leak()


def test_sandbox_finds_a_planted_leak(secret_registry, tmp_path):
    """The search itself works: planted secrets in an output and in a file are found."""
    box = Sandbox(tmp_path, secret_registry)
    (tmp_path / "keys").mkdir()
    key, _pub = make_keys(box, tmp_path / "keys")
    pem = key.read_bytes()
    plain = cosign_keys.load_private_key(pem, KEY_PASSWORD).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (box.tmp / "leftover").write_bytes(plain)
    shutil.copyfile(str(key), str(box.tmp / "copy-of-key"))
    with pytest.raises(AssertionError) as caught:
        box.assert_no_leak()
    message = str(caught.value)
    assert "private key PKCS#8 PEM body in the file %s" % (box.tmp / "leftover") in message
    assert "encrypted key file body (cosign.key) in the file %s" % (box.tmp / "copy-of-key") in message
    assert str(key) + "\n" not in message  # the key file itself is not reported
    assert box.secrets.found_in_text("x" + KEY_PASSWORD + "x") != []
    assert box.secrets.found_in_text(base64.b64encode(("onmetal:" + REGISTRY_PASSWORD).encode()).decode()) != []
