"""TLS material for harness hosts: a CA, a server certificate for 127.0.0.N and a client certificate,
the way libvirtd (key_file/cert_file/ca_file) and a libvirt client (pkipath) want them."""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_KEY_USAGE_SIGN = dict(digital_signature=True, content_commitment=False, key_encipherment=True,
                       data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                       encipher_only=False, decipher_only=False)


@dataclass(frozen=True)
class PKI:
    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes


def make_pki(address: str, hostname: str) -> PKI:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"harness CA of {hostname}")])
    ca = (_builder(ca_name, ca_name, ca_key, now)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(**{**_KEY_USAGE_SIGN, "digital_signature": False, "key_encipherment": False,
                                          "key_cert_sign": True, "crl_sign": True}), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server = (_leaf(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]), ca_name, server_key, now,
                    ExtendedKeyUsageOID.SERVER_AUTH)
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address)),
                                                          x509.DNSName(hostname)]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    client = (_leaf(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vmsite")]), ca_name, client_key, now,
                    ExtendedKeyUsageOID.CLIENT_AUTH)
              .sign(ca_key, hashes.SHA256()))
    return PKI(ca_pem=_pem(ca), server_cert_pem=_pem(server), server_key_pem=_key_pem(server_key),
               client_cert_pem=_pem(client), client_key_pem=_key_pem(client_key))


def _builder(subject: x509.Name, issuer: x509.Name, key, now: datetime.datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)))


def _leaf(subject: x509.Name, issuer: x509.Name, key, now: datetime.datetime, usage) -> x509.CertificateBuilder:
    return (_builder(subject, issuer, key, now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(**_KEY_USAGE_SIGN), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
