"""The lab CA and the certificates it signs."""

import ipaddress
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from castle_lab import config, pki


@pytest.fixture
def cfg(tmp_path):
    return config.load({'CASTLE_LAB_DIR': str(tmp_path / 'lab')})


def test_server_certificate_is_signed_by_the_lab_ca(cfg):
    ca = pki.ensure_ca(cfg)[0]
    cert_path, key_path = pki.issue_server_cert(cfg, cfg.dir('svc'), 'svc', ['127.0.10.9'])
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address('127.0.10.9') in sans.get_values_for_type(x509.IPAddress)
    assert os.stat(key_path).st_mode & 0o777 == 0o600
    assert os.stat(cfg.state / 'ca' / 'ca.key').st_mode & 0o777 == 0o600


def test_certificates_are_reused_until_their_names_change(cfg):
    first = pki.issue_server_cert(cfg, cfg.dir('svc'), 'svc', ['127.0.10.9'])[0].read_bytes()
    again = pki.issue_server_cert(cfg, cfg.dir('svc'), 'svc', ['127.0.10.9'])[0].read_bytes()
    moved = pki.issue_server_cert(cfg, cfg.dir('svc'), 'svc', ['127.0.10.8'])[0].read_bytes()
    assert first == again
    assert moved != first


def test_bundle_adds_the_lab_ca_to_the_system_roots(cfg, tmp_path, monkeypatch):
    system = tmp_path / 'system.pem'
    system.write_text('-----BEGIN CERTIFICATE-----\nsystem\n-----END CERTIFICATE-----\n')
    monkeypatch.setenv('CASTLE_LAB_SYSTEM_CA', str(system))
    pki.ensure_ca(cfg)
    bundle = cfg.ca_bundle.read_text()
    assert bundle.startswith(system.read_text())
    assert bundle.endswith(cfg.ca_cert.read_text())
