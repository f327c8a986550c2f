"""cosign key files: the real cosign's files load, ours have its exact envelope, bad ones are refused."""

import base64
import json
import re
import subprocess
import sys

import pytest

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign_keys as ck
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# ../shared/testvectors/cosign/keys/README.md: file, password, label format, scrypt N.
LOADABLE = [
    ("pemcosignkey.pem", "hello", "cosign-legacy", 32768),
    ("pemsigstorekey.pem", "hello", "sigstore", 32768),
    ("sigstore-rs_cosign_generated_encrypted_empty_private.key", "", "sigstore", 65536),
    ("sigstore-rs_ecdsa_encrypted_private.key", "123", "cosign-legacy", 32768),
]
ENVELOPE_RE = re.compile(
    r'^\{"kdf":\{"name":"scrypt","params":\{"N":(\d+),"r":8,"p":1\},"salt":"([A-Za-z0-9+/=]+)"\},'
    r'"cipher":\{"name":"nacl/secretbox","nonce":"([A-Za-z0-9+/=]+)"\},"ciphertext":"([A-Za-z0-9+/=]+)"\}$'
)


@pytest.fixture(scope="module")
def keys_dir(shared_dir):
    return shared_dir / "testvectors" / "cosign" / "keys"


def _pkcs8(key):
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _encrypted_pem(plaintext, password="pw", n=32768, label=ck.SIGSTORE_LABEL):
    return ck.pem_encode(label, ck.encrypt_envelope(plaintext, password, n))


def _pem_with_params(n=65536, r=8, p=1, label=ck.SIGSTORE_LABEL):
    """An envelope whose parameters are refused before any KDF work is done."""
    body = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": base64.b64encode(b"s" * 32).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(b"n" * 24).decode()},
        "ciphertext": base64.b64encode(b"c" * 80).decode(),
    }
    return ck.pem_encode(label, json.dumps(body).encode())


def _assert_one_clean_line(err, *secrets):
    text = str(err)
    assert "\n" not in text
    for secret in secrets:
        assert secret not in text


# -- the real cosign's key files ------------------------------------------------------------


@pytest.mark.parametrize("name, password, fmt, n", LOADABLE)
def test_real_cosign_key_loads(keys_dir, name, password, fmt, n):
    data = (keys_dir / name).read_bytes()
    key = ck.load_private_key(data, password)
    assert isinstance(key.curve, ec.SECP256R1)
    assert ck.key_format(data) == (fmt, n)
    # What cryptography writes as PKCS#8 is byte-identical to the plaintext Go wrote.
    der = ck.pem_decode(data, "private_key")[1]
    assert ck.decrypt_envelope(der, password) == _pkcs8(key)
    payload = cosign.payload_bytes("example.com/x", "sha256:" + "0" * 64)
    assert cosign.verify_payload(key.public_key(), payload, cosign.sign_payload(key, payload))


def test_real_cosign_sec1_key_is_refused(keys_dir):
    with pytest.raises(OnmetalError) as err:
        ck.load_private_key((keys_dir / "pemcosigneckey.pem").read_bytes(), "hello")
    assert err.value.option == "private_key"
    assert "not a PKCS#8 key" in str(err.value)
    _assert_one_clean_line(err.value, "hello")


@pytest.mark.parametrize("name, password, fmt, n", LOADABLE)
def test_real_cosign_key_wrong_password(keys_dir, name, password, fmt, n):
    data = (keys_dir / name).read_bytes()
    with pytest.raises(OnmetalError) as err:
        ck.load_private_key(data, password + "-wrong")
    assert err.value.option == "password"
    assert "wrong password" in str(err.value)
    body_lines = data.decode().splitlines()[1:-1]
    _assert_one_clean_line(err.value, password + "-wrong", *[line[:16] for line in body_lines])


def test_real_cosign_public_keys_load(shared_dir):
    for name in ("cosign.pub", "cosign2.pub"):
        key = ck.load_public_key((shared_dir / "testvectors" / "cosign" / "signatures" / name).read_bytes())
        assert isinstance(key.curve, ec.SECP256R1)


# -- what we write -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, label, n", [("sigstore", ck.SIGSTORE_LABEL, 65536), ("cosign-legacy", ck.COSIGN_LABEL, 32768)])
def test_generate_round_trip(fmt, label, n):
    private_pem, public_pem = ck.generate_keypair("s3cret", fmt=fmt)
    text = private_pem.decode("ascii")
    lines = text.split("\n")
    assert lines[0] == "-----BEGIN %s-----" % label
    assert lines[-2:] == ["-----END %s-----" % label, ""]
    assert all(len(line) == 64 for line in lines[1:-3]) and 0 < len(lines[-3]) <= 64
    envelope = base64.b64decode("".join(lines[1:-2]))
    match = ENVELOPE_RE.match(envelope.decode("ascii"))
    assert match, envelope
    assert int(match.group(1)) == n
    assert len(base64.b64decode(match.group(2))) == 32
    assert len(base64.b64decode(match.group(3))) == 24
    # secretbox adds a 16-byte tag to the 138-byte PKCS#8 of a P-256 key.
    assert len(base64.b64decode(match.group(4))) == 138 + 16
    assert ck.key_format(private_pem) == (fmt, n)

    key = ck.load_private_key(private_pem, "s3cret")
    assert ck.public_pem(key) == public_pem
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n") and public_pem.endswith(b"-----END PUBLIC KEY-----\n")
    public = ck.load_public_key(public_pem)
    payload = b'{"x":1}'
    assert cosign.verify_payload(public, payload, cosign.sign_payload(key, payload))


def test_generate_fresh_salt_nonce_and_key():
    a = ck.generate_keypair("pw", fmt="cosign-legacy")
    b = ck.generate_keypair("pw", fmt="cosign-legacy")
    assert a[0] != b[0] and a[1] != b[1]


def test_empty_password_round_trip():
    private_pem = ck.generate_keypair("", fmt="cosign-legacy")[0]
    ck.load_private_key(private_pem, "")
    with pytest.raises(OnmetalError, match="wrong password"):
        ck.load_private_key(private_pem, " ")


def test_unknown_format_refused():
    with pytest.raises(OnmetalError) as err:
        ck.generate_keypair("pw", fmt="pkcs12")
    assert err.value.option == "format"


def test_owasp_n_loads():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _encrypted_pem(_pkcs8(key), n=131072)
    assert ck.key_format(pem) == ("sigstore", 131072)
    assert ck.load_private_key(pem, "pw").private_numbers() == key.private_numbers()


@pytest.mark.parametrize("n, r, p", [(16384, 8, 1), (262144, 8, 1), (1048576, 8, 1), (65536, 16, 1), (65536, 8, 2), (True, 8, 1)])
def test_other_scrypt_parameters_refused(n, r, p):
    with pytest.raises(OnmetalError) as err:
        ck.load_private_key(_pem_with_params(n, r, p), "pw")
    assert "unsupported scrypt parameters" in str(err.value)
    assert err.value.option == "private_key"


def test_sec1_plaintext_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    sec1 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert not ck.is_pkcs8(sec1) and ck.is_pkcs8(_pkcs8(key))
    with pytest.raises(OnmetalError, match="not a PKCS#8 key"):
        ck.load_private_key(_encrypted_pem(sec1), "pw")


def test_other_curve_refused():
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(OnmetalError, match="only ECDSA P-256"):
        ck.load_private_key(_encrypted_pem(_pkcs8(key)), "pw")
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(OnmetalError, match="only ECDSA P-256"):
        ck.load_public_key(pub)


def test_public_key_given_as_private_refused():
    public_pem = ck.generate_keypair("pw", fmt="cosign-legacy")[1]
    with pytest.raises(OnmetalError) as err:
        ck.load_private_key(public_pem, "pw")
    assert err.value.option == "private_key"
    assert "public key" in str(err.value)


def test_private_key_given_as_public_refused():
    private_pem = ck.generate_keypair("pw", fmt="cosign-legacy")[0]
    with pytest.raises(OnmetalError) as err:
        ck.load_public_key(private_pem)
    assert err.value.option == "public_key"
    assert "private key" in str(err.value)
    _assert_one_clean_line(err.value, private_pem.decode().splitlines()[1][:16])


def test_plaintext_pem_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(OnmetalError, match="cosign reads only"):
        ck.load_private_key(plain, "pw")


@pytest.mark.parametrize("data", [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"])
def test_garbage_refused(data):
    with pytest.raises(OnmetalError):
        ck.load_public_key(data)
    with pytest.raises(OnmetalError):
        ck.load_private_key(data, "pw")


def test_wrong_password_one_line_without_secrets():
    private_pem = ck.generate_keypair("correct horse", fmt="cosign-legacy")[0]
    with pytest.raises(OnmetalError) as err:
        ck.load_private_key(private_pem, "battery staple")
    assert str(err.value) == "password: cannot decrypt the private key: wrong password (or a damaged key file)"


def test_password_none_refused():
    private_pem = ck.generate_keypair("pw", fmt="cosign-legacy")[0]
    with pytest.raises(OnmetalError) as err:
        ck.load_private_key(private_pem, None)
    assert err.value.option == "password"


def test_password_bytes_and_unicode():
    private_pem = ck.generate_keypair("pässwört", fmt="cosign-legacy")[0]
    ck.load_private_key(private_pem, "pässwört".encode("utf-8"))


def test_resolve_password(monkeypatch):
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    assert ck.resolve_password("x") == "x"
    assert ck.resolve_password("") == ""
    with pytest.raises(OnmetalError) as err:
        ck.resolve_password(None)
    assert err.value.option == "password"
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    assert ck.resolve_password(None) == ""
    monkeypatch.setenv("COSIGN_PASSWORD", "from-env")
    assert ck.resolve_password(None) == "from-env"
    assert ck.resolve_password("explicit") == "explicit"


def test_missing_libraries_give_one_clear_line(monkeypatch):
    monkeypatch.setattr(ck, "ec", None)
    with pytest.raises(OnmetalError, match="'cryptography' is required"):
        ck.generate_keypair("pw")
    monkeypatch.undo()
    monkeypatch.setattr(ck, "nacl", None)
    with pytest.raises(OnmetalError, match="'PyNaCl' is required"):
        ck.generate_keypair("pw")


def test_imports_without_third_party_libraries(repo_root):
    # module_utils must import where cryptography and PyNaCl are missing, and say so at use time.
    code = (
        "import sys\n"
        "for name in ('cryptography', 'nacl'):\n"
        "    sys.modules[name] = None\n"
        "sys.path.insert(0, %r)\n"
        "from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign, cosign_keys\n"
        "from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError\n"
        "try:\n"
        "    cosign_keys.generate_keypair('pw')\n"
        "except OnmetalError as e:\n"
        "    print(e)\n"
    ) % str(repo_root / ".collections")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "password: the Python library 'cryptography' is required for cosign keys and signatures\n"
