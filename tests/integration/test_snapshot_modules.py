"""The snapshot modules run ad hoc through Ansible against the session lab: vault_raft_snapshot against its OpenBao
(raft storage), read back with hvac; talos_etcd_snapshot and talos_bootstrap's recover_from against a one-node Talos
cluster on the lab's Proxmox VE, read back with the lab's talosctl and kubectl."""

import hashlib
import json
import os
import uuid

import hvac
import pytest
from harness import run_module
from talos_helpers import talos_vms, until
from test_vault_modules import PrivateBao

from conftest import LAB_NET, VENV_BIN


@pytest.fixture
def client(env):
    return hvac.Client(url=env['VAULT_ADDR'], token=env['VAULT_TOKEN'], verify=env['VAULT_CACERT'])


def kv_value(client, path):
    """The secret's `value`, or None when it has none."""
    try:
        return client.secrets.kv.v2.read_secret_version(path=path, mount_point='kv',
                                                        raise_on_deleted_version=True)['data']['data']['value']
    except hvac.exceptions.InvalidPath:
        return None


def test_a_raft_snapshot_is_taken_kept_and_restored(env, client, tmp_path):
    before, path = 'before-{0}'.format(uuid.uuid4().hex[:8]), 'snapshot-test/{0}'.format(uuid.uuid4().hex[:8])
    client.secrets.kv.v2.create_or_update_secret(path=path, secret=dict(value=before), mount_point='kv')
    backups = tmp_path / 'backups'
    backups.mkdir()

    predicted = run_module(env, 'vault_raft_snapshot', check=True, dest=str(backups) + '/')
    assert predicted.rc == 0 and predicted.changed and os.listdir(backups) == []
    taken = run_module(env, 'vault_raft_snapshot', dest=str(backups) + '/', max_age=600)
    assert taken.rc == 0 and taken.changed, taken.output
    snapshot = taken.result['path']
    data = open(snapshot, 'rb').read()
    assert data[:2] == b'\x1f\x8b'  # raft snapshots are gzipped tar archives
    assert taken.result['size'] == len(data) and taken.result['sha256'] == hashlib.sha256(data).hexdigest()
    assert os.stat(snapshot).st_mode & 0o777 == 0o600
    assert sorted(os.listdir(backups)) == sorted([os.path.basename(snapshot), os.path.basename(snapshot) + '.sha256'])
    kept = run_module(env, 'vault_raft_snapshot', dest=str(backups) + '/', max_age=600)
    assert kept.rc == 0 and not kept.changed and kept.result['path'] == snapshot

    client.secrets.kv.v2.create_or_update_secret(path=path, secret=dict(value='after'), mount_point='kv')
    written = 'snapshot-test/{0}'.format(uuid.uuid4().hex[:8])
    client.secrets.kv.v2.create_or_update_secret(path=written, secret=dict(value='later'), mount_point='kv')
    assert kv_value(client, path) == 'after'

    restored = run_module(env, 'vault_raft_snapshot', state='restored', src=snapshot)
    assert restored.rc == 0 and restored.changed and restored.result['sha256'] == taken.result['sha256'], \
        restored.output
    assert kv_value(client, path) == before
    assert kv_value(client, written) is None
    assert client.sys.read_health_status(method='GET')['sealed'] is False


def test_a_damaged_snapshot_is_refused_before_it_reaches_openbao(env, client, tmp_path):
    taken = run_module(env, 'vault_raft_snapshot', dest=str(tmp_path / 'bao.snap'))
    assert taken.rc == 0, taken.output
    with open(str(tmp_path / 'bao.snap'), 'ab') as handle:
        handle.write(b'junk')
    refused = run_module(env, 'vault_raft_snapshot', state='restored', src=str(tmp_path / 'bao.snap'))
    assert refused.rc != 0 and 'does not match' in refused.msg
    assert client.sys.read_health_status(method='GET')['sealed'] is False


def test_a_server_without_raft_storage_is_named(env, tmp_path):
    """OpenBao registers the sys/storage/raft paths only over raft storage: others answer 404."""
    server = PrivateBao(tmp_path, LAB_NET + '.9')  # in-memory storage
    try:
        client = server.client()
        init = client.sys.initialize(secret_shares=1, secret_threshold=1)
        client.sys.submit_unseal_key(init['keys'][0])
        login = dict(vault_addr=server.addr, vault_token=init['root_token'])
        private = {key: value for key, value in env.items() if not key.startswith('VAULT_')}
        taken = run_module(private, 'vault_raft_snapshot', dest=str(tmp_path / 'bao.snap'), **login)
        assert taken.rc != 0 and taken.msg == ('Vault at {0} does not use raft storage: sys/storage/raft/snapshot '
                                               'answered 404 (unsupported path)'.format(server.addr))
        assert [name for name in os.listdir(tmp_path) if 'snap' in name] == []
        (tmp_path / 'other.snap').write_bytes(b'not a snapshot')
        restored = run_module(private, 'vault_raft_snapshot', state='restored', src=str(tmp_path / 'other.snap'),
                              **login)
        assert restored.rc != 0 and restored.msg == ('Vault at {0} does not use raft storage: sys/storage/raft/'
                                                     'snapshot answered 404 (unsupported path)'.format(server.addr))
        assert init['root_token'] not in taken.output + restored.output
    finally:
        server.stop()


# ------------------------------------------------------------ etcd of a Talos cluster on the lab's Proxmox VE

@pytest.fixture(scope='module')
def talos_env(env, tmp_path_factory):
    home = tmp_path_factory.mktemp('snapshot-home')
    (home / 'tmp').mkdir()
    return dict(env, HOME=str(home), TMPDIR=str(home / 'tmp'), PATH='{0}:{1}'.format(VENV_BIN, env['PATH']))


def configmaps(lab, env, kubeconfig):
    listed = json.loads(lab.run('kubectl', '--kubeconfig', str(kubeconfig), 'get', 'configmaps', '-n', 'default',
                                '-o', 'json', env=env).stdout)
    return sorted(item['metadata']['name'] for item in listed['items'])


def test_etcd_is_saved_and_a_rebuilt_node_recovers_from_it(lab, talos_env, pve, tmp_path, consent):
    def mod(name, **args):
        outcome = run_module(talos_env, name, **args)
        assert outcome.rc == 0, '{0}: {1}'.format(name, outcome.result)
        return outcome

    with talos_vms(pve, 'talos-snap', roles=('cp',)) as machines:
        cp = machines['addresses']['cp']
        cluster = dict(secrets=mod('talos_secrets', vault_path='castle/it-{0}/talos'.format(
            uuid.uuid4().hex[:8])).result['bundle'], cluster_name='snaplab', cluster_endpoint='https://{0}:6443'.format(cp))
        made = mod('talos_machine_config', role='controlplane', hostname='cp-1', with_talosconfig=True, endpoints=[cp],
                   **cluster)
        config, connect = made.result['config'], dict(talosconfig_content=made.result['talosconfig'], endpoints=[cp])

        def configured():
            mod('talos_apply', config=config, nodes=[cp], **connect)
            info = run_module(talos_env, 'talos_info', nodes=[cp], **connect)
            return info.result.get('nodes', {}).get(cp, {}).get('state') == 'configured'
        until(configured, 'the control plane configured')
        assert mod('talos_bootstrap', nodes=[cp], **connect).changed
        kubeconfig = tmp_path / 'kubeconfig'
        mod('talos_kubeconfig', nodes=[cp], dest=str(kubeconfig), **connect)
        kept, later = 'kept-{0}'.format(uuid.uuid4().hex[:6]), 'later-{0}'.format(uuid.uuid4().hex[:6])
        lab.run('kubectl', '--kubeconfig', str(kubeconfig), 'create', 'configmap', kept, '-n', 'default',
                '--from-literal=state=kept', env=talos_env)

        backups = tmp_path / 'etcd'
        backups.mkdir()
        predicted = mod('talos_etcd_snapshot', check=True, nodes=[cp], dest=str(backups) + '/', **connect)
        assert predicted.changed and os.listdir(backups) == []
        taken = mod('talos_etcd_snapshot', nodes=[cp], dest=str(backups) + '/', max_age=600, **connect)
        snapshot = taken.result['path']
        data = open(snapshot, 'rb').read()
        assert taken.changed and taken.result['node'] == cp and taken.result['size'] == len(data)
        assert len(data) % 512 == 32  # etcd's sha256 trailer
        digest = hashlib.sha256(data).hexdigest()
        assert open(snapshot + '.sha256').read() == '{0}  {1}\n'.format(digest, os.path.basename(snapshot))
        assert os.stat(snapshot).st_mode & 0o777 == 0o600
        assert mod('talos_etcd_snapshot', nodes=[cp], dest=str(backups) + '/', max_age=600, **connect).changed is False
        lab.run('kubectl', '--kubeconfig', str(kubeconfig), 'create', 'configmap', later, '-n', 'default',
                '--from-literal=state=later', env=talos_env)
        assert {kept, later} <= set(configmaps(lab, talos_env, kubeconfig))

        # The node is wiped and configured again: its etcd is empty until a bootstrap.
        mod('talos_reset', nodes=[cp], graceful=False, **dict(consent('cp-1'), **connect))
        until(configured, 'the wiped control plane configured again')
        missing = run_module(talos_env, 'talos_bootstrap', nodes=[cp], recover_from=str(backups / 'none.db'),
                             **connect)
        assert missing.rc != 0 and missing.msg == 'recover_from: no snapshot file at {0}'.format(backups / 'none.db')
        recovered = mod('talos_bootstrap', nodes=[cp], recover_from=snapshot, **connect)
        assert recovered.changed and recovered.result['recovered_from'] == snapshot
        again = mod('talos_bootstrap', nodes=[cp], recover_from=snapshot, **connect)
        assert again.changed is False and again.result['members']

        def back():
            found = lab.run('kubectl', '--kubeconfig', str(kubeconfig), 'get', 'configmaps', '-n', 'default', '-o',
                            'json', env=talos_env, check=False)
            names = [item['metadata']['name'] for item in json.loads(found.stdout)['items']] if found.returncode == 0 \
                else []
            return kept in names and names
        assert later not in until(back, 'the objects of the snapshot back')
