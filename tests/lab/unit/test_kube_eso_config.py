"""The External Secrets emulation's store configuration, selectors and request counts, on a real in-memory API."""

import base64
import ssl

import pytest

from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.controllers.eso.common import ProviderError, resource_version
from castle_lab.kube.controllers.eso.external_secrets import selector_matches
from castle_lab.kube.controllers.eso.vault import VaultRequests, vault_config

CA = ('-----BEGIN CERTIFICATE-----\nMIIBfTCCASOgAwIBAgIUX0kSqTgRlhFjpo2i8rS3Bk7EgOYwCgYIKoZIzj0EAwIw\n'
      '-----END CERTIFICATE-----\n')


@pytest.fixture
def api():
    api = KubeApi()
    api.create(api.registry.get('', 'v1', 'namespaces'), None, {'metadata': {'name': 'team'}}, 'test')
    api.create(api.registry.get('', 'v1', 'secrets'), 'team', {
        'metadata': {'name': 'vault-token'}, 'stringData': {'token': 's.static'}}, 'test')
    return api


def store(provider, kind='SecretStore', namespace='team'):
    meta = {'name': 'openbao'}
    if namespace:
        meta['namespace'] = namespace
    return {'kind': kind, 'metadata': meta, 'spec': {'provider': provider}}


def vault(**fields):
    spec = {'server': 'http://127.0.0.1:8200', 'path': 'kv',
            'auth': {'kubernetes': {'mountPath': 'kubernetes-lab', 'role': 'app', 'serviceAccountRef': {'name': 'app'}}}}
    spec.update(fields)
    return {'vault': spec}


def test_kubernetes_auth_of_a_secret_store_uses_its_namespace(api):
    config = vault_config(api, store(vault()), 'team')
    assert config['auth'] == {'mount': 'kubernetes-lab', 'role': 'app', 'jwt': None, 'account': ('team', 'app'),
                              'audiences': None}
    assert (config['version'], config['ssl']) == ('v2', False)


def test_a_secret_store_may_not_reach_into_another_namespace(api):
    provider = vault(auth={'kubernetes': {'role': 'app', 'serviceAccountRef': {'name': 'app', 'namespace': 'x'}}})
    with pytest.raises(ProviderError, match='Auth.Kubernetes.ServiceAccountRef: namespace should either be empty'):
        vault_config(api, store(provider), 'team')


def test_cluster_store_without_namespaces_is_referent(api):
    cluster = store(vault(), kind='ClusterSecretStore', namespace=None)
    assert vault_config(api, cluster, None) == {'referent': True}
    assert vault_config(api, cluster, 'team')['auth']['account'] == ('team', 'app')


def test_token_secret_ref_reads_the_token(api):
    config = vault_config(api, store(vault(auth={'tokenSecretRef': {'name': 'vault-token', 'key': 'token'}})), 'team')
    assert config['auth'] == {'token': 's.static'}


@pytest.mark.parametrize('provider, message', [
    ({'fake': {}}, 'supports the vault provider only, not "fake"'),
    ({}, 'not an empty provider'),
    (vault(server='127.0.0.1:8200'), 'invalid vault server address "127.0.0.1:8200"'),
    (vault(auth={'appRole': {'path': 'approle'}}), 'auth.kubernetes and auth.tokenSecretRef only, not appRole'),
    (vault(auth={'tokenSecretRef': {'name': 'missing'}}), 'secrets "missing" not found'),
    (vault(server='https://127.0.0.1:8200', caBundle='not base64!'), 'caBundle is not valid base64 PEM'),
    (vault(server='https://127.0.0.1:8200', caBundle=base64.b64encode(CA.encode()).decode()),
     'failed to parse certificates from CA bundle'),
    (vault(server='https://127.0.0.1:8200', caProvider={'type': 'ConfigMap', 'name': 'ca', 'key': 'ca.crt'}),
     'failed to get caProvider configmaps "ca"'),
])
def test_bad_store_configuration_is_named(api, provider, message):
    with pytest.raises(ProviderError, match=message.replace('(', r'\(').replace(')', r'\)')):
        vault_config(api, store(provider), 'team')


def test_https_without_a_ca_trusts_the_system(api):
    assert isinstance(vault_config(api, store(vault(server='https://127.0.0.1:8200')), 'team')['ssl'],
                      ssl.SSLContext)


@pytest.mark.parametrize('selector, labels, selected', [
    ({'matchLabels': {'team': 'a'}}, {'team': 'a', 'x': 'y'}, True),
    ({'matchLabels': {'team': 'a'}}, {'team': 'b'}, False),
    ({'matchExpressions': [{'key': 'team', 'operator': 'In', 'values': ['a', 'b']}]}, {'team': 'b'}, True),
    ({'matchExpressions': [{'key': 'team', 'operator': 'NotIn', 'values': ['a']}]}, {'team': 'a'}, False),
    ({'matchExpressions': [{'key': 'team', 'operator': 'Exists'}]}, {}, False),
    ({'matchExpressions': [{'key': 'team', 'operator': 'DoesNotExist'}]}, {}, True),
])
def test_namespace_selectors(selector, labels, selected):
    assert selector_matches(selector, labels) is selected


def test_resource_version_follows_generation_labels_and_annotations():
    es = {'metadata': {'generation': 3, 'labels': {'a': 'b'}}}
    version = resource_version(es)
    assert version.startswith('3-')
    assert resource_version({'metadata': {'generation': 3, 'labels': {'a': 'b'}, 'annotations': {}}}) == version
    assert resource_version({'metadata': {'generation': 3, 'labels': {'a': 'b'},
                                          'annotations': {'force-sync': '1'}}}) != version


def test_request_counts_per_object():
    requests = VaultRequests()
    for key in ['team/app'] * 5:
        requests.record('ExternalSecret', key)
    requests.record('SecretStore', 'SecretStore/team/openbao')
    report = requests.report()
    assert report['externalSecrets']['team/app']['requests'] == 5
    assert report['externalSecrets']['team/app']['lastMinute'] == 5
    assert report['externalSecrets']['team/app']['perMinute'] == 300.0  # five within the first second
    assert report['stores']['SecretStore/team/openbao']['requests'] == 1
