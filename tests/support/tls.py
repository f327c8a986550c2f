"""Throw-away TLS material for test servers on loopback: a CA and a server certificate it signs.

Made with ``cryptography`` (a runtime requirement of the collection), ECDSA P-256, with the
extensions strict verifiers want (Python 3.13's VERIFY_X509_STRICT, Go's crypto/x509):
CA basicConstraints + keyUsage + SKI, server SAN (DNS and IP) + EKU serverAuth + AKI.
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1")


def _name(common_name):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gardenlinux.onmetal tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _validity(builder, days):
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(
        now + datetime.timedelta(days=days))


def _write(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def _key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TLSFiles:
    """Paths of the PEM files written by :func:`make_tls_files`."""

    def __init__(self, directory, ca_cert, ca_key, cert, key):
        self.directory = directory
        self.ca_cert = ca_cert
        self.ca_key = ca_key
        self.cert = cert
        self.key = key

    def __repr__(self):
        return "TLSFiles(%r)" % (self.directory,)


def make_tls_files(directory, hosts=DEFAULT_HOSTS, days=30):
    """Write ``ca.crt``, ``ca.key``, ``server.crt`` (leaf only) and ``server.key`` into ``directory``.

    ``hosts`` are the server certificate's subjectAltNames: IP literals become IP entries,
    everything else DNS entries.
    """
    os.makedirs(directory, exist_ok=True)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("gardenlinux.onmetal test CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = _validity(x509.CertificateBuilder(), days).subject_name(ca_name).issuer_name(
        ca_name).public_key(ca_key.public_key()).serial_number(x509.random_serial_number()).add_extension(
        x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
        x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                      data_encipherment=False, key_agreement=False, key_cert_sign=True,
                      crl_sign=True, encipher_only=False, decipher_only=False),
        critical=True).add_extension(ca_ski, critical=False).sign(ca_key, hashes.SHA256())

    sans = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))

    key = ec.generate_private_key(ec.SECP256R1())
    cert = _validity(x509.CertificateBuilder(), days).subject_name(_name(hosts[0])).issuer_name(
        ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number()).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True).add_extension(
        x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                      data_encipherment=False, key_agreement=False, key_cert_sign=False,
                      crl_sign=False, encipher_only=False, decipher_only=False),
        critical=True).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False).add_extension(
        x509.SubjectAlternativeName(sans), critical=False).add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False).sign(
        ca_key, hashes.SHA256())

    files = TLSFiles(
        directory,
        ca_cert=os.path.join(directory, "ca.crt"),
        ca_key=os.path.join(directory, "ca.key"),
        cert=os.path.join(directory, "server.crt"),
        key=os.path.join(directory, "server.key"),
    )
    _write(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(files.ca_key, _key_pem(ca_key), 0o600)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    _write(files.key, _key_pem(key), 0o600)
    return files
