"""External Secrets in the lab's Kubernetes emulator against the lab's real OpenBao: ServiceAccount token Secrets,
TokenReview for OpenBao's Kubernetes auth, SecretStores and ExternalSecrets synced from KV v2, and the count of
requests the emulation sends to Vault."""

import base64
import json
import pathlib
import time
import uuid

import hvac
import hvac.exceptions
import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import secret_value
from kube_helpers import eso_controller, get_object, holds, install_eso, kubectl, secret_values, uninstall_eso, wait_for

pytestmark = pytest.mark.lab

ESO_API = 'external-secrets.io/v1'
REFRESH = 2.0


@pytest.fixture(scope='module')
def vault(kenv):
    return hvac.Client(url=kenv['VAULT_ADDR'], token=kenv['VAULT_TOKEN'], verify=kenv['VAULT_CACERT'])


def apply(lab, kenv, *objects):
    return kubectl(lab, kenv, 'apply', '--server-side', '--field-manager=castle-test', '--force-conflicts', '-f', '-',
                   stdin=yaml.safe_dump_all(objects))


@pytest.fixture(scope='module')
def eso(lab, kenv):
    install_eso(lab, kenv)
    yield
    uninstall_eso(lab, kenv)


def service_account(core, namespace, name):
    core.create_namespaced_service_account(namespace, {'metadata': {'name': name}})


def token_secret(core, namespace, name, account):
    """A ServiceAccount token Secret once the token controller has filled it."""
    core.create_namespaced_secret(namespace, {
        'metadata': {'name': name, 'annotations': {'kubernetes.io/service-account.name': account}},
        'type': 'kubernetes.io/service-account-token'})

    def filled():
        secret = core.read_namespaced_secret(name, namespace)
        return secret if secret.data and {'token', 'ca.crt', 'namespace'} <= set(secret.data) else None
    return wait_for(filled, 'token Secret {0}/{1} filled'.format(namespace, name))


def decoded(secret, key):
    return base64.b64decode(secret.data[key]).decode()


def api_server(kenv):
    return yaml.safe_load(pathlib.Path(kenv['KUBECONFIG']).read_text())['clusters'][0]['cluster']['server']


def bearer_client(kenv, lab, token):
    conf = client.Configuration()
    conf.host = api_server(kenv)
    conf.ssl_ca_cert = str(lab.dir / 'kube' / 'ca.crt')
    conf.api_key = {'authorization': 'Bearer ' + token}
    return client.AuthenticationV1Api(client.ApiClient(conf))


def review(api, token, audiences=None):
    spec = {'token': token}
    if audiences:
        spec['audiences'] = audiences
    return api.create_token_review({'apiVersion': 'authentication.k8s.io/v1', 'kind': 'TokenReview',
                                    'spec': spec}).status


@pytest.fixture(scope='module')
def wiring(lab, kenv, core, vault):
    """A namespace with the vault-auth reviewer and an `app` ServiceAccount; in OpenBao a Kubernetes auth mount
    configured against the emulator, a policy reading kv/<prefix>/* and a role for `app` in that namespace."""
    tag = uuid.uuid4().hex[:8]
    namespace, other = 'eso-' + tag, 'eso-other-' + tag
    mount, policy, prefix = 'kubernetes-eso-' + tag, 'eso-read-' + tag, 'eso-test-' + tag
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    for name in (namespace, other):
        core.create_namespace({'metadata': {'name': name}})
        service_account(core, name, 'app')
    service_account(core, namespace, 'vault-auth')
    rbac.create_cluster_role_binding({
        'metadata': {'name': 'vault-auth-' + tag},
        'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole', 'name': 'system:auth-delegator'},
        'subjects': [{'kind': 'ServiceAccount', 'name': 'vault-auth', 'namespace': namespace}]})
    reviewer = token_secret(core, namespace, 'vault-auth-token', 'vault-auth')
    server = api_server(kenv)
    vault.sys.enable_auth_method('kubernetes', path=mount)
    vault.write_data('auth/{0}/config'.format(mount), data={
        'kubernetes_host': server, 'kubernetes_ca_cert': decoded(reviewer, 'ca.crt'),
        'token_reviewer_jwt': decoded(reviewer, 'token')})
    vault.sys.create_or_update_policy(policy, 'path "kv/data/{0}/*" {{\n  capabilities = ["read"]\n}}\n'.format(
        prefix))
    vault.write_data('auth/{0}/role/app'.format(mount), data={
        'bound_service_account_names': ['app'], 'bound_service_account_namespaces': [namespace],
        'token_policies': [policy], 'token_ttl': '10m'})
    yield {'namespace': namespace, 'other': other, 'mount': mount, 'prefix': prefix, 'vault': kenv['VAULT_ADDR'],
           'ca': pathlib.Path(kenv['VAULT_CACERT']).read_text(), 'reviewer': reviewer}
    vault.sys.disable_auth_method(mount)
    vault.sys.delete_policy(policy)
    for key in vault.secrets.kv.v2.list_secrets(prefix, mount_point='kv')['data']['keys'] if _listed(
            vault, prefix) else []:
        vault.secrets.kv.v2.delete_metadata_and_all_versions('{0}/{1}'.format(prefix, key), mount_point='kv')
    rbac.delete_cluster_role_binding('vault-auth-' + tag)
    for name in (namespace, other):
        core.delete_namespace(name)


def _listed(vault, prefix):
    try:
        vault.secrets.kv.v2.list_secrets(prefix, mount_point='kv')
    except hvac.exceptions.InvalidPath:
        return False
    return True


def kv_write(vault, path, **data):
    vault.secrets.kv.v2.create_or_update_secret(path, secret=data, mount_point='kv')


def kv_read(vault, path):
    return vault.secrets.kv.v2.read_secret_version(path, mount_point='kv', raise_on_deleted_version=True)['data']


def get(dyn, kind, namespace, name):
    return get_object(dyn, ESO_API, kind, namespace, name)


def ready(obj):
    return next((c for c in ((obj or {}).get('status') or {}).get('conditions') or [] if c['type'] == 'Ready'), None)


def wait_condition(dyn, kind, namespace, name, status, reason, timeout=15.0):
    def check():
        obj = get(dyn, kind, namespace, name)
        cond = ready(obj)
        return obj if cond and cond['status'] == status and cond['reason'] == reason else None
    return wait_for(check, '{0} {1}/{2} Ready={3} {4}'.format(kind, namespace, name, status, reason), timeout)


def vault_store(name, namespace, wiring, ca=None, kind='SecretStore', account=None, server=None):
    account = account or {'name': 'app'}
    ca = ca or wiring['ca']
    provider = {'vault': {
        'server': server or wiring['vault'], 'path': 'kv', 'version': 'v2', 'caBundle': base64.b64encode(ca.encode()).decode(),
        'auth': {'kubernetes': {'mountPath': wiring['mount'], 'role': 'app', 'serviceAccountRef': account}}}}
    meta = {'name': name}
    if namespace:
        meta['namespace'] = namespace
    return {'apiVersion': ESO_API, 'kind': kind, 'metadata': meta, 'spec': {'provider': provider}}


def external_secret(name, namespace, store, prefix, kind='SecretStore', refresh='2s'):
    return {'apiVersion': ESO_API, 'kind': 'ExternalSecret', 'metadata': {'name': name, 'namespace': namespace},
            'spec': {'refreshInterval': refresh, 'secretStoreRef': {'name': store, 'kind': kind},
                     'target': {'name': name + '-secret'},
                     'data': [{'secretKey': 'password', 'remoteRef': {'key': prefix + '/db', 'property': 'password'}}],
                     'dataFrom': [{'extract': {'key': prefix + '/api'}}]}}


def vault_requests(kenv):
    return requests.get(kenv['CASTLE_LAB_KUBE_CONTROL'] + '/eso/vault-requests', timeout=5).json()


def test_token_secret_passes_token_review_until_its_secret_or_account_goes(lab, kenv, core, wiring):
    namespace = wiring['namespace']
    reviewer = bearer_client(kenv, lab, decoded(wiring['reviewer'], 'token'))
    assert decoded(wiring['reviewer'], 'namespace') == namespace
    assert decoded(wiring['reviewer'], 'ca.crt') == (lab.dir / 'kube' / 'ca.crt').read_text()
    service_account(core, namespace, 'short-lived')
    secret = token_secret(core, namespace, 'short-lived-token', 'short-lived')
    token = decoded(secret, 'token')
    status = review(reviewer, token)
    assert status.authenticated and status.user.username == 'system:serviceaccount:{0}:short-lived'.format(namespace)
    assert status.user.uid == core.read_namespaced_service_account('short-lived', namespace).metadata.uid
    assert not review(reviewer, token, audiences=['vault']).authenticated
    # Only who may create tokenreviews (system:auth-delegator) reviews tokens.
    with pytest.raises(ApiException) as denied:
        review(bearer_client(kenv, lab, token), token)
    assert denied.value.status == 403 and 'tokenreviews' in denied.value.body
    core.delete_namespaced_secret('short-lived-token', namespace)
    wait_for(lambda: not review(reviewer, token).authenticated, 'token of a deleted Secret rejected')
    secret = token_secret(core, namespace, 'short-lived-token-2', 'short-lived')
    token = decoded(secret, 'token')
    assert review(reviewer, token).authenticated
    core.delete_namespaced_service_account('short-lived', namespace)
    wait_for(lambda: not review(reviewer, token).authenticated, 'token of a deleted ServiceAccount rejected')
    wait_for(lambda: secret_values(core, namespace, 'short-lived-token-2') is None,
             'token Secret deleted with its ServiceAccount')


def test_openbao_kubernetes_login_through_the_emulators_token_review(core, vault, wiring):
    def token(namespace):
        return core.create_namespaced_service_account_token('app', namespace, {'spec': {'expirationSeconds': 600}}
                                                            ).status.token
    login = vault.auth.kubernetes.login('app', token(wiring['namespace']), mount_point=wiring['mount'],
                                        use_token=False)
    assert login['auth']['metadata']['service_account_namespace'] == wiring['namespace']
    assert login['auth']['metadata']['service_account_name'] == 'app'
    with pytest.raises(hvac.exceptions.Forbidden) as denied:
        vault.auth.kubernetes.login('app', token(wiring['other']), mount_point=wiring['mount'], use_token=False)
    # OpenBao's own 403 for a ServiceAccount outside the role's bound namespaces.
    assert 'namespace not authorized' in str(denied.value)


def test_openbao_role_audience_is_checked_by_the_token_review(lab, kenv, core, vault, wiring):
    namespace, mount = wiring['namespace'], wiring['mount']
    vault.write_data('auth/{0}/role/audience'.format(mount), data={
        'bound_service_account_names': ['app'], 'bound_service_account_namespaces': [namespace],
        'audience': 'openbao', 'token_policies': ['default']})

    def token(*audiences):
        spec = {'expirationSeconds': 600}
        if audiences:
            spec['audiences'] = list(audiences)
        return core.create_namespaced_service_account_token('app', namespace, {'spec': spec}).status.token
    login = vault.auth.kubernetes.login('audience', token('openbao'), mount_point=mount, use_token=False)
    assert login['auth']['metadata']['role'] == 'audience'
    with pytest.raises(hvac.exceptions.Forbidden):
        vault.auth.kubernetes.login('audience', token(), mount_point=mount, use_token=False)
    # A token for OpenBao's audience is no credential for the API server.
    with pytest.raises(ApiException) as refused:
        review(bearer_client(kenv, lab, token('openbao')), token())
    assert refused.value.status == 401


def test_external_secret_follows_openbao_and_leaves_it_alone_when_deleted(lab, kenv, core, dyn, vault, eso, wiring):
    namespace, prefix = wiring['namespace'], wiring['prefix']
    first, second, api_token = secret_value('eso-first'), secret_value('eso-second'), secret_value('eso-api')
    kv_write(vault, prefix + '/db', password=first, user='app')
    kv_write(vault, prefix + '/api', token=api_token, url='https://example.org')
    apply(lab, kenv, vault_store('openbao', namespace, wiring), external_secret('app', namespace, 'openbao', prefix))
    store = wait_condition(dyn, 'SecretStore', namespace, 'openbao', 'True', 'Valid')
    assert ready(store)['message'] == 'store validated' and store['status']['capabilities'] == 'ReadWrite'
    es = wait_condition(dyn, 'ExternalSecret', namespace, 'app', 'True', 'SecretSynced')
    assert ready(es)['message'] == 'Secret was synced'
    assert es['status']['binding'] == {'name': 'app-secret'} and es['status']['refreshTime']
    assert es['status']['syncedResourceVersion'].startswith('1-')
    assert secret_values(core, namespace, 'app-secret') == {
        'password': first, 'token': api_token, 'url': 'https://example.org'}
    owner = core.read_namespaced_secret('app-secret', namespace).metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ('ExternalSecret', 'app', True)
    counted = vault_requests(kenv)['externalSecrets']['{0}/app'.format(namespace)]
    assert counted['requests'] >= 5  # login, lookup-self, two reads, revoke-self

    kv_write(vault, prefix + '/db', password=second, user='app')
    rotated = time.monotonic()
    wait_for(lambda: (secret_values(core, namespace, 'app-secret') or {}).get('password') == second,
             'rotated value in the Secret', timeout=2 * REFRESH + 1.0)
    assert time.monotonic() - rotated <= 2 * REFRESH + 1.0
    wait_for(lambda: vault_requests(kenv)['externalSecrets']['{0}/app'.format(namespace)]['requests']
             >= counted['requests'] + 10, 'two more cycles counted', timeout=3 * REFRESH + 2.0)
    later = vault_requests(kenv)['externalSecrets']['{0}/app'.format(namespace)]
    assert later['seconds'] > counted['seconds'] and later['perMinute'] > 0 and later['lastMinute'] >= 15
    print('Vault requests of ExternalSecret {0}/app (refreshInterval {1}s, two items): {2} in {3} s, {4} per '
          'minute'.format(namespace, REFRESH, later['requests'], later['seconds'], later['perMinute']))
    table = lab.castle_lab('vault-requests').stdout.splitlines()
    assert table[0].split() == ['KIND', 'NAME', 'REQUESTS', 'SECONDS', 'PER', 'MINUTE', 'LAST', 'MINUTE']
    row = next(line.split() for line in table if '{0}/app '.format(namespace) in line)
    assert row[0] == 'ExternalSecret' and int(row[2]) >= later['requests']
    assert any(line.split()[:2] == ['store', 'SecretStore/{0}/openbao'.format(namespace)] for line in table)

    # A Secret deleted by hand comes back; the ExternalSecret deleted takes its Secret along, and nothing in Vault.
    core.delete_namespaced_secret('app-secret', namespace)
    wait_for(lambda: secret_values(core, namespace, 'app-secret'), 'owned Secret recreated')
    before = kv_read(vault, prefix + '/db')
    kubectl(lab, kenv, 'delete', '-n', namespace, 'externalsecret/app', '--timeout=20s')
    wait_for(lambda: secret_values(core, namespace, 'app-secret') is None, 'owned Secret garbage-collected')
    after = kv_read(vault, prefix + '/db')
    assert after['data'] == {'password': second, 'user': 'app'}
    assert after['metadata']['version'] == before['metadata']['version'] == 2
    assert kv_read(vault, prefix + '/api')['data'] == {'token': api_token, 'url': 'https://example.org'}
    settled = vault_requests(kenv)['externalSecrets']['{0}/app'.format(namespace)]['requests']
    holds(lambda: vault_requests(kenv)['externalSecrets']['{0}/app'.format(namespace)]['requests'] == settled,
          'no Vault requests for a deleted ExternalSecret', seconds=REFRESH + 0.5)


def test_account_in_the_wrong_namespace_gets_openbaos_403_in_the_condition(lab, kenv, core, dyn, vault, eso, wiring):
    namespace, other, prefix = wiring['namespace'], wiring['other'], wiring['prefix']
    kv_write(vault, prefix + '/db', password='shared', user='app')
    kv_write(vault, prefix + '/api', token='t')
    store_name = 'openbao-' + wiring['mount'][-8:]
    # Without a namespace, the ServiceAccount is the one in each ExternalSecret's namespace.
    apply(lab, kenv, vault_store(store_name, None, wiring, kind='ClusterSecretStore'),
          external_secret('denied', other, store_name, prefix, kind='ClusterSecretStore'),
          external_secret('allowed', namespace, store_name, prefix, kind='ClusterSecretStore'))
    try:
        store = wait_condition(dyn, 'ClusterSecretStore', None, store_name, 'True', 'Valid')
        assert store['status']['capabilities'] == 'ReadWrite'
        es = wait_condition(dyn, 'ExternalSecret', other, 'denied', 'False', 'SecretSyncedError')
        message = ready(es)['message']
        assert message.startswith('could not get secret data from provider: Error making API request.')
        assert 'auth/{0}/login'.format(wiring['mount']) in message and 'Code: 403.' in message
        assert 'namespace not authorized' in message
        assert secret_values(core, other, 'denied-secret') is None
        wait_condition(dyn, 'ExternalSecret', namespace, 'allowed', 'True', 'SecretSynced')
        assert secret_values(core, namespace, 'allowed-secret')['password'] == 'shared'
        # Logged in, but the policy does not cover the path: OpenBao's 403 on the read.
        apply(lab, kenv, external_secret('unreadable', namespace, store_name, 'elsewhere-' + prefix,
                                         kind='ClusterSecretStore'))
        message = ready(wait_condition(dyn, 'ExternalSecret', namespace, 'unreadable', 'False',
                                       'SecretSyncedError'))['message']
        assert 'URL: GET {0}/v1/kv/data/elsewhere-{1}/'.format(wiring['vault'], prefix) in message
        assert 'Code: 403.' in message and '* permission denied' in message
    finally:
        kubectl(lab, kenv, 'delete', 'clustersecretstore/' + store_name, '--timeout=20s')


def test_cluster_external_secret_provisions_the_namespaces_it_selects(lab, kenv, core, dyn, vault, eso, wiring):
    namespace, other, prefix = wiring['namespace'], wiring['other'], wiring['prefix']
    tag = wiring['mount'][-8:]
    value = secret_value('eso-cluster')
    kv_write(vault, prefix + '/shared', password=value)
    store_name, ces_name = 'openbao-ces-' + tag, 'shared-' + tag
    template = external_secret('unused', namespace, store_name, prefix, kind='ClusterSecretStore')['spec']
    template.pop('dataFrom')
    template['data'][0]['remoteRef']['key'] = prefix + '/shared'
    template['target'] = {'name': 'shared-secret'}
    for name in (namespace, other):
        core.patch_namespace(name, {'metadata': {'labels': {'castle-eso-test': tag}}})
    ces = {'apiVersion': ESO_API, 'kind': 'ClusterExternalSecret', 'metadata': {'name': ces_name},
           'spec': {'externalSecretName': 'shared', 'externalSecretMetadata': {'labels': {'team': 'castle'}},
                    'namespaceSelectors': [{'matchLabels': {'castle-eso-test': tag}}], 'refreshTime': '1s',
                    'externalSecretSpec': template}}
    apply(lab, kenv, vault_store(store_name, None, wiring, kind='ClusterSecretStore'), ces)
    try:
        def provisioned():
            status = (get(dyn, 'ClusterExternalSecret', None, ces_name) or {}).get('status') or {}
            return status if status.get('provisionedNamespaces') == sorted([namespace, other]) else None
        status = wait_for(provisioned, 'ClusterExternalSecret provisioned in both namespaces')
        assert status['externalSecretName'] == 'shared' and status['conditions'] == [{'type': 'Ready',
                                                                                      'status': 'True'}]
        for name in (namespace, other):
            es = get(dyn, 'ExternalSecret', name, 'shared')
            assert es['spec']['data'] == template['data'] and es['metadata']['labels'] == {'team': 'castle'}
            assert es['metadata']['ownerReferences'][0]['kind'] == 'ClusterExternalSecret'
        # Each namespace's `app` ServiceAccount logs in: the role binds only the first namespace's.
        wait_condition(dyn, 'ExternalSecret', namespace, 'shared', 'True', 'SecretSynced')
        assert secret_values(core, namespace, 'shared-secret') == {'password': value}
        wait_condition(dyn, 'ExternalSecret', other, 'shared', 'False', 'SecretSyncedError')
        core.patch_namespace(other, {'metadata': {'labels': {'castle-eso-test': None}}})
        wait_for(lambda: get(dyn, 'ExternalSecret', other, 'shared') is None, 'ExternalSecret of an unselected '
                 'namespace removed')
        kubectl(lab, kenv, 'delete', 'clusterexternalsecret/' + ces_name, '--timeout=20s')
        wait_for(lambda: get(dyn, 'ExternalSecret', namespace, 'shared') is None,
                 'ExternalSecrets removed with their ClusterExternalSecret')
        wait_for(lambda: secret_values(core, namespace, 'shared-secret') is None, 'and their Secrets')
        assert kv_read(vault, prefix + '/shared')['data'] == {'password': value}
    finally:
        kubectl(lab, kenv, 'delete', '--ignore-not-found', 'clusterexternalsecret/' + ces_name,
                'clustersecretstore/' + store_name, '--timeout=20s')


def test_store_with_bad_ca_bad_server_or_other_provider_is_not_ready(lab, kenv, dyn, eso, wiring):
    namespace = wiring['namespace']
    wrong_ca = (lab.dir / 'kube' / 'ca.crt').read_text()
    host = wiring['vault'].split('//')[1].rsplit(':', 1)[0]
    other = {'apiVersion': ESO_API, 'kind': 'SecretStore', 'metadata': {'name': 'fake', 'namespace': namespace},
             'spec': {'provider': {'fake': {'data': [{'key': 'k', 'value': 'v'}]}}}}
    apply(lab, kenv, vault_store('bad-ca', namespace, wiring, wrong_ca),
          vault_store('bad-server', namespace, wiring, server='https://{0}:8299'.format(host)), other)
    bad_ca = ready(wait_condition(dyn, 'SecretStore', namespace, 'bad-ca', 'False', 'InvalidProviderConfig'))
    assert bad_ca['message'].startswith('unable to create client: Put "https://{0}:8200/v1/auth/'.format(host))
    assert 'certificate signed by unknown authority' in bad_ca['message']
    bad_server = ready(wait_condition(dyn, 'SecretStore', namespace, 'bad-server', 'False', 'InvalidProviderConfig'))
    assert 'dial tcp {0}:8299: connect: connection refused'.format(host) in bad_server['message']
    fake = ready(wait_condition(dyn, 'SecretStore', namespace, 'fake', 'False', 'InvalidProviderConfig'))
    assert 'supports the vault provider only, not "fake"' in fake['message']
    apply(lab, kenv, external_secret('via-bad-ca', namespace, 'bad-ca', wiring['prefix']))
    wait_for(lambda: (ready(get(dyn, 'ExternalSecret', namespace, 'via-bad-ca')) or {}).get('message') ==
             'could not get secret data from provider: SecretStore "bad-ca" is not ready',
             'ExternalSecret of a store that is not ready')
    assert ready(get(dyn, 'ExternalSecret', namespace, 'via-bad-ca'))['reason'] == 'SecretSyncedError'


def test_nothing_syncs_until_the_eso_controller_is_available(lab, kenv, core, dyn, vault, eso, wiring):
    namespace, prefix = wiring['namespace'], wiring['prefix']
    value = secret_value('eso-gated')
    kv_write(vault, prefix + '/gated', password=value)
    kubectl(lab, kenv, 'delete', '-n', 'external-secrets', 'deployment/external-secrets', '--wait=true')
    try:
        es = external_secret('gated', namespace, 'gated-store', prefix, refresh='0')
        es['spec'].pop('dataFrom')
        es['spec']['data'][0]['remoteRef']['key'] = prefix + '/gated'
        apply(lab, kenv, vault_store('gated-store', namespace, wiring), es)
        holds(lambda: not (get(dyn, 'SecretStore', namespace, 'gated-store').get('status')
                           or get(dyn, 'ExternalSecret', namespace, 'gated').get('status')),
              'nothing reconciles External Secrets objects before ESO runs')
    finally:
        apply(lab, kenv, eso_controller())
    wait_condition(dyn, 'SecretStore', namespace, 'gated-store', 'True', 'Valid')
    wait_condition(dyn, 'ExternalSecret', namespace, 'gated', 'True', 'SecretSynced')
    assert secret_values(core, namespace, 'gated-secret') == {'password': value}
    # refreshInterval 0: synced once per change; a force-sync annotation is a change.
    rotated = secret_value('eso-gated')
    kv_write(vault, prefix + '/gated', password=rotated)
    holds(lambda: secret_values(core, namespace, 'gated-secret') == {'password': value},
          'no refresh with refreshInterval 0', seconds=1.0)
    kubectl(lab, kenv, 'annotate', '-n', namespace, 'externalsecret/gated', 'force-sync=' + str(time.time()))
    wait_for(lambda: secret_values(core, namespace, 'gated-secret') == {'password': rotated}, 'force-sync')


def test_creation_policies_merge_and_none_and_the_template_type(lab, kenv, core, dyn, vault, eso, wiring):
    namespace, prefix = wiring['namespace'], wiring['prefix']
    value = secret_value('eso-policy')
    kv_write(vault, prefix + '/policy', password=value, username='app')

    def policy_es(name, policy, **target):
        es = external_secret(name, namespace, 'policy-store', prefix)
        es['spec'].pop('data')
        es['spec']['dataFrom'] = [{'extract': {'key': prefix + '/policy'}}]
        es['spec']['target'] = {'name': name + '-secret', 'creationPolicy': policy, **target}
        return es
    apply(lab, kenv, vault_store('policy-store', namespace, wiring), policy_es('merged', 'Merge'),
          policy_es('nothing', 'None'), policy_es('typed', 'Owner', template={'type': 'kubernetes.io/basic-auth'}))
    message = ready(wait_condition(dyn, 'ExternalSecret', namespace, 'merged', 'False', 'SecretSyncedError'))['message']
    assert message == ('could not update Secret: the desired secret merged-secret was not found. With '
                       'creationPolicy=Merge the secret won\'t be created')
    core.create_namespaced_secret(namespace, {'metadata': {'name': 'merged-secret'}, 'stringData': {'kept': 'yes'}})
    wait_for(lambda: secret_values(core, namespace, 'merged-secret') == {'kept': 'yes', 'password': value,
                                                                         'username': 'app'},
             'values merged at the next retry', timeout=20.0)
    assert not core.read_namespaced_secret('merged-secret', namespace).metadata.owner_references
    nothing = wait_condition(dyn, 'ExternalSecret', namespace, 'nothing', 'True', 'SecretSynced')
    assert 'binding' not in nothing['status'] and secret_values(core, namespace, 'nothing-secret') is None
    wait_condition(dyn, 'ExternalSecret', namespace, 'typed', 'True', 'SecretSynced')
    assert core.read_namespaced_secret('typed-secret', namespace).type == 'kubernetes.io/basic-auth'


def test_sealed_openbao_is_reported_and_the_secret_kept_until_unsealed(lab, kenv, core, dyn, vault, eso, wiring):
    namespace, prefix = wiring['namespace'], wiring['prefix']
    value = secret_value('eso-sealed')
    kv_write(vault, prefix + '/sealed', password=value)
    es = external_secret('through-seal', namespace, 'seal-store', prefix)
    es['spec'].pop('dataFrom')
    es['spec']['data'][0]['remoteRef']['key'] = prefix + '/sealed'
    apply(lab, kenv, vault_store('seal-store', namespace, wiring), es)
    wait_condition(dyn, 'ExternalSecret', namespace, 'through-seal', 'True', 'SecretSynced')
    keys = json.loads((lab.dir / 'vault' / 'init.json').read_text())['unseal_keys_b64']
    vault.sys.seal()
    try:
        message = ready(wait_condition(dyn, 'ExternalSecret', namespace, 'through-seal', 'False',
                                       'SecretSyncedError'))['message']
        assert 'Code: 503.' in message and '* Vault is sealed' in message
        # deletionPolicy Retain: the Secret keeps its last value while the provider fails.
        assert secret_values(core, namespace, 'through-seal-secret') == {'password': value}
    finally:
        vault.sys.submit_unseal_keys(keys)
        wait_for(lambda: _leading(vault), 'OpenBao unsealed and leading', timeout=30.0)
    wait_condition(dyn, 'ExternalSecret', namespace, 'through-seal', 'True', 'SecretSynced', timeout=40.0)


def _leading(vault):
    try:
        return not vault.sys.is_sealed() and vault.sys.read_leader_status()['is_self']
    except (hvac.exceptions.VaultError, requests.RequestException):
        return False
