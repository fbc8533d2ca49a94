"""The cluster's own PKI, client-certificate users and ServiceAccount tokens (ES256 JWTs)."""

import base64
import datetime
import hashlib
import ipaddress
import json
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ...pki import write_secret

ISSUER = 'https://kubernetes.default.svc.cluster.local'
# The issuer of the long-lived tokens the token controller writes into ServiceAccount token Secrets.
LEGACY_ISSUER = 'kubernetes/serviceaccount'
LEGACY_PREFIX = 'kubernetes.io/serviceaccount/'
TOKEN_SECONDS = 3600


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_or_create_key(path):
    if path.exists():
        return serialization.load_pem_private_key(path.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    write_secret(path, _pem_key(key))
    return key


def _sign(builder, subject, public_key, issuer_cert, issuer_key, days):
    now = _now()
    issuer = issuer_cert.subject if issuer_cert is not None else subject
    return (builder.subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .sign(issuer_key, hashes.SHA256()))


def ensure_cluster_pki(directory, address):
    """Cluster CA, serving certificate for `address` and admin client certificate under `directory`.

    Returns a dict of paths: ca, ca_key, server_cert, server_key, admin_cert, admin_key, sa_key."""
    paths = {name: directory / file for name, file in (
        ('ca', 'ca.crt'), ('ca_key', 'ca.key'), ('server_cert', 'apiserver.crt'), ('server_key', 'apiserver.key'),
        ('admin_cert', 'admin.crt'), ('admin_key', 'admin.key'), ('sa_key', 'sa.key'))}
    ca_key = _load_or_create_key(paths['ca_key'])
    if paths['ca'].exists():
        ca_cert = x509.load_pem_x509_certificate(paths['ca'].read_bytes())
    else:
        tag = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'castle-lab kubernetes CA {0}'.format(tag))])
        builder = (x509.CertificateBuilder()
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False))
        ca_cert = _sign(builder, name, ca_key.public_key(), None, ca_key, 3650)
        paths['ca'].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    if not _valid(paths['server_cert'], ca_cert, address):
        key = _load_or_create_key(paths['server_key'])
        sans = [x509.IPAddress(ipaddress.ip_address(address)), x509.DNSName('localhost'), x509.DNSName('kubernetes'),
                x509.DNSName('kubernetes.default.svc'), x509.DNSName('kubernetes.default.svc.cluster.local')]
        builder = (x509.CertificateBuilder()
                   .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        cert = _sign(builder, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'kube-apiserver')]),
                     key.public_key(), ca_cert, ca_key, 365)
        paths['server_cert'].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if not _valid(paths['admin_cert'], ca_cert):
        issue_client_cert(ca_cert, ca_key, 'castle-admin', ['system:masters'], paths['admin_cert'], paths['admin_key'])
    _load_or_create_key(paths['sa_key'])
    return paths


def _valid(path, ca_cert, address=None):
    if not path.exists():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    if cert.issuer != ca_cert.subject or cert.not_valid_after_utc <= _now():
        return False
    if address is None:
        return True
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ipaddress.ip_address(address) in sans.get_values_for_type(x509.IPAddress)


def issue_client_cert(ca_cert, ca_key, user, groups, cert_path, key_path):
    """A client certificate for `user` (CN) in `groups` (O), signed by the cluster CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
                        + [x509.NameAttribute(NameOID.COMMON_NAME, user)])
    builder = (x509.CertificateBuilder()
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    cert = _sign(builder, subject, key.public_key(), ca_cert, ca_key, 365)
    write_secret(key_path, _pem_key(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def user_of_peercert(peercert):
    """(user, groups) of a verified client certificate as ssl's getpeercert() gives it, or None."""
    if not peercert:
        return None
    user, groups = None, []
    for rdn in peercert.get('subject', ()):
        for attr, value in rdn:
            if attr == 'commonName':
                user = value
            elif attr == 'organizationName':
                groups.append(value)
    return (user, groups) if user else None


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


class TokenSigner:
    """Issues and verifies ServiceAccount tokens signed with the server's ES256 key."""

    def __init__(self, key):
        self.key = key
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = _b64(hashlib.sha256(public).digest())

    def issue(self, namespace, name, uid, audiences=None, seconds=TOKEN_SECONDS):
        now = int(time.time())
        claims = {'iss': ISSUER, 'sub': 'system:serviceaccount:{0}:{1}'.format(namespace, name),
                  'aud': list(audiences or [ISSUER]), 'iat': now, 'nbf': now, 'exp': now + int(seconds),
                  'kubernetes.io': {'namespace': namespace, 'serviceaccount': {'name': name, 'uid': uid}}}
        return self._sign(claims), claims

    def issue_legacy(self, namespace, name, uid, secret_name):
        """A long-lived token for a ServiceAccount token Secret: no expiry, valid while the Secret holds it."""
        claims = {'iss': LEGACY_ISSUER, 'sub': 'system:serviceaccount:{0}:{1}'.format(namespace, name),
                  LEGACY_PREFIX + 'namespace': namespace, LEGACY_PREFIX + 'secret.name': secret_name,
                  LEGACY_PREFIX + 'service-account.name': name, LEGACY_PREFIX + 'service-account.uid': uid}
        return self._sign(claims)

    def _sign(self, claims):
        header = {'alg': 'ES256', 'kid': self.kid, 'typ': 'JWT'}
        compact = {'separators': (',', ':')}
        signing_input = '{0}.{1}'.format(_b64(json.dumps(header, **compact).encode()),
                                         _b64(json.dumps(claims, **compact).encode()))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + '.' + _b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))

    def verify(self, token):
        """The token's claims if its signature and times are valid, else None."""
        try:
            head, body, signature = token.split('.')
            header, claims, raw = json.loads(_unb64(head)), json.loads(_unb64(body)), _unb64(signature)
            if header.get('alg') != 'ES256' or len(raw) != 64:
                return None
            self.key.public_key().verify(encode_dss_signature(int.from_bytes(raw[:32], 'big'),
                                                              int.from_bytes(raw[32:], 'big')),
                                         '{0}.{1}'.format(head, body).encode(), ec.ECDSA(hashes.SHA256()))
        except (ValueError, InvalidSignature, TypeError):
            return None
        if not isinstance(claims, dict):
            return None
        if claims.get('iss') == LEGACY_ISSUER and 'exp' not in claims:
            return claims
        now = time.time()
        if claims.get('iss') != ISSUER or not claims.get('nbf', 0) - 60 <= now < claims.get('exp', 0):
            return None
        return claims
