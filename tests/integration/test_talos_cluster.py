"""playbooks/talos.yml end to end against the lab: check mode on an empty lab, Talos VMs on the lab's Proxmox
VE, a 3 control-plane + 3 worker cluster from nothing, a re-run that changes nothing, a node patch shown by
check mode and applied to that node only, reset nodes brought back by a re-run, and a rebuild of every VM that
keeps the PKI (the secrets bundle is read back from Vault), so the old kubeconfig still authenticates.

The tests share one cluster and run in file order: each leaves it healthy for the next."""

import hashlib
import json
import re

import hvac
import pytest
import yaml
from castle_lab.control import ProxmoxControl
from harness import play_recap, run_module, run_playbook
from talos_helpers import until

from conftest import find, remove_named

pytestmark = pytest.mark.lab

NODES = ['talos-cp-1', 'talos-cp-2', 'talos-cp-3', 'talos-w-1', 'talos-w-2', 'talos-w-3']


PATCHED = 'talos-w-2'
LABEL = {'castle.ephemeral/patched': 'yes'}


def playbook(lab, env, *extra):
    return run_playbook(env, 'playbooks/talos.yml', *extra, inventory=lab.inventory / 'hosts.yml')


def with_patch(cluster):
    """-e for the lab's cluster with a node patch on one worker."""
    talos = json.loads(json.dumps(cluster['inventory']['castle_talos']))
    for node in talos['nodes']:
        if node['name'] == PATCHED:
            node['patches'] = [{'machine': {'nodeLabels': LABEL}}]
    return ('-e', json.dumps({'castle_talos': talos}))


def talos_nodes(env):
    """{hostname: {'address', 'stage', ...}} of the lab's Talos nodes, from the Proxmox control API."""
    return {n['hostname']: n for n in ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL']).talos_nodes()
            if n['hostname'] in NODES}


def stages(env, addresses):
    """The stage of the Talos node at each address (a node in maintenance mode has no hostname of ours)."""
    found = {n['address']: n['stage'] for n in ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL']).talos_nodes()}
    return [found.get(address) for address in addresses]


def running_configs(lab, env, talosconfig):
    """{hostname: (SHA-256 of the machine config the node runs, the config)} read with talosctl."""
    found = {}
    for hostname, node in talos_nodes(env).items():
        out = lab.run('talosctl', '--talosconfig', str(talosconfig), '--nodes', node['address'],
                      'get', 'machineconfig', 'v1alpha1', '--output', 'yaml', env=env).stdout
        spec = yaml.safe_load(out)['spec']
        text = spec if isinstance(spec, str) else yaml.safe_dump(spec)
        found[hostname] = (hashlib.sha256(text.encode()).hexdigest(), list(yaml.safe_load_all(text)))
    return found


def machine(docs):
    return next(d for d in docs if d and d.get('kind') is None and 'machine' in d)['machine']


def etcd_hostnames(lab, env, talosconfig, address):
    out = lab.run('talosctl', '--talosconfig', str(talosconfig), '--nodes', address, 'etcd', 'members',
                  env=env).stdout.splitlines()
    column = out[0].split().index('HOSTNAME')
    return sorted(line.split()[column] for line in out[1:] if line.strip())


def diffed_nodes(stdout):
    """Addresses the diff output names (its '+++ after: <node>' headers)."""
    return sorted(set(re.findall(r'^\+\+\+ after: (\S+)$', stdout, re.MULTILINE)))


def ready_nodes(lab, env, kubeconfig, *extra):
    listed = json.loads(lab.run('kubectl', '--kubeconfig', str(kubeconfig), *extra, 'get', 'nodes', '-o', 'json',
                                env=env).stdout)
    return sorted(n['metadata']['name'] for n in listed['items']
                  if any(c['type'] == 'Ready' and c['status'] == 'True' for c in n['status']['conditions']))


class InventoryLoader(yaml.SafeLoader):
    """hosts.yml as ansible reads it, but ansible-vault encrypted values (!vault) kept as their ciphertext."""


def _vault_text(loader, node):
    return loader.construct_scalar(node)


InventoryLoader.add_constructor('!vault', _vault_text)


@pytest.fixture(scope='module')
def cluster(lab, env, pve):
    inventory = yaml.load((lab.inventory / 'hosts.yml').read_text(), Loader=InventoryLoader)['all']['vars']
    # The Proxmox VE requests of the build from nothing alone, with their parameters.
    control = ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL'])
    control.reset_requests()
    first = playbook(lab, env)
    requests = control.requests(params=True)['requests']
    yield {'first': first, 'requests': requests, 'second': playbook(lab, env),
           'kubeconfig': lab.dir / 'talos' / 'castle' / 'kubeconfig', 'vault_path': 'castle/castle/talos',
           'talosconfig': lab.dir / 'talos' / 'castle' / 'talosconfig', 'inventory': inventory}
    remove_named(pve, *NODES)


def test_check_mode_on_an_empty_lab_creates_nothing(lab, env, pve):
    remove_named(pve, *NODES)
    # Another test file may have built (and wiped) this cluster in the same lab before: its kubeconfig then stays.
    kubeconfig = lab.dir / 'talos' / 'castle' / 'kubeconfig'
    before = kubeconfig.read_bytes() if kubeconfig.exists() else None
    predicted = playbook(lab, env, '--check', '--diff')
    assert predicted.returncode == 0, predicted.stdout[-4000:]
    assert [n for n in NODES if find(pve, n)] == []
    assert 'no address yet' in predicted.stdout and 'not checked at all' in predicted.stdout
    assert (kubeconfig.read_bytes() if kubeconfig.exists() else None) == before


def test_a_cluster_of_six_nodes_from_nothing(lab, env, cluster):
    assert cluster['first'].returncode == 0, cluster['first'].stdout[-4000:]
    assert ready_nodes(lab, env, cluster['kubeconfig']) == NODES
    assert 'BEGIN' not in cluster['first'].stdout


def test_the_worker_on_pve2_is_cloned_on_the_template_node_then_migrated(pve, cluster):
    """The template's disk is on pve1's local-lvm: real Proxmox VE refuses a clone with target=pve2 ("can't clone
    VM to node 'pve2' (VM uses local storage)"), so every clone is made on the template's node and talos-w-3 moves
    to pve2 by an offline migration."""
    assert cluster['first'].returncode == 0, cluster['first'].stdout[-4000:]
    template = find(pve, cluster['inventory']['castle_talos']['template'])[0]
    clones = [r for r in cluster['requests'] if r[0] == 'POST' and r[1].endswith('/clone')]
    assert [r[1] for r in clones] == ['/nodes/{node}/qemu/{vmid}/clone'.format(**template)] * len(NODES), clones
    assert [r[2]['target'] for r in clones if r[2].get('target', template['node']) != template['node']] == []
    vm = find(pve, 'talos-w-3')[0]
    assert (vm['node'], vm['status']) == ('pve2', 'running')
    migrations = [r for r in cluster['requests'] if r[0] == 'POST' and r[1].endswith('/migrate')]
    assert [(r[1], r[2].get('target')) for r in migrations] == [
        ('/nodes/{0}/qemu/{1}/migrate'.format(template['node'], vm['vmid']), 'pve2')], migrations
    assert {find(pve, n)[0]['node'] for n in NODES if n != 'talos-w-3'} == {template['node']}


def test_a_second_run_changes_nothing(cluster):
    assert cluster['second'].returncode == 0, cluster['second'].stdout[-4000:]
    assert play_recap(cluster['second'])['localhost']['changed'] == 0, cluster['second'].stdout[-4000:]


def test_check_mode_shows_a_node_patch_and_changes_nothing(lab, env, cluster):
    before = running_configs(lab, env, cluster['talosconfig'])
    predicted = playbook(lab, env, '--check', '--diff', *with_patch(cluster))
    assert predicted.returncode == 0, predicted.stdout[-4000:]
    nodes = talos_nodes(env)
    assert diffed_nodes(predicted.stdout) == [nodes[PATCHED]['address']], predicted.stdout[-4000:]
    assert '+    nodeLabels:' in predicted.stdout or '+  nodeLabels:' in predicted.stdout
    assert '{0}: would be applied'.format(PATCHED) in predicted.stdout
    assert running_configs(lab, env, cluster['talosconfig']) == before
    assert sorted(n['stage'] for n in nodes.values()) == ['running'] * len(NODES)


def test_a_node_patch_is_applied_to_that_node_only(lab, env, cluster):
    before = running_configs(lab, env, cluster['talosconfig'])
    applied = playbook(lab, env, *with_patch(cluster))
    assert applied.returncode == 0, applied.stdout[-4000:]
    assert play_recap(applied)['localhost']['changed'] == 1, applied.stdout[-4000:]
    after = running_configs(lab, env, cluster['talosconfig'])
    assert sorted(h for h in NODES if after[h][0] != before[h][0]) == [PATCHED]
    assert machine(after[PATCHED][1])['nodeLabels'] == LABEL
    again = playbook(lab, env, *with_patch(cluster))
    assert again.returncode == 0, again.stdout[-4000:]
    assert play_recap(again)['localhost']['changed'] == 0, again.stdout[-4000:]


def test_reset_nodes_are_restored_by_a_rerun(lab, env, cluster, consent):
    nodes = talos_nodes(env)
    talosconfig = str(cluster['talosconfig'])
    for hostname in ('talos-w-3', 'talos-cp-2'):
        reset = run_module(env, 'talos_reset', nodes=[nodes[hostname]['address']], talosconfig=talosconfig,
                           **consent(hostname))
        assert reset.rc == 0, reset.result
    reset_addresses = [nodes[h]['address'] for h in ('talos-w-3', 'talos-cp-2')]
    until(lambda: stages(env, reset_addresses) == ['maintenance', 'maintenance'], 'the reset nodes in maintenance mode')
    first = nodes['talos-cp-1']['address']
    assert etcd_hostnames(lab, env, talosconfig, first) == ['talos-cp-1', 'talos-cp-3']
    restored = playbook(lab, env, *with_patch(cluster))
    assert restored.returncode == 0, restored.stdout[-4000:]
    assert 'talos-w-3: applied (maintenance)' in restored.stdout
    assert 'talos-cp-2: applied (maintenance)' in restored.stdout
    assert 'talos-w-1: unchanged (configured)' in restored.stdout
    assert ready_nodes(lab, env, cluster['kubeconfig']) == NODES
    assert etcd_hostnames(lab, env, talosconfig, first) == ['talos-cp-1', 'talos-cp-2', 'talos-cp-3']
    assert sorted(n['stage'] for n in talos_nodes(env).values()) == ['running'] * len(NODES)


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
