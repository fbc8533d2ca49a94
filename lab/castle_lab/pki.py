"""The lab's certificate authority and the server certificates it signs."""

import datetime
import hashlib
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SYSTEM_BUNDLES = ('/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt')


def write_secret(path, data):
    """Write bytes or text readable by the owner only (0600), whatever the umask; returns the path."""
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, 'wb') as out:
        out.write(data)
    return path


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _validity(builder, days):
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))


def ensure_ca(cfg):
    """Create the lab CA once; later calls reuse it. Returns (certificate, key)."""
    directory = cfg.dir('ca', mode=0o755)
    cert_path, key_path = directory / 'ca.crt', directory / 'ca.key'
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        # One CA per lab directory; the digest tells two labs' CAs apart (a CN holds 64 characters at most).
        tag = hashlib.sha256(str(cfg.state).encode()).hexdigest()[:12]
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'castle-lab CA {0}'.format(tag))])
        cert = (_validity(x509.CertificateBuilder(), 3650)
                .subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        write_secret(key_path, _pem_key(key))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_bundle(cfg, cert)
    return cert, key


def _write_bundle(cfg, ca_cert):
    system = next((p for p in (os.environ.get('CASTLE_LAB_SYSTEM_CA'),) + SYSTEM_BUNDLES if p and os.path.exists(p)), None)
    parts = [open(system, 'rb').read().rstrip(b'\n') + b'\n'] if system else []
    parts.append(ca_cert.public_bytes(serialization.Encoding.PEM))
    data = b''.join(parts)
    if not cfg.ca_bundle.exists() or cfg.ca_bundle.read_bytes() != data:
        cfg.ca_bundle.write_bytes(data)


def issue_server_cert(cfg, directory, name, addresses):
    """Sign a server certificate for these IP addresses and names; returns (cert path, key path)."""
    ca_cert, ca_key = ensure_ca(cfg)
    cert_path, key_path = directory / (name + '.crt'), directory / (name + '.key')
    sans = []
    for entry in ('localhost',) + tuple(addresses):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            sans.append(x509.DNSName(entry))
    if cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        same_issuer = current.issuer == ca_cert.subject
        same_names = set(current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) == set(sans)
        if same_issuer and same_names and current.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc):
            return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_validity(x509.CertificateBuilder(), 365)
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_secret(key_path, _pem_key(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
