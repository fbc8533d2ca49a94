"""The lab's S3 store (moto's server): HTTPS verified against the lab CA, the bucket castle-backups there from the
start, every request signed with the lab's key (a wrong key or secret is refused), and an outage through its control
API that refuses connections until it ends, with the objects still there afterwards."""

import io
import json
import socket
import ssl
import urllib.request
import uuid

import minio
import minio.error
import pytest
import urllib3
import yaml

pytestmark = pytest.mark.lab


def client(env, access=None, secret=None, ca=None):
    http = urllib3.PoolManager(cert_reqs='CERT_REQUIRED', ca_certs=ca or env['CASTLE_S3_CA'], retries=False,
                               timeout=urllib3.Timeout(connect=5, read=10))
    return minio.Minio(env['CASTLE_S3_URL'].split('://', 1)[1], access_key=access or env['CASTLE_S3_ACCESS_KEY'],
                       secret_key=secret or env['CASTLE_S3_SECRET_KEY'], region=env['CASTLE_S3_REGION'],
                       http_client=http)


def outage(env, method):
    request = urllib.request.Request(env['CASTLE_LAB_S3_CONTROL'] + '/outage', method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)['down']


def test_the_bucket_is_there_and_the_lab_key_writes_and_reads(env):
    store = client(env)
    assert env['CASTLE_S3_BUCKET'] == 'castle-backups' and env['CASTLE_S3_URL'].startswith('https://')
    assert store.bucket_exists('castle-backups')
    key = 'test/{0}'.format(uuid.uuid4().hex)
    store.put_object('castle-backups', key, io.BytesIO(b'stored'), 6)
    assert store.get_object('castle-backups', key).read() == b'stored'


def test_requests_without_the_lab_key_are_refused(env):
    with pytest.raises(minio.error.S3Error) as unknown:
        client(env, access='AKIAUNKNOWNKEY000000', secret='wrong').bucket_exists('castle-backups')
    assert unknown.value.code in ('InvalidAccessKeyId', 'AccessDenied')
    with pytest.raises(minio.error.S3Error) as forged:
        client(env, secret='not-the-secret').bucket_exists('castle-backups')
    assert forged.value.code in ('SignatureDoesNotMatch', 'AccessDenied')


def test_tls_is_verified_against_the_lab_ca(env):
    # The system's roots do not know the lab CA.
    import certifi
    with pytest.raises(urllib3.exceptions.SSLError, match='CERTIFICATE_VERIFY_FAILED'):
        client(env, ca=certifi.where()).bucket_exists('castle-backups')
    host = env['CASTLE_S3_URL'].split('//')[1].split(':')[0]
    context = ssl.create_default_context(cafile=env['CASTLE_S3_CA'])
    with context.wrap_socket(socket.create_connection((host, 9000), timeout=5),
                             server_hostname=host) as tls:
        assert tls.version()


def test_an_outage_refuses_connections_and_keeps_the_objects(env):
    store = client(env)
    key = 'outage/{0}'.format(uuid.uuid4().hex)
    store.put_object('castle-backups', key, io.BytesIO(b'kept'), 4)
    assert outage(env, 'PUT') is True
    try:
        assert outage(env, 'GET') is True
        with pytest.raises(urllib3.exceptions.NewConnectionError, match='Connection refused'):
            store.bucket_exists('castle-backups')
    finally:
        assert outage(env, 'DELETE') is False
    assert store.get_object('castle-backups', key).read() == b'kept'


def test_inventory_and_env_name_the_store_and_its_key_files(lab, env):
    info = lab.info('s3')['services']['s3']
    hosts = yaml.safe_load((lab.inventory / 'hosts.yml').read_text())['all']['vars']
    assert hosts['castle_lab_s3_url'] == env['CASTLE_S3_URL'] == 'https://{0}:9000'.format(info['address'])
    assert hosts['castle_lab_s3_bucket'] == 'castle-backups' and hosts['castle_lab_s3_region'] == 'us-east-1'
    for name, variable in (('access_key', 'CASTLE_S3_ACCESS_KEY'), ('secret_key', 'CASTLE_S3_SECRET_KEY')):
        path = info['files'][name]
        assert hosts['castle_lab_s3_' + name] == "{{{{ lookup('ansible.builtin.file', '{0}') }}}}".format(path)
        with open(path) as handle:
            assert handle.read().strip() == env[variable]
        assert env[variable] not in (lab.inventory / 'hosts.yml').read_text()
