"""The Vault modules run ad hoc through Ansible, as `ansible localhost -m` would, read back with hvac.

Policies, auth mounts, Kubernetes auth and KV run against the session lab's OpenBao. vault_init, vault_unseal
and sealing in the middle of a run use private OpenBao servers this file starts (in-memory storage, plain
HTTP on the .9 address of the session lab's network) and stops. Secret values are random markers; every Ansible
output is kept and searched for them at the end of each test.
"""

import base64
import http.server
import json
import os
import pathlib
import socket
import socketserver
import stat
import subprocess
import threading
import time
import urllib.request
import uuid

import hvac
import pytest
import yaml
from harness import run_module, run_playbook
from kubernetes import client as kube_client, config as kube_config

from conftest import LAB_NET, VENV_BIN, secret_value
from kube_helpers import wait_for


class Runner(object):
    """Runs modules ad hoc with an environment; keeps every output for the final secret scan. Values given
    in `secret_vars` travel in an extra-vars file, so the command line and the task's echo hold only the
    template that names them."""

    def __init__(self, env, tmp_path):
        self.env = env
        self.tmp_path = tmp_path
        self.outputs = []

    def __call__(self, module_name, /, check=False, diff=False, secret_vars=None, **args):
        outcome = run_module(self.env, module_name, check=check, diff=diff, extra_vars=secret_vars, **args)
        self.outputs.append(outcome.output)
        return outcome

    def playbook(self, text):
        path = self.tmp_path / 'play-{0}.yml'.format(uuid.uuid4().hex[:8])
        path.write_text(text)
        proc = run_playbook(self.env, path, '-v')
        self.outputs.append(proc.stdout + proc.stderr)
        return proc

    def assert_never_shown(self, *values):
        for output in self.outputs:
            for value in values:
                assert value not in output


def marker():
    # Registered with the session, which also scans the lab's logs for it.
    return secret_value('vault-modules')


def unique(prefix):
    return '{0}-{1}'.format(prefix, uuid.uuid4().hex[:8])


# ------------------------------------------------------------ against the session lab's OpenBao

@pytest.fixture
def client(env):
    return hvac.Client(url=env['VAULT_ADDR'], token=env['VAULT_TOKEN'], verify=env['VAULT_CACERT'])


@pytest.fixture
def run(env, tmp_path):
    return Runner(dict(env), tmp_path)


def read_policy(client, name):
    try:
        return client.adapter.get('/v1/sys/policies/acl/' + name)['data']['policy']
    except hvac.exceptions.InvalidPath:
        return None


POLICY = 'path "kv/data/{0}/*" {{\n  capabilities = ["read", "list"]\n}}\n'


@pytest.mark.lab
def test_policy_is_written_once_and_compared_normalised(run, client):
    name = unique('it-policy')
    text = POLICY.format(name)
    predicted = run('vault_policy', check=True, name=name, policy=text)
    assert predicted.rc == 0 and predicted.changed and read_policy(client, name) is None
    made = run('vault_policy', diff=True, name=name, policy=text)
    assert made.rc == 0 and made.changed and read_policy(client, name) == text
    assert '+  capabilities = ["read", "list"]' in made.output
    same = '# the same, written otherwise\npath "kv/data/{0}/*" {{ capabilities = ["list", "read", "read"] }}'.format(name)
    steady = run('vault_policy', name=name, policy=same)
    assert steady.rc == 0 and not steady.changed and read_policy(client, name) == text
    wider = text.replace('"list"', '"update"')
    would = run('vault_policy', check=True, diff=True, name=name, policy=wider)
    assert would.rc == 0 and would.changed and read_policy(client, name) == text
    assert '-  capabilities = ["read", "list"]' in would.output and '+  capabilities = ["read", "update"]' in would.output
    policy_file = run.tmp_path / 'wider.hcl'
    policy_file.write_text(wider)
    widened = run('vault_policy', name=name, policy_file=str(policy_file))
    assert widened.rc == 0 and widened.changed and read_policy(client, name) == wider

    broken = run('vault_policy', name=name, policy='path "kv/data/x" { capabilities = ["read" }')
    assert broken.rc != 0 and 'policy for {0} is not valid HCL'.format(name) in broken.msg
    upper = run('vault_policy', name=name.upper(), policy=text)
    assert upper.rc != 0 and 'name' in upper.msg and 'lower case' in upper.msg
    assert run('vault_policy', name='default', state='absent').msg.endswith('this policy cannot be deleted')
    assert read_policy(client, name) == wider

    gone = run('vault_policy', name=name, state='absent')
    assert gone.rc == 0 and gone.changed and read_policy(client, name) is None
    again = run('vault_policy', name=name, state='absent')
    assert again.rc == 0 and not again.changed


def auth_mounts(client):
    return client.adapter.get('/v1/sys/auth')['data']


@pytest.mark.lab
def test_auth_method_is_enabled_tuned_and_disabled(run, client):
    path = unique('it-k8s')
    args = dict(path=path, type='kubernetes', description='lab cluster', default_lease_ttl='1h', listing_visibility='hidden')
    predicted = run('vault_auth_method', check=True, **args)
    assert predicted.rc == 0 and predicted.changed and path + '/' not in auth_mounts(client)
    made = run('vault_auth_method', **args)
    assert made.rc == 0 and made.changed
    mount = auth_mounts(client)[path + '/']
    assert mount['type'] == 'kubernetes' and mount['description'] == 'lab cluster'
    assert mount['config']['default_lease_ttl'] == 3600
    steady = run('vault_auth_method', **dict(args, default_lease_ttl='3600'))
    assert steady.rc == 0 and not steady.changed, steady.result

    tuned_args = dict(args, default_lease_ttl='2h', max_lease_ttl='1d', description='lab')
    would = run('vault_auth_method', check=True, diff=True, **tuned_args)
    assert would.rc == 0 and would.changed and would.result['tuned'] == ['default_lease_ttl', 'description', 'max_lease_ttl']
    assert '"default_lease_ttl": 7200' in would.output
    assert client.adapter.get('/v1/sys/auth/{0}/tune'.format(path))['data']['default_lease_ttl'] == 3600
    tuned = run('vault_auth_method', **tuned_args)
    assert tuned.rc == 0 and tuned.changed
    tune = client.adapter.get('/v1/sys/auth/{0}/tune'.format(path))['data']
    assert (tune['default_lease_ttl'], tune['max_lease_ttl'], tune['description']) == (7200, 86400, 'lab')
    assert not run('vault_auth_method', **tuned_args).changed

    other = run('vault_auth_method', path=path, type='approle')
    assert other.rc != 0 and 'is a kubernetes mount, not approle' in other.msg
    bad_ttl = run('vault_auth_method', path=path, type='kubernetes', max_lease_ttl='soon')
    assert bad_ttl.rc != 0 and bad_ttl.msg.startswith('max_lease_ttl:')
    assert auth_mounts(client)[path + '/']['type'] == 'kubernetes'

    gone = run('vault_auth_method', path=path, state='absent')
    assert gone.rc == 0 and gone.changed and path + '/' not in auth_mounts(client)
    assert not run('vault_auth_method', path=path, state='absent').changed


@pytest.mark.lab
def test_kubernetes_auth_config_and_roles(run, client, env):
    mount = unique('it-k8s')
    ca = pathlib.Path(env['VAULT_CACERT']).read_text()
    jwt, rotated = marker(), marker()
    assert run('vault_auth_method', path=mount, type='kubernetes').changed
    config = dict(mount=mount, kubernetes_host='https://10.0.40.10:6443', kubernetes_ca_cert=ca,
                  disable_local_ca_jwt=True, token_reviewer_jwt='{{ reviewer_jwt }}')
    role = dict(name='kaze-runtime', bound_service_account_names=['kaze-runtime'],
                bound_service_account_namespaces=['kaze'], token_policies=['kaze-runtime-read'], token_ttl='1h')
    secret = dict(reviewer_jwt=jwt)

    predicted = run('vault_kubernetes_auth', check=True, secret_vars=secret, roles=[role], **config)
    assert predicted.rc == 0 and predicted.changed, predicted.msg
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.adapter.get('/v1/auth/{0}/config'.format(mount))
    made = run('vault_kubernetes_auth', diff=True, secret_vars=secret, roles=[role], **config)
    assert made.rc == 0 and made.changed and made.result['roles_written'] == ['kaze-runtime']
    kept = client.adapter.get('/v1/auth/{0}/config'.format(mount))['data']
    assert kept['kubernetes_host'] == 'https://10.0.40.10:6443' and kept['token_reviewer_jwt_set']
    read = client.adapter.get('/v1/auth/{0}/role/kaze-runtime'.format(mount))['data']
    assert read['bound_service_account_namespaces'] == ['kaze'] and read['token_ttl'] == 3600
    assert read['token_policies'] == ['kaze-runtime-read']

    steady = run('vault_kubernetes_auth', secret_vars=secret, roles=[dict(role, token_ttl='3600')], **config)
    assert steady.rc == 0 and not steady.changed, steady.result
    # on_create: a JWT Vault cannot show is not compared...
    other_jwt = run('vault_kubernetes_auth', secret_vars=dict(reviewer_jwt=rotated), **config)
    assert other_jwt.rc == 0 and not other_jwt.changed
    # ...always writes it.
    forced = run('vault_kubernetes_auth', secret_vars=dict(reviewer_jwt=rotated), update_reviewer_jwt='always', **config)
    assert forced.rc == 0 and forced.changed and forced.result['config_changed']

    # Roles only: the configuration is left alone; a second role; the first one changes in check mode only.
    second = dict(name='kaze-gateway', bound_service_account_names=['kaze-gateway'],
                  bound_service_account_namespaces=['kaze'], token_policies=['kaze-gateway-read'])
    assert run('vault_kubernetes_auth', mount=mount, roles=[second]).result['roles_written'] == ['kaze-gateway']
    would = run('vault_kubernetes_auth', mount=mount, check=True, diff=True,
                roles=[dict(role, bound_service_account_namespaces=['other'])])
    assert would.rc == 0 and would.changed and '"other"' in would.output
    assert client.adapter.get('/v1/auth/{0}/role/kaze-runtime'.format(mount))['data']['bound_service_account_namespaces'] == ['kaze']

    missing = run('vault_kubernetes_auth', mount=mount, roles=[dict(name='new-one', token_policies=['x'])])
    assert missing.rc != 0 and 'roles[0] (new-one)' in missing.msg and 'bound_service_account_names' in missing.msg
    bad_ttl = run('vault_kubernetes_auth', mount=mount, roles=[dict(role, token_max_ttl='forever')])
    assert bad_ttl.rc != 0 and 'roles[0] (kaze-runtime).token_max_ttl' in bad_ttl.msg
    unmounted = run('vault_kubernetes_auth', mount=mount + '-nope', roles=[role])
    assert unmounted.rc != 0 and 'is not enabled' in unmounted.msg

    only = run('vault_kubernetes_auth', mount=mount, exclusive=True, roles=[role])
    assert only.rc == 0 and only.changed and only.result['roles_deleted'] == ['kaze-gateway']
    assert client.adapter.list('/v1/auth/{0}/role'.format(mount))['data']['keys'] == ['kaze-runtime']
    absent = run('vault_kubernetes_auth', mount=mount, roles=[dict(name='kaze-runtime', state='absent')])
    assert absent.rc == 0 and absent.result['roles_deleted'] == ['kaze-runtime']
    assert not run('vault_kubernetes_auth', mount=mount, roles=[dict(name='kaze-runtime', state='absent')]).changed
    run.assert_never_shown(jwt, rotated)


def kv_read(client, path, version=None):
    try:
        return client.secrets.kv.v2.read_secret_version(path=path, version=version, mount_point='kv',
                                                        raise_on_deleted_version=True)['data']
    except hvac.exceptions.InvalidPath:
        return None


@pytest.mark.lab
def test_kv_writes_only_changes_and_never_shows_a_value(run, client):
    path = unique('it-kv')
    values = {name: marker() for name in ('api_key', 'token', 'extra', 'replaced')}
    secret = dict(kv_data={'api_key': values['api_key'], 'token': values['token']})

    predicted = run('vault_kv', check=True, diff=True, secret_vars=secret, path=path, data='{{ kv_data }}')
    assert predicted.rc == 0 and predicted.changed and predicted.result['added'] == ['api_key', 'token']
    assert kv_read(client, path) is None
    made = run('vault_kv', diff=True, secret_vars=secret, path=path, data='{{ kv_data }}')
    assert made.rc == 0 and made.changed and made.result['version'] == 1
    assert kv_read(client, path)['data'] == secret['kv_data']
    assert '+    "api_key": "<new value>"' in made.output
    steady = run('vault_kv', diff=True, secret_vars=secret, path=path, data='{{ kv_data }}')
    assert steady.rc == 0 and not steady.changed and steady.result['version'] == 1
    assert client.secrets.kv.v2.read_secret_metadata(path=path, mount_point='kv')['data']['current_version'] == 1

    merged = dict(kv_extra={'extra': values['extra']})
    would = run('vault_kv', check=True, diff=True, secret_vars=merged, path=path, data='{{ kv_extra }}', merge=True)
    assert would.rc == 0 and would.changed and would.result['added'] == ['extra'] and would.result['removed'] == []
    assert kv_read(client, path)['metadata']['version'] == 1
    merge = run('vault_kv', secret_vars=merged, path=path, data='{{ kv_extra }}', merge=True, cas=1)
    assert merge.rc == 0 and merge.changed and merge.result['version'] == 2
    assert kv_read(client, path)['data'] == dict(secret['kv_data'], extra=values['extra'])

    replacement = dict(kv_new={'api_key': values['replaced'], 'token': values['token']})
    stale = run('vault_kv', secret_vars=replacement, path=path, data='{{ kv_new }}', cas=1)
    assert stale.rc != 0 and stale.msg.startswith('cas=1:') and 'version 2' in stale.msg
    assert kv_read(client, path)['metadata']['version'] == 2
    replaced = run('vault_kv', diff=True, secret_vars=replacement, path=path, data='{{ kv_new }}')
    assert replaced.rc == 0 and replaced.changed
    assert (replaced.result['updated'], replaced.result['removed']) == (['api_key'], ['extra'])
    assert '-    "api_key": "<old value>"' in replaced.output and '     "token": "<hidden>"' in replaced.output
    assert kv_read(client, path)['data'] == replacement['kv_new']

    deleted = run('vault_kv', path=path, state='absent')
    assert deleted.rc == 0 and deleted.changed and kv_read(client, path) is None
    assert not run('vault_kv', path=path, state='absent').changed
    back = run('vault_kv', path=path, state='undeleted')
    assert back.rc == 0 and back.changed and back.result['versions'] == [3]
    assert kv_read(client, path)['data'] == replacement['kv_new']
    destroyed = run('vault_kv', path=path, state='absent', destroy=True, versions=[1])
    assert destroyed.rc == 0 and destroyed.result['versions'] == [1]
    assert run('vault_kv', path=path, state='undeleted', versions=[1]).msg.startswith('versions:')
    forgotten = run('vault_kv', path=path, state='absent', destroy=True)
    assert forgotten.rc == 0 and forgotten.changed
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_metadata(path=path, mount_point='kv')
    assert not run('vault_kv', path=path, state='absent', destroy=True).changed
    run.assert_never_shown(*values.values())


@pytest.mark.lab
def test_approle_login_and_refused_credentials(run, client):
    mount = unique('it-approle')
    name = unique('it-policy')
    assert run('vault_auth_method', path=mount, type='approle').changed
    # No read on the metadata: a plain write does without it.
    writer = 'path "kv/data/{0}/*" {{ capabilities = ["create", "update", "read"] }}\n'.format(name)
    assert run('vault_policy', name=name, policy=writer).changed
    client.adapter.post('/v1/auth/{0}/role/writer'.format(mount), json={'token_policies': [name]})
    role_id = client.adapter.get('/v1/auth/{0}/role/writer/role-id'.format(mount))['data']['role_id']
    secret_id = client.adapter.post('/v1/auth/{0}/role/writer/secret-id'.format(mount))['data']['secret_id']
    login = dict(vault_auth_method='approle', vault_auth_mount=mount, vault_role_id=role_id)
    value = marker()
    written = run('vault_kv', secret_vars=dict(approle_secret_id=secret_id, v={'k': value}),
                  vault_secret_id='{{ approle_secret_id }}', path=name + '/app', data='{{ v }}', **login)
    assert written.rc == 0 and written.changed and written.result['version'] == 1, written.msg
    assert kv_read(client, name + '/app')['data'] == {'k': value}
    again = run('vault_kv', secret_vars=dict(approle_secret_id=secret_id, v={'k': value}),
                vault_secret_id='{{ approle_secret_id }}', path=name + '/app', data='{{ v }}', **login)
    assert again.rc == 0 and not again.changed, again.msg
    assert kv_read(client, name + '/app')['metadata']['version'] == 1
    denied = run('vault_kv', secret_vars=dict(approle_secret_id=secret_id, v={'k': value}),
                 vault_secret_id='{{ approle_secret_id }}', path='elsewhere/app', data='{{ v }}', **login)
    assert denied.rc != 0 and 'permission denied (403)' in denied.msg and 'kv/elsewhere/app' in denied.msg, denied.msg
    wrong = run('vault_kv', secret_vars=dict(approle_secret_id=str(uuid.uuid4()), v={'k': value}),
                vault_secret_id='{{ approle_secret_id }}', path=name + '/app', data='{{ v }}', **login)
    assert wrong.rc != 0 and 'AppRole login at auth/{0}'.format(mount) in wrong.msg and 'vault_secret_id' in wrong.msg
    refused = run('vault_policy', name=name, policy=POLICY.format('x'), vault_token='not-a-token')
    assert refused.rc != 0 and 'refused the token' in refused.msg
    run.assert_never_shown(value, secret_id)


@pytest.fixture
def cluster(env):
    """Namespaces `ns` and `other` of the lab cluster with an `app` ServiceAccount each, and a `vault-auth`
    reviewer bound to system:auth-delegator; removed afterwards."""
    api = kube_config.new_client_from_config(env['KUBECONFIG'])
    core, rbac = kube_client.CoreV1Api(api), kube_client.RbacAuthorizationV1Api(api)
    tag = uuid.uuid4().hex[:8]
    names = dict(ns='it-vault-' + tag, other='it-vault-other-' + tag, binding='it-vault-auth-' + tag)
    for namespace in (names['ns'], names['other']):
        core.create_namespace({'metadata': {'name': namespace}})
        core.create_namespaced_service_account(namespace, {'metadata': {'name': 'app'}})
    core.create_namespaced_service_account(names['ns'], {'metadata': {'name': 'vault-auth'}})
    rbac.create_cluster_role_binding({
        'metadata': {'name': names['binding']},
        'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole', 'name': 'system:auth-delegator'},
        'subjects': [{'kind': 'ServiceAccount', 'name': 'vault-auth', 'namespace': names['ns']}]})

    def token(namespace, account):
        name = '{0}-token'.format(account)
        core.create_namespaced_secret(namespace, {
            'metadata': {'name': name, 'annotations': {'kubernetes.io/service-account.name': account}},
            'type': 'kubernetes.io/service-account-token'})

        def filled():
            secret = core.read_namespaced_secret(name, namespace)
            return secret if secret.data and {'token', 'ca.crt'} <= set(secret.data) else None
        secret = wait_for(filled, 'token Secret {0}/{1} filled'.format(namespace, name))
        return {key: base64.b64decode(secret.data[key]).decode() for key in ('token', 'ca.crt')}
    names['token'] = token
    names['server'] = yaml.safe_load(pathlib.Path(env['KUBECONFIG']).read_text())['clusters'][0]['cluster']['server']
    yield names
    rbac.delete_cluster_role_binding(names['binding'])
    for namespace in (names['ns'], names['other']):
        core.delete_namespace(namespace)


@pytest.mark.lab
def test_kubernetes_login_through_the_lab_cluster(run, client, cluster, tmp_path):
    mount, prefix = unique('it-kubernetes'), unique('it-app')
    reviewer = cluster['token'](cluster['ns'], 'vault-auth')
    app, stranger = cluster['token'](cluster['ns'], 'app'), cluster['token'](cluster['other'], 'app')
    assert run('vault_auth_method', path=mount, type='kubernetes').changed
    reader = ('path "kv/data/{0}/*" {{ capabilities = ["read"] }}\n'
              'path "kv/metadata/{0}/*" {{ capabilities = ["read"] }}\n').format(prefix)
    assert run('vault_policy', name=prefix, policy=reader).changed
    wired = run('vault_kubernetes_auth', secret_vars=dict(jwt=reviewer['token']), mount=mount,
                kubernetes_host=cluster['server'], kubernetes_ca_cert=reviewer['ca.crt'], token_reviewer_jwt='{{ jwt }}',
                disable_local_ca_jwt=True,
                roles=[dict(name='app', bound_service_account_names=['app'],
                            bound_service_account_namespaces=[cluster['ns']], token_policies=[prefix], token_ttl='10m')])
    assert wired.rc == 0 and wired.changed, wired.msg
    value = marker()
    client.secrets.kv.v2.create_or_update_secret(path=prefix + '/app', secret={'k': value}, mount_point='kv')
    login = dict(vault_auth_method='kubernetes', vault_auth_mount=mount, vault_kubernetes_role='app')

    # The same data in check mode: unchanged only if the login worked and the secret could be read.
    same = run('vault_kv', check=True, secret_vars=dict(jwt=app['token'], v={'k': value}),
               vault_kubernetes_jwt='{{ jwt }}', path=prefix + '/app', data='{{ v }}', **login)
    assert same.rc == 0 and not same.changed, same.msg
    jwt_file = tmp_path / 'token'
    jwt_file.write_text(app['token'])
    jwt_file.chmod(0o600)
    from_file = run('vault_kv', check=True, secret_vars=dict(v={'k': value}), vault_kubernetes_jwt_file=str(jwt_file),
                    path=prefix + '/app', data='{{ v }}', **login)
    assert from_file.rc == 0 and not from_file.changed, from_file.msg
    refused = run('vault_kv', check=True, secret_vars=dict(jwt=stranger['token'], v={'k': value}),
                  vault_kubernetes_jwt='{{ jwt }}', path=prefix + '/app', data='{{ v }}', **login)
    assert refused.rc != 0 and 'Kubernetes login at auth/{0} as role app'.format(mount) in refused.msg
    assert 'refused' in refused.msg and '403' in refused.msg, refused.msg
    missing = run('vault_kv', check=True, secret_vars=dict(v={'k': value}),
                  vault_kubernetes_jwt_file=str(tmp_path / 'none'), path=prefix + '/app', data='{{ v }}', **login)
    assert missing.rc != 0 and missing.msg.startswith('cannot read vault_kubernetes_jwt_file')
    assert client.secrets.kv.v2.read_secret_metadata(path=prefix + '/app', mount_point='kv')['data']['current_version'] == 1
    assert run('vault_auth_method', path=mount, state='absent').changed
    run.assert_never_shown(value, reviewer['token'], app['token'], stranger['token'])


# ------------------------------------------------------------ private OpenBao servers

def free_port(host):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class PrivateBao(object):
    """An OpenBao server of its own: in-memory storage, plain HTTP, uninitialised at start."""

    def __init__(self, directory, host):
        self.host, self.port = host, free_port(host)
        self.addr = 'http://{0}:{1}'.format(self.host, self.port)
        config = directory / 'bao-{0}.hcl'.format(self.port)
        config.write_text('storage "inmem" {{}}\nlistener "tcp" {{\n  address = "{0}:{1}"\n  tls_disable = true\n}}\n'
                          'ui = false\n'.format(self.host, self.port))
        self.log = open(directory / 'bao-{0}.log'.format(self.port), 'w')
        self.proc = subprocess.Popen([str(VENV_BIN / 'bao'), 'server', '-config=' + str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.addr + '/v1/sys/seal-status', timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError('OpenBao did not start at ' + self.addr)
                time.sleep(0.2)

    def client(self, token=None):
        return hvac.Client(url=self.addr, token=token)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def bao(tmp_path):
    servers = []

    def start():
        servers.append(PrivateBao(tmp_path, LAB_NET + '.9'))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def private_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith('VAULT_')}
    return Runner(env, tmp_path)


def test_init_unseal_and_sealing_in_the_middle_of_a_run(bao, private_run, tmp_path):
    run = private_run
    server = bao()
    addr = dict(vault_addr=server.addr)
    dest = tmp_path / 'private' / 'init.json'
    dest.parent.mkdir()

    not_yet = run('vault_policy', name='x', policy=POLICY.format('x'), vault_token='none', **addr)
    assert not_yet.rc != 0 and 'is not initialised: initialise it first (ephemeral.castle.vault_init)' in not_yet.msg
    no_keys = run('vault_init', **addr)
    assert no_keys.rc != 0 and 'set dest and/or return_keys=true' in no_keys.msg
    bad = run('vault_init', secret_shares=2, secret_threshold=3, dest=str(dest), **addr)
    assert bad.rc != 0 and bad.msg.startswith('secret_threshold must be between 1 and secret_shares (2)')
    predicted = run('vault_init', check=True, diff=True, secret_shares=3, secret_threshold=2, dest=str(dest), **addr)
    assert predicted.rc == 0 and predicted.changed and not server.client().sys.is_initialized() and not dest.exists()

    made = run('vault_init', secret_shares=3, secret_threshold=2, dest=str(dest), **addr)
    assert made.rc == 0 and made.changed and made.result['sealed'] and server.client().sys.is_initialized()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    keys = json.loads(dest.read_text())
    assert len(keys['unseal_keys_b64']) == 3 and keys['root_token']
    kept = dest.read_text()
    again = run('vault_init', secret_shares=3, secret_threshold=2, dest=str(dest), return_keys=True, **addr)
    assert again.rc == 0 and not again.changed and 'root_token' not in again.result and dest.read_text() == kept

    sealed = run('vault_policy', name='x', policy=POLICY.format('x'), vault_token=keys['root_token'], **addr)
    assert sealed.rc != 0 and 'is sealed: unseal it first (ephemeral.castle.vault_unseal)' in sealed.msg
    too_few = run('vault_unseal', secret_vars=dict(k=keys['unseal_keys_b64'][:1]), keys='{{ k }}', **addr)
    assert too_few.rc != 0 and '1 key(s) given, the server needs 2' in too_few.msg
    wrong_key = run('vault_unseal', secret_vars=dict(k=[keys['unseal_keys_b64'][0], 'bm90IGEga2V5IGF0IGFsbCwgbm90IGEga2V5IGF0IGFsbA==']),
                    keys='{{ k }}', **addr)
    assert wrong_key.rc != 0 and 'refused unseal key #2; it stays sealed' in wrong_key.msg
    assert server.client().sys.is_sealed()
    would = run('vault_unseal', check=True, keys_file=str(dest), **addr)
    assert would.rc == 0 and would.changed and server.client().sys.is_sealed()
    unsealed = run('vault_unseal', keys_file=str(dest), **addr)
    assert unsealed.rc == 0 and unsealed.changed and unsealed.result['keys_submitted'] == 2
    assert not server.client().sys.is_sealed()
    steady = run('vault_unseal', keys_file=str(dest), **addr)
    assert steady.rc == 0 and not steady.changed and steady.result['keys_submitted'] == 0

    # A multi-write flow: a policy, then a mount, then a secret; the server is sealed after the first step.
    root = server.client(keys['root_token'])
    root.sys.enable_secrets_engine('kv', path='kv', options={'version': '2'})
    token = dict(vault_token=keys['root_token'], **addr)
    value = marker()
    assert run('vault_policy', name='app', policy=POLICY.format('app'), **token).changed
    root.sys.seal()
    steps = [run('vault_auth_method', path='kubernetes-lab', type='kubernetes', **token),
             run('vault_kv', secret_vars=dict(v={'k': value}), path='app', data='{{ v }}', **token),
             run('vault_policy', name='app', policy=POLICY.format('app2'), **token)]
    for step in steps:
        assert step.rc != 0 and 'sealed' in step.msg, step.msg
    assert run('vault_unseal', keys_file=str(dest), **addr).changed
    assert 'kubernetes-lab/' not in root.adapter.get('/v1/sys/auth')['data']
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v2.read_secret_metadata(path='app', mount_point='kv')
    assert root.adapter.get('/v1/sys/policies/acl/app')['data']['policy'] == POLICY.format('app')
    rerun = [run('vault_auth_method', path='kubernetes-lab', type='kubernetes', **token),
             run('vault_kv', secret_vars=dict(v={'k': value}), path='app', data='{{ v }}', **token),
             run('vault_policy', name='app', policy=POLICY.format('app2'), **token)]
    assert all(step.rc == 0 and step.changed for step in rerun), [step.msg for step in rerun]
    assert root.secrets.kv.v2.read_secret_version(path='app', mount_point='kv', raise_on_deleted_version=True)['data']['data'] == {'k': value}
    run.assert_never_shown(value, keys['root_token'], *keys['unseal_keys_b64'])


def test_keys_returned_by_vault_init_are_hidden_from_the_output(bao, private_run, tmp_path):
    server = bao()
    token_file = tmp_path / 'token'
    proc = private_run.playbook('''
- name: Initialise and use the keys
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Initialise
      ephemeral.castle.vault_init:
        vault_addr: {addr}
        secret_shares: 1
        secret_threshold: 1
        return_keys: true
      register: init
    - name: Unseal with the returned key
      ephemeral.castle.vault_unseal:
        vault_addr: {addr}
        keys: "{{{{ init.unseal_keys_b64 }}}}"
    - name: Keep the root token
      ansible.builtin.copy:
        content: "{{{{ init.root_token }}}}"
        dest: {token_file}
        mode: "0600"
      no_log: true
'''.format(addr=server.addr, token_file=token_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the output has been hidden due to the fact that 'no_log: true'" in proc.stdout
    root_token = token_file.read_text()
    assert server.client(root_token).lookup_token()['data']['id'] == root_token
    assert not server.client().sys.is_sealed()
    private_run.assert_never_shown(root_token)


class FlakyProxy(object):
    """Answers the first `failures` requests with 502, then forwards to `target`; counts requests by path.
    With `lose` set to (method, path, count), that many such requests reach `target` but their answers are
    lost: the client gets a 502."""

    def __init__(self, host, target, failures):
        self.failures, self.seen, self.lose = failures, [], None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def bad_gateway(self):
                self.send_response(502)
                self.send_header('Content-Type', 'application/json')
                self.end_headers()
                self.wfile.write(b'{"errors": ["upstream unavailable"]}')

            def forward(self):
                proxy.seen.append(self.path)
                if proxy.failures > 0:
                    proxy.failures -= 1
                    self.bad_gateway()
                    return
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0)) or None
                request = urllib.request.Request(target + self.path, data=body, method=self.command,
                                                 headers={k: v for k, v in self.headers.items() if k.lower() != 'host'})
                try:
                    answer = urllib.request.urlopen(request, timeout=30)
                except urllib.error.HTTPError as exc:
                    answer = exc
                payload = answer.read()
                if proxy.lose and proxy.lose[:2] == (self.command, self.path) and proxy.lose[2] > 0:
                    proxy.lose = proxy.lose[:2] + (proxy.lose[2] - 1,)
                    self.bad_gateway()
                    return
                self.send_response(answer.status if hasattr(answer, 'status') else answer.code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_LIST = forward

        self.server = socketserver.ThreadingTCPServer((host, 0), Handler)
        self.addr = 'http://{0}:{1}'.format(host, self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_5xx_answers_are_retried_and_4xx_are_not(bao, private_run, tmp_path):
    server = bao()
    init = server.client().sys.initialize(secret_shares=1, secret_threshold=1)
    server.client().sys.submit_unseal_keys(init['keys_base64'])
    proxy = FlakyProxy(LAB_NET + '.9', server.addr, failures=2)
    try:
        token = dict(vault_addr=proxy.addr, vault_token=init['root_token'])
        retried = private_run('vault_policy', name='app', policy=POLICY.format('app'), **token)
        assert retried.rc == 0 and retried.changed, retried.msg
        assert proxy.seen[:3] == ['/v1/sys/seal-status'] * 3
        proxy.failures = 5
        given_up = private_run('vault_policy', name='app', policy=POLICY.format('app'), vault_retries=1, **token)
        assert given_up.rc != 0 and 'failed after 2 attempt(s)' in given_up.msg and 'upstream unavailable' in given_up.msg
        assert proxy.failures == 2
        proxy.failures, proxy.seen[:] = 0, []
        refused = private_run('vault_policy', name='app', policy=POLICY.format('app'), vault_addr=proxy.addr,
                              vault_token='not-a-token')
        assert refused.rc != 0 and 'refused the token' in refused.msg
        assert proxy.seen.count('/v1/auth/token/lookup-self') == 1
    finally:
        proxy.close()


def test_a_cas_write_whose_answer_was_lost_is_done_on_retry(bao, private_run):
    server = bao()
    init = server.client().sys.initialize(secret_shares=1, secret_threshold=1)
    server.client().sys.submit_unseal_keys(init['keys_base64'])
    root = server.client(init['root_token'])
    root.sys.enable_secrets_engine('kv', path='kv', options={'version': '2'})
    proxy = FlakyProxy(LAB_NET + '.9', server.addr, failures=0)
    try:
        args = dict(vault_addr=proxy.addr, vault_token=init['root_token'], path='app', cas=0)
        proxy.lose = ('POST', '/v1/kv/data/app', 1)
        written = private_run('vault_kv', secret_vars={'kv_data': {'key': 'one'}}, data='{{ kv_data }}', **args)
        assert written.rc == 0 and written.changed and written.result['version'] == 1, written.msg
        assert proxy.seen.count('/v1/kv/data/app') >= 2 and proxy.lose[2] == 0  # the lost write, then the retry
        # A cas mismatch with other data is still one.
        other = private_run('vault_kv', secret_vars={'kv_data': {'key': 'two'}}, data='{{ kv_data }}', **args)
        assert other.rc != 0 and 'cas=0' in other.msg
        stored = root.secrets.kv.v2.read_secret_version(path='app', mount_point='kv', raise_on_deleted_version=True)
        assert stored['data']['data'] == {'key': 'one'}
    finally:
        proxy.close()
