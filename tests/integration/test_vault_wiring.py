"""playbooks/vault.yml (role vault_wiring) against the lab: Vault's Kubernetes auth for the cluster, a policy, a role
and a KV path per service seeded from ansible-vault encrypted vars, and the ExternalSecrets that copy them into the
cluster through the real OpenBao."""

import uuid

import hvac
import pytest
import yaml
from harness import play_recap

from conftest import secret_value
from kube_helpers import install_eso, kubectl, secret_values, uninstall_eso, wait_for

pytestmark = pytest.mark.lab

REFRESH = 2


@pytest.fixture(scope='module')
def vault(env):
    return hvac.Client(url=env['VAULT_ADDR'], token=env['VAULT_TOKEN'], verify=env['VAULT_CACERT'])


class Wiring:
    """One cluster's wiring: its vars (encrypted with ansible-vault) and runs of playbooks/vault.yml."""

    def __init__(self, lab, env, directory):
        tag = uuid.uuid4().hex[:6]
        self.lab, self.env, self.dir = lab, env, directory
        self.cluster = 'wiring-' + tag
        self.namespace = 'wiring-' + tag
        self.service = 'svc-' + tag
        self.mount = 'kubernetes-' + self.cluster
        self.values = {'api_key': secret_value('api-key'), 'db_password': secret_value('db')}
        self.password = directory / 'vault-password'
        self.password.write_text(uuid.uuid4().hex)
        self.vars = directory / 'wiring.vault.yml'
        self.refresh = '{0}s'.format(REFRESH)

    def service_vars(self, **extra):
        return {'name': self.service, 'namespace': self.namespace, 'service_account': 'app',
                'refresh_interval': self.refresh, 'data': self.values, **extra}

    def write_vars(self):
        self.vars.write_text(yaml.safe_dump({
            'castle_cluster_vars': {'cluster_name': self.cluster},
            'castle_vault_services': [self.service_vars()],
            'vault_wiring_reviewer_namespace': self.namespace}))
        # A vault id of its own: the lab's environment already names a default password (for castle_services).
        self.lab.run('ansible-vault', 'encrypt', '--vault-id', 'wiring@' + str(self.password),
                     '--encrypt-vault-id', 'wiring', str(self.vars), env=self.env)

    def play(self, *args, check=True):
        self.write_vars()
        return self.lab.run('ansible-playbook', '-i', str(self.lab.inventory), 'playbooks/vault.yml',
                            '--vault-id', 'wiring@' + str(self.password), '-e', '@' + str(self.vars), *args,
                            env=self.env, check=check)


@pytest.fixture(scope='module')
def wiring(lab, env, core, tmp_path_factory):
    install_eso(lab, env)
    made = Wiring(lab, env, tmp_path_factory.mktemp('wiring'))
    for namespace in (made.namespace, made.namespace + '-other'):
        core.create_namespace({'metadata': {'name': namespace}})
        core.create_namespaced_service_account(namespace, {'metadata': {'name': 'app'}})
    yield made
    for namespace in (made.namespace, made.namespace + '-other'):
        core.delete_namespace(namespace)
    uninstall_eso(lab, env)


def assert_no_values(wiring, proc):
    for value in wiring.values.values():
        assert value not in proc.stdout + proc.stderr


def test_check_mode_on_a_new_cluster_changes_nothing(wiring, vault, core):
    proc = wiring.play('--check', '--diff')
    assert_no_values(wiring, proc)
    assert wiring.mount + '/' not in vault.sys.list_auth_methods()['data']
    assert wiring.service + '-read' not in vault.sys.list_acl_policies()['data']['keys']
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault.secrets.kv.v2.read_secret_version(path=wiring.service, mount_point='kv', raise_on_deleted_version=True)
    assert secret_values(core, wiring.namespace, 'vault-auth-token') is None


def test_wiring_copies_vault_values_into_the_cluster(wiring, vault, core):
    proc = wiring.play()
    assert_no_values(wiring, proc)
    assert play_recap(proc)['localhost']['changed'] > 0
    assert secret_values(core, wiring.namespace, wiring.service) == wiring.values
    config_ = vault.auth.kubernetes.read_config(mount_point=wiring.mount)
    assert config_['kubernetes_host'] == yaml.safe_load(open(wiring.env['KUBECONFIG']))['clusters'][0]['cluster'][
        'server']
    role = vault.auth.kubernetes.read_role(wiring.service, mount_point=wiring.mount)
    assert role['bound_service_account_namespaces'] == [wiring.namespace]
    assert role['token_policies'] == [wiring.service + '-read']


def test_second_run_and_check_mode_change_nothing(wiring):
    assert play_recap(wiring.play())['localhost']['changed'] == 0
    # kubernetes.core counts any difference between the object it read and its dry-run apply as a change,
    # status included: an ExternalSecret refreshed between the two (status.refreshTime) would show as one.
    # With the role's usual interval no refresh lands within a run; with the seconds the rotation test needs,
    # one may. So the check-mode run is measured at an interval of an hour, then the short one comes back.
    wiring.refresh = '1h'
    assert play_recap(wiring.play())['localhost']['changed'] == 1
    try:
        assert play_recap(wiring.play('--check', '--diff'))['localhost']['changed'] == 0
    finally:
        wiring.refresh = '{0}s'.format(REFRESH)
        wiring.play()


def test_rotation_in_vault_reaches_the_secret(wiring, vault, core):
    rotated = {**wiring.values, 'api_key': secret_value('rotated')}
    vault.secrets.kv.v2.create_or_update_secret(path=wiring.service, secret=rotated, mount_point='kv')
    wait_for(lambda: secret_values(core, wiring.namespace, wiring.service) == rotated,
             'the rotated value in Secret {0}/{1}'.format(wiring.namespace, wiring.service), timeout=2 * REFRESH + 1)
    # The operator's vars are the source the next run writes back.
    wiring.play()
    wait_for(lambda: secret_values(core, wiring.namespace, wiring.service) == wiring.values,
             'the vars value back in the Secret', timeout=2 * REFRESH + 1)


def test_a_service_account_of_another_namespace_is_refused_by_vault(lab, env, wiring):
    other = wiring.namespace + '-other'
    kubectl(lab, env, 'apply', '-f', '-', stdin=yaml.safe_dump({
        'apiVersion': 'external-secrets.io/v1', 'kind': 'ExternalSecret',
        'metadata': {'name': 'borrowed', 'namespace': other},
        'spec': {'refreshInterval': '1m', 'secretStoreRef': {'kind': 'ClusterSecretStore',
                                                             'name': 'vault-' + wiring.service},
                 'target': {'name': 'borrowed'}, 'dataFrom': [{'extract': {'key': wiring.service}}]}}))

    def refused():
        status = yaml.safe_load(kubectl(lab, env, 'get', 'externalsecret', 'borrowed', '-n', other, '-o',
                                        'yaml').stdout).get('status') or {}
        ready = [c for c in status.get('conditions') or [] if c['type'] == 'Ready']
        return ready[0] if ready and ready[0]['status'] == 'False' else None
    condition = wait_for(refused, 'the borrowed ExternalSecret refused')
    assert condition['reason'] == 'SecretSyncedError'
    assert '403' in condition['message'] or 'permission denied' in condition['message']


def test_deleting_an_external_secret_leaves_vault_alone(lab, env, wiring, vault, core):
    before = vault.secrets.kv.v2.read_secret_version(path=wiring.service, mount_point='kv',
                                                     raise_on_deleted_version=True)['data']
    kubectl(lab, env, 'delete', 'externalsecret', wiring.service, '-n', wiring.namespace)
    wait_for(lambda: secret_values(core, wiring.namespace, wiring.service) is None, 'the owned Secret gone')
    after = vault.secrets.kv.v2.read_secret_version(path=wiring.service, mount_point='kv',
                                                    raise_on_deleted_version=True)['data']
    assert (after['data'], after['metadata']['version']) == (before['data'], before['metadata']['version'])
