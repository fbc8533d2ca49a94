"""The Talos modules against the lab's Talos nodes with the lab's talosctl (found on PATH, as in use):
two VMs booting the Talos ISO through the lab's Proxmox API are taken from maintenance mode to a
bootstrapped, healthy cluster, read, and reset; the secrets bundle and kubeconfig are kept in the lab's Vault."""

import os
import stat
import uuid

import pytest
import yaml
from harness import play_recap, run_module, run_playbook
from talos_helpers import talos_vms, until

from conftest import VENV_BIN

pytestmark = pytest.mark.lab


@pytest.fixture(scope='module')
def nodes(pve):
    """A control-plane and a worker VM booting Talos: {'cp': address, 'worker': address}."""
    with talos_vms(pve, 'talos-mod') as machines:
        yield machines['addresses']


@pytest.fixture(scope='module')
def talos_env(env, tmp_path_factory):
    home = tmp_path_factory.mktemp('talos-home')
    (home / 'tmp').mkdir()
    # HOME without a ~/.talos/config: every call names its talosconfig. Async jobs are looked up where they
    # are written, whatever HOME says.
    return dict(env, HOME=str(home), TMPDIR=str(home / 'tmp'), ANSIBLE_ASYNC_DIR=str(home / 'async'),
                PATH='{0}:{1}'.format(VENV_BIN, env['PATH']))


def test_the_lab_cluster_from_maintenance_to_healthy_and_back(talos_env, nodes, tmp_path, consent):
    cp, worker = nodes['cp'], nodes['worker']
    path = 'castle/it-{0}'.format(uuid.uuid4().hex[:8])

    def mod(name, **args):
        outcome = run_module(talos_env, name, **args)
        assert outcome.rc == 0, '{0}: {1}'.format(name, outcome.result)
        return outcome

    bundle = mod('talos_secrets', vault_path=path + '/talos').result['bundle']
    assert mod('talos_secrets', vault_path=path + '/talos').changed is False

    cluster = dict(secrets=bundle, cluster_name='modlab', cluster_endpoint='https://{0}:6443'.format(cp),
                   role_patches={'worker': [{'machine': {'nodeLabels': {'role': 'worker'}}}]})
    cp_made = mod('talos_machine_config', role='controlplane', hostname='cp-1', with_talosconfig=True,
                  endpoints=[cp], nodes=[cp], compare_to_node=True, **cluster)
    assert cp_made.result['node_state'] == 'maintenance' and cp_made.result['differs'] is True
    cp_config, talosconfig = cp_made.result['config'], cp_made.result['talosconfig']
    assert yaml.safe_load(talosconfig)['contexts']['modlab']['endpoints'] == [cp]
    worker_config = mod('talos_machine_config', role='worker', hostname='worker-1', **cluster).result['config']
    assert yaml.safe_load(worker_config)['machine']['nodeLabels'] == {'role': 'worker'}
    connect = dict(talosconfig_content=talosconfig, endpoints=[cp])

    predicted = mod('talos_apply', check=True, config=cp_config, nodes=[cp], **connect)
    assert predicted.changed and predicted.result['node_state'] == 'maintenance'
    for address, config in ((cp, cp_config), (worker, worker_config)):
        applied = mod('talos_apply', config=config, nodes=[address], **connect)
        assert applied.changed and applied.result['node_state'] == 'maintenance'

    def configured():
        info = run_module(talos_env, 'talos_info', nodes=[cp, worker], **connect)
        states = [n['state'] for n in info.result.get('nodes', {}).values()]
        return info if states == ['configured', 'configured'] else None
    until(configured, 'both nodes configured')

    same = mod('talos_apply', config=cp_config, nodes=[cp], **connect)
    assert same.changed is False and same.result['node_state'] == 'configured'
    # An insecure apply tried again after the node took the config (its answer lost): the node runs exactly
    # that config, so it is done. Another config is refused all the same.
    retried = mod('talos_apply', config=cp_config, nodes=[cp], insecure=True, **connect)
    assert retried.result['answer'] == 'The node already runs this config\n'
    other = cp_config.replace('hostname: cp-1', 'hostname: cp-9')
    assert other != cp_config
    refused_insecure = run_module(talos_env, 'talos_apply', config=other, nodes=[cp], insecure=True, **connect)
    assert refused_insecure.rc != 0 and 'apply-config failed' in refused_insecure.result['msg']
    compared = mod('talos_machine_config', role='controlplane', hostname='cp-1', nodes=[cp], compare_to_node=True,
                   **dict(cluster, **connect))
    assert compared.result['differs'] is False

    booted = mod('talos_bootstrap', nodes=[cp], **connect)
    assert booted.changed and booted.result['members'] == []
    again = mod('talos_bootstrap', nodes=[cp], **connect)
    assert again.changed is False and again.result['members']

    kubeconfig = tmp_path / 'kubeconfig'
    fetched = mod('talos_kubeconfig', nodes=[cp], dest=str(kubeconfig), vault_path=path + '/kubeconfig', **connect)
    assert fetched.changed and fetched.result['servers'] == ['https://{0}:6443'.format(cp)]
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert mod('talos_kubeconfig', nodes=[cp], dest=str(kubeconfig), vault_path=path + '/kubeconfig',
               **connect).changed is False

    healthy = mod('talos_health', control_plane_nodes=[cp], worker_nodes=[worker], wait_timeout=60, **connect)
    assert healthy.result['checked'] == [cp, worker] and healthy.result['not_configured'] == []
    assert any(line.startswith('waiting for all k8s nodes to report ready: OK') for line in healthy.result['checks'])

    info = mod('talos_info', nodes=[cp, worker], **connect).result
    assert info['nodes'][cp]['version'] == 'v1.11.6' and info['nodes'][cp]['stage'] == 'running'
    assert len(info['members']) == 2 and info['etcd_members']

    storage = dict(cluster)
    storage['role_patches'] = {'worker': [{'machine': {'nodeLabels': {'role': 'storage'}}}]}
    changed = mod('talos_machine_config', role='worker', hostname='worker-1', **storage).result['config']
    shown = mod('talos_apply', check=True, diff=True, config=changed, nodes=[worker], mode='no-reboot', **connect)
    assert shown.changed and shown.result['dry_run']
    assert [line for line in shown.stdout.splitlines() if line.startswith('+') and 'role: storage' in line]
    updated = mod('talos_apply', config=changed, nodes=[worker], mode='no-reboot', **connect)
    assert updated.changed and updated.result['node_state'] == 'configured'
    assert mod('talos_apply', config=changed, nodes=[worker], mode='no-reboot', **connect).changed is False

    refused = run_module(talos_env, 'talos_reset', nodes=[worker], **connect)
    assert refused.rc != 0 and 'give gate_token' in refused.result['msg']
    assert mod('talos_info', nodes=[worker], **connect).result['nodes'][worker]['state'] == 'configured'
    token = consent('worker-1')
    reset = mod('talos_reset', nodes=[worker], graceful=False, **token, **connect)
    assert reset.changed and reset.result['hostname'] == 'worker-1'
    assert reset.result['state_after'] in ('maintenance', 'unreachable')  # the module waited for the reset

    def in_maintenance():
        found = run_module(talos_env, 'talos_info', nodes=[worker], **connect).result.get('nodes', {})
        return found.get(worker, {}).get('state') == 'maintenance'
    until(in_maintenance, 'the worker back in maintenance')
    assert mod('talos_reset', nodes=[worker], **token, **connect).changed is False
    assert run_module(talos_env, 'talos_reset', nodes=[worker], **connect).rc != 0  # the token is asked for all the same

    partial = mod('talos_health', control_plane_nodes=[cp], worker_nodes=[worker], wait_timeout=30, **connect)
    assert partial.result['not_configured'] == [worker]
    assert [p for p in os.listdir(talos_env['TMPDIR']) if p.startswith('castle-talos-')] == []


def test_the_role_builds_a_lab_cluster_then_changes_nothing(talos_env, pve, tmp_path):
    with talos_vms(pve, 'talos-role') as machines:
        cp, worker = machines['addresses']['cp'], machines['addresses']['worker']
        role_vars = dict(
            talos_cluster_name='rolelab', talos_cluster_endpoint='https://{0}:6443'.format(cp),
            talos_cluster_vault_path='castle/it-{0}/talos'.format(uuid.uuid4().hex[:8]),
            talos_cluster_kubeconfig_vault_path='', talos_cluster_kubeconfig_path=str(tmp_path / 'kubeconfig'),
            talos_cluster_talosconfig_path=str(tmp_path / 'talosconfig'), talos_cluster_health_timeout=60,
            talos_cluster_bootstrap_retries=6,
            talos_cluster_nodes=[dict(hostname='cp-1', address=cp, role='controlplane'),
                                 dict(hostname='worker-1', address=worker, role='worker')])
        playbook = tmp_path / 'talos.yml'
        playbook.write_text(yaml.safe_dump([dict(name='Talos cluster', hosts='localhost', gather_facts=False, roles=[
            dict(role='ephemeral.castle.talos_cluster', vars=role_vars)])]))

        def play():
            return run_playbook(talos_env, playbook)

        first = play()
        assert first.returncode == 0, first.stdout[-4000:]
        assert 'BEGIN' not in first.stdout and 'token:' not in first.stdout
        kubeconfig = yaml.safe_load((tmp_path / 'kubeconfig').read_text())
        assert kubeconfig['clusters'][0]['cluster']['server'] == 'https://{0}:6443'.format(cp)
        again = play()
        assert again.returncode == 0, again.stdout[-4000:]
        assert play_recap(again)['localhost']['changed'] == 0, again.stdout[-4000:]
