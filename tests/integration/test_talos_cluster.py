"""playbooks/talos.yml end to end against the lab: Talos VMs on the lab's Proxmox VE, a 3 control-plane +
3 worker cluster from nothing, a re-run that changes nothing, and a rebuild of every VM that keeps the PKI
(the secrets bundle is read back from Vault), so the old kubeconfig still authenticates."""

import json

import hvac
import pytest
import yaml
from vm_helpers import play_recap

from conftest import remove_named

pytestmark = pytest.mark.lab

NODES = ['talos-cp-1', 'talos-cp-2', 'talos-cp-3', 'talos-w-1', 'talos-w-2', 'talos-w-3']


def playbook(lab, env):
    return lab.run('ansible-playbook', '-i', str(lab.inventory / 'hosts.yml'), 'playbooks/talos.yml', env=env,
                   check=False, timeout=900)


def ready_nodes(lab, env, kubeconfig, *extra):
    listed = json.loads(lab.run('kubectl', '--kubeconfig', str(kubeconfig), *extra, 'get', 'nodes', '-o', 'json',
                                env=env).stdout)
    return sorted(n['metadata']['name'] for n in listed['items']
                  if any(c['type'] == 'Ready' and c['status'] == 'True' for c in n['status']['conditions']))


@pytest.fixture(scope='module')
def cluster(lab, env, pve):
    inventory = yaml.safe_load((lab.inventory / 'hosts.yml').read_text())['all']['vars']
    yield {'first': playbook(lab, env), 'second': playbook(lab, env),
           'kubeconfig': lab.dir / 'talos' / 'castle' / 'kubeconfig', 'vault_path': 'castle/castle/talos',
           'inventory': inventory}
    remove_named(pve, *NODES)


def test_a_cluster_of_six_nodes_from_nothing(lab, env, cluster):
    assert cluster['first'].returncode == 0, cluster['first'].stdout[-4000:]
    assert ready_nodes(lab, env, cluster['kubeconfig']) == NODES
    assert 'BEGIN' not in cluster['first'].stdout


def test_a_second_run_changes_nothing(cluster):
    assert cluster['second'].returncode == 0, cluster['second'].stdout[-4000:]
    assert play_recap(cluster['second'])['changed'] == '0', cluster['second'].stdout[-4000:]


def test_a_rebuild_of_every_vm_keeps_the_pki(lab, env, pve, cluster):
    assert cluster['first'].returncode == 0
    vault = hvac.Client(url=env['VAULT_ADDR'], token=env['VAULT_TOKEN'], verify=env['VAULT_CACERT'])
    before = vault.secrets.kv.v2.read_secret_version(path=cluster['vault_path'], mount_point='kv', raise_on_deleted_version=True)['data']['data']
    old_kubeconfig = lab.dir / 'old-kubeconfig'
    old_kubeconfig.write_text(cluster['kubeconfig'].read_text())
    remove_named(pve, *NODES)
    rebuilt = playbook(lab, env)
    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    after = vault.secrets.kv.v2.read_secret_version(path=cluster['vault_path'], mount_point='kv', raise_on_deleted_version=True)['data']['data']
    assert after == before
    # New VMs get new MAC addresses and so new leases: the old credentials against the new endpoint.
    server = yaml.safe_load(cluster['kubeconfig'].read_text())['clusters'][0]['cluster']['server']
    assert ready_nodes(lab, env, old_kubeconfig, '--server', server) == NODES
