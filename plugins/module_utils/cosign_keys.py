# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cosign key files, read and written as cosign does (SPEC.md section 5).

A private key file is PEM `ENCRYPTED SIGSTORE PRIVATE KEY` (or the older
`ENCRYPTED COSIGN PRIVATE KEY`) around go-securesystemslib's `encrypted` envelope:
scrypt derives a NaCl secretbox key from the password, the plaintext is PKCS#8 DER.
The public key is a `PUBLIC KEY` PEM (SubjectPublicKeyInfo).

No message raised here ever holds a password or key bytes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import re

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.oci import OrderedStruct, go_json

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
except ImportError:
    ec = None

try:
    import nacl.exceptions
    import nacl.secret
except ImportError:
    nacl = None

SIGSTORE_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
PUBLIC_LABEL = "PUBLIC KEY"

# format -> (PEM label, scrypt N). cosign < 2.2 reads only N=32768, cosign < 2.0.1 only the COSIGN label.
FORMATS = {
    "sigstore": (SIGSTORE_LABEL, 65536),
    "cosign-legacy": (COSIGN_LABEL, 32768),
}
# go-securesystemslib's Legacy, Standard and OWASP strengths; anything else is refused
# there, so that a tampered file cannot make the KDF eat all memory.
SCRYPT_N = (32768, 65536, 131072)
SCRYPT_R = 8
SCRYPT_P = 1
SALT_SIZE = 32
NONCE_SIZE = 24
KEY_SIZE = 32

_PEM_RE = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)


def require_crypto(option=None):
    if ec is None:
        raise OnmetalError("the Python library 'cryptography' is required for cosign keys and signatures", option=option)


def _require_nacl(option=None):
    if nacl is None:
        raise OnmetalError("the Python library 'PyNaCl' is required for cosign private keys (NaCl secretbox)", option=option)


def resolve_password(explicit, option="password"):
    """The key password: the explicit one, else COSIGN_PASSWORD (cosign honours it even when empty)."""
    if explicit is not None:
        return explicit
    env = os.environ.get("COSIGN_PASSWORD")
    if env is not None:
        return env
    raise OnmetalError("a key password is required: set it or the environment variable COSIGN_PASSWORD (may be empty)", option=option)


def _password_bytes(password, option):
    if password is None:
        raise OnmetalError("a key password is required (it may be empty)", option=option)
    if isinstance(password, bytes):
        return password
    if isinstance(password, str):
        return password.encode("utf-8")
    raise OnmetalError("the key password must be a string", option=option)


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _unb64(text, what, option):
    # Go's decoder skips CR and LF inside base64 text; nothing else.
    if not isinstance(text, str):
        raise OnmetalError("the key file's %s is not base64 text" % what, option=option)
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (ValueError, TypeError):
        raise OnmetalError("the key file's %s is not valid base64" % what, option=option)


def pem_encode(label, der):
    """PEM as Go's pem.EncodeToMemory writes it: 64-column base64, trailing newline."""
    body = _b64(der)
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)).encode("ascii")


def pem_decode(data, option, what="key file"):
    """(label, DER bytes) of the first PEM block, like Go's pem.Decode."""
    if isinstance(data, bytes):
        data = data.decode("ascii", "replace")
    match = _PEM_RE.search(data or "")
    if not match:
        raise OnmetalError("the %s is not PEM (no -----BEGIN ...----- block)" % what, option=option)
    body = match.group(2)
    if ":" in body.split("\n", 1)[0]:
        # RFC 1421 headers (Proc-Type: 4,ENCRYPTED ...): OpenSSL-encrypted PEM, which cosign does not write.
        raise OnmetalError("the %s is an OpenSSL-encrypted PEM (%s); cosign keys are not" % (what, match.group(1)), option=option)
    return match.group(1), _unb64(body, "PEM body", option)


# -- the encrypted envelope ------------------------------------------------------


def _scrypt_key(password, salt, n):
    return Scrypt(salt=salt, length=KEY_SIZE, n=n, r=SCRYPT_R, p=SCRYPT_P).derive(password)


def encrypt_envelope(plaintext, password, n=65536, option="password"):
    """go-securesystemslib encrypted.Encrypt: the JSON bytes, fields in its struct order."""
    require_crypto(option)
    _require_nacl(option)
    if n not in SCRYPT_N:
        raise OnmetalError("scrypt N must be one of %s" % ", ".join(map(str, SCRYPT_N)), option=option)
    salt = os.urandom(SALT_SIZE)
    nonce = os.urandom(NONCE_SIZE)
    key = _scrypt_key(_password_bytes(password, option), salt, n)
    ciphertext = nacl.secret.SecretBox(key).encrypt(plaintext, nonce).ciphertext
    params = OrderedStruct([("N", n), ("r", SCRYPT_R), ("p", SCRYPT_P)])
    kdf = OrderedStruct([("name", "scrypt"), ("params", params), ("salt", _b64(salt))])
    cipher = OrderedStruct([("name", "nacl/secretbox"), ("nonce", _b64(nonce))])
    return go_json(OrderedStruct([("kdf", kdf), ("cipher", cipher), ("ciphertext", _b64(ciphertext))]))


def envelope_params(envelope, option="private_key"):
    """Checked (N, salt, nonce, ciphertext) of an envelope; refuses what go-securesystemslib refuses."""
    try:
        value = json.loads(envelope.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise OnmetalError("the private key's encrypted body is not the JSON cosign writes", option=option)
    if not isinstance(value, dict):
        raise OnmetalError("the private key's encrypted body is not a JSON object", option=option)
    kdf = value.get("kdf") if isinstance(value.get("kdf"), dict) else {}
    cipher = value.get("cipher") if isinstance(value.get("cipher"), dict) else {}
    params = kdf.get("params") if isinstance(kdf.get("params"), dict) else {}
    if kdf.get("name") != "scrypt":
        raise OnmetalError("the private key uses the KDF %r; cosign keys use scrypt" % (kdf.get("name"),), option=option)
    if cipher.get("name") != "nacl/secretbox":
        raise OnmetalError("the private key uses the cipher %r; cosign keys use nacl/secretbox" % (cipher.get("name"),), option=option)
    n, r, p = params.get("N"), params.get("r"), params.get("p")
    if n not in SCRYPT_N or r != SCRYPT_R or p != SCRYPT_P or isinstance(n, bool):
        raise OnmetalError(
            "the private key has unsupported scrypt parameters N=%s r=%s p=%s (cosign accepts N %s with r=8 p=1)"
            % (n, r, p, "/".join(map(str, SCRYPT_N))),
            option=option,
        )
    salt = _unb64(kdf.get("salt"), "salt", option)
    nonce = _unb64(cipher.get("nonce"), "nonce", option)
    ciphertext = _unb64(value.get("ciphertext"), "ciphertext", option)
    if len(nonce) != NONCE_SIZE:
        raise OnmetalError("the private key's nonce is %d bytes, not %d" % (len(nonce), NONCE_SIZE), option=option)
    return n, salt, nonce, ciphertext


def decrypt_envelope(envelope, password, option="private_key", password_option="password"):
    require_crypto(option)
    _require_nacl(option)
    n, salt, nonce, ciphertext = envelope_params(envelope, option)
    key = _scrypt_key(_password_bytes(password, password_option), salt, n)
    try:
        return nacl.secret.SecretBox(key).decrypt(ciphertext, nonce)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise OnmetalError("cannot decrypt the private key: wrong password (or a damaged key file)", option=password_option)


# -- keys -------------------------------------------------------------------------


def _der_header(data, pos):
    """(tag, start, end) of the DER element at pos."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("DER element overruns")
    return tag, pos, pos + length


def is_pkcs8(der):
    """PrivateKeyInfo is SEQUENCE{INTEGER, SEQUENCE algorithm, ...}; SEC1 has an OCTET STRING second."""
    try:
        tag, start = _der_header(der, 0)[:2]
        if tag != 0x30:
            return False
        tag, end = _der_header(der, start)[::2]
        if tag != 0x02:
            return False
        return _der_header(der, end)[0] == 0x30
    except (IndexError, ValueError):
        return False


def _check_p256(key, option, what):
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        raise OnmetalError("the %s is a %s key; only ECDSA P-256 keys are supported" % (what, _kind(key)), option=option)
    if not isinstance(key.curve, ec.SECP256R1):
        raise OnmetalError("the %s is on curve %s; only ECDSA P-256 keys are supported" % (what, key.curve.name), option=option)
    return key


def _kind(key):
    name = type(key).__name__
    for kind in ("RSA", "Ed25519", "Ed448", "DSA", "X25519", "X448"):
        if name.startswith(kind) or name.startswith("_" + kind):
            return kind
    return "non-ECDSA"


def generate_keypair(password, fmt="sigstore", option="password"):
    """A new ECDSA P-256 pair as cosign generate-key-pair writes it: (private PEM, public PEM) bytes."""
    require_crypto(option)
    if fmt not in FORMATS:
        raise OnmetalError("unknown key format %r (use %s)" % (fmt, " or ".join(sorted(FORMATS))), option="format")
    label, n = FORMATS[fmt]
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem_encode(label, encrypt_envelope(der, password, n, option)), public_pem(key)


def public_pem(key):
    """The `PUBLIC KEY` PEM of a private or public key."""
    require_crypto()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_format(pem_bytes, option="private_key"):
    """('sigstore'|'cosign-legacy', N) of an encrypted key file, without the password."""
    label, der = pem_decode(pem_bytes, option, "private key")
    fmt = {SIGSTORE_LABEL: "sigstore", COSIGN_LABEL: "cosign-legacy"}.get(label)
    if fmt is None:
        raise OnmetalError("the private key is PEM %r, not a cosign key" % label, option=option)
    return fmt, envelope_params(der, option)[0]


def load_private_key(pem_bytes, password, option="private_key", password_option="password"):
    """The ECDSA P-256 private key of a cosign key file (either label, N 32768/65536/131072)."""
    require_crypto(option)
    label, der = pem_decode(pem_bytes, option, "private key")
    if label == PUBLIC_LABEL:
        raise OnmetalError("this is a public key (PEM PUBLIC KEY); give the private key file (cosign.key)", option=option)
    if label not in (SIGSTORE_LABEL, COSIGN_LABEL):
        raise OnmetalError(
            "the private key is PEM %r; cosign reads only %r or %r (cosign import-key-pair converts other keys)"
            % (label, SIGSTORE_LABEL, COSIGN_LABEL),
            option=option,
        )
    plain = decrypt_envelope(der, password, option, password_option)
    if not is_pkcs8(plain):
        raise OnmetalError(
            "not a PKCS#8 key: the decrypted key is SEC1 (EC PRIVATE KEY) or another format, which cosign refuses",
            option=option,
        )
    try:
        key = serialization.load_der_private_key(plain, password=None)
    except (ValueError, TypeError):
        raise OnmetalError("the decrypted private key is not a valid PKCS#8 key", option=option)
    except Exception as e:  # cryptography raises UnsupportedAlgorithm for unknown key types
        raise OnmetalError("the decrypted private key cannot be used (%s)" % type(e).__name__, option=option)
    return _check_p256(key, option, "private key")


def load_public_key(pem_bytes, option="public_key"):
    """The ECDSA P-256 public key of a `PUBLIC KEY` PEM (cosign.pub)."""
    require_crypto(option)
    label, der = pem_decode(pem_bytes, option, "public key")
    if "PRIVATE KEY" in label:
        raise OnmetalError("this is a private key (PEM %s); give the public key file (cosign.pub)" % label, option=option)
    if label != PUBLIC_LABEL:
        raise OnmetalError("the public key is PEM %r, not PUBLIC KEY" % label, option=option)
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError):
        raise OnmetalError("the public key is not a valid SubjectPublicKeyInfo", option=option)
    except Exception as e:
        raise OnmetalError("the public key cannot be used (%s)" % type(e).__name__, option=option)
    return _check_p256(key, option, "public key")
