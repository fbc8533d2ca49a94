"""The Talos secrets bundle (secrets.yaml as `talosctl gen secrets` writes it) and certificates from its CAs.

CAs: cluster (Kubernetes, ECDSA P-256), etcd (ECDSA P-256), Kubernetes aggregator (ECDSA P-256),
OS (Talos API, Ed25519), plus the service account signing key (ECDSA P-256); PEM blocks are stored
base64-encoded as Talos stores them.
"""

import base64
import datetime
import ipaddress
import secrets as random

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_YEARS = 10
LEAF_DAYS = 365
ADMIN_ROLE = 'os:admin'


class BundleInvalid(Exception):
    """A secrets bundle that is missing a field or holds something that is not a certificate or key."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _b64(data):
    return base64.b64encode(data).decode()


def _token(first, second):
    alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
    return '{0}.{1}'.format(''.join(random.choice(alphabet) for _i in range(first)),
                            ''.join(random.choice(alphabet) for _i in range(second)))


def _key_pem(key, ec_sec1=True):
    """PEM of a key: `EC PRIVATE KEY` for ECDSA CAs as Talos writes them, PKCS#8 otherwise (Ed25519)."""
    sec1 = ec_sec1 and isinstance(key, ec.EllipticCurvePrivateKey)
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if sec1 else serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _signature_hash(key):
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _certificate(subject, public_key, issuer, issuer_key, not_after, ca, extensions=()):
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(_now() - datetime.timedelta(minutes=5)).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    usage = dict(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, key_cert_sign=ca, crl_sign=False, encipher_only=False, decipher_only=False)
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, _signature_hash(issuer_key))


def _ca(organization, key):
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else
                     [x509.NameAttribute(NameOID.COMMON_NAME, 'front-proxy')])
    not_after = _now() + datetime.timedelta(days=365 * CA_YEARS)
    cert = _certificate(name, key.public_key(), name, key, not_after, ca=True)
    return {'crt': _b64(cert.public_bytes(serialization.Encoding.PEM)), 'key': _b64(_key_pem(key))}


def generate():
    """A fresh secrets bundle as a dict, in the layout of Talos v1.11's secrets.yaml."""
    ecdsa = lambda: ec.generate_private_key(ec.SECP256R1())  # noqa: E731
    return {
        'cluster': {'id': _b64(random.token_bytes(32)), 'secret': _b64(random.token_bytes(32))},
        'secrets': {'bootstraptoken': _token(6, 16), 'secretboxencryptionsecret': _b64(random.token_bytes(32))},
        'trustdinfo': {'token': _token(6, 16)},
        'certs': {
            'etcd': _ca('etcd', ecdsa()),
            'k8s': _ca('kubernetes', ecdsa()),
            'k8saggregator': _ca(None, ecdsa()),
            'k8sserviceaccount': {'key': _b64(_key_pem(ecdsa()))},
            'os': _ca('talos', ed25519.Ed25519PrivateKey.generate()),
        },
    }


def dump(bundle):
    return yaml.safe_dump(bundle, sort_keys=False, indent=4)


def load(text):
    """A secrets bundle from YAML, checked to hold every certificate and key gen config needs."""
    try:
        bundle = yaml.safe_load(text)
        for name in ('etcd', 'k8s', 'k8saggregator', 'os'):
            ca_pair(bundle, name)
        pem(bundle['certs']['k8sserviceaccount']['key'])
        for path in (('cluster', 'id'), ('cluster', 'secret'), ('secrets', 'bootstraptoken'),
                     ('secrets', 'secretboxencryptionsecret'), ('trustdinfo', 'token')):
            if not bundle[path[0]][path[1]]:
                raise KeyError('.'.join(path))
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise BundleInvalid('invalid secrets bundle: {0}'.format(exc)) from None
    return bundle


def pem(value):
    return base64.b64decode(value, validate=True)


def config_pem(value):
    """A certificate or key of a machine config (base64 PEM), decoded as the node reads it."""
    return base64.b64decode(value)


def load_pair(entry):
    """(certificate, private key) of a machine config entry {'crt', 'key'}."""
    return (x509.load_pem_x509_certificate(config_pem(entry['crt'])),
            serialization.load_pem_private_key(config_pem(entry['key']), None))


def ca_pair(bundle, name):
    """(certificate, private key) of one of the bundle's CAs."""
    entry = bundle['certs'][name]
    return x509.load_pem_x509_certificate(pem(entry['crt'])), serialization.load_pem_private_key(pem(entry['key']), None)


def issue(ca_cert, ca_key, common_name, organizations=(), addresses=(), server=False, client=False,
          key=None, days=LEAF_DAYS):
    """(cert PEM, key PEM) of a leaf certificate signed by the CA, with a key like the CA's kind."""
    if key is None:
        key = ed25519.Ed25519PrivateKey.generate() if isinstance(ca_key, ed25519.Ed25519PrivateKey) \
            else ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
                        + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    extensions = [x509.ExtendedKeyUsage(usages)]
    if addresses:
        sans = []
        for entry in addresses:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(entry)))
            except ValueError:
                sans.append(x509.DNSName(entry))
        extensions.append(x509.SubjectAlternativeName(sans))
    cert = _certificate(subject, key.public_key(), ca_cert.subject, ca_key, _now() + datetime.timedelta(days=days),
                        ca=False, extensions=extensions)
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key, ec_sec1=False)


def admin_client(bundle, days=LEAF_DAYS):
    """(crt, key) base64 PEMs of the talosconfig's admin certificate (role os:admin) from the OS CA."""
    cert, key = issue(*ca_pair(bundle, 'os'), 'admin', organizations=(ADMIN_ROLE,), client=True, days=days)
    return _b64(cert), _b64(key)


def kube_admin(ca_cert, ca_key):
    """(crt, key) base64 PEMs of an admin kubeconfig's client certificate (system:masters)."""
    cert, key = issue(ca_cert, ca_key, 'admin', organizations=('system:masters',), client=True)
    return _b64(cert), _b64(key)
