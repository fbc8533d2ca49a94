"""inventories/example rendered by the collection: every node's Talos machine config passes the lab's
upstream-strict validation, selects the node's NIC by its MAC, installs the Image Factory installer of the
cluster's three system extensions and mounts /var/lib/longhorn for the kubelet.

The configs come from the real playbooks, run offline with ansible-playbook -i inventories/example: the fleet
inventory plugin reads the cluster (its live Proxmox VE source has no token here, so it goes on with the
declared data at once), talos.yml takes the cluster's inputs from it (ephemeral.castle.cluster_inputs, as when
bootstrap.yml imports it), and talos.yml's tasks and the talos_cluster role's tasks run as written, up to and
including talos_machine_config (which runs the lab's talosctl validate --mode metal). Only the boundaries are
stood in for: the VMs are described by the fleet's own
MAC and address instead of being made on Proxmox VE, the secrets bundle comes from talosctl gen secrets instead
of Vault, and the factory is not asked to register the schematic (its ID is computed offline)."""

import copy
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import yaml

from ansible_collections.ephemeral.castle.plugins.module_utils import talos_factory
from conftest import REPO, VENV_BIN

EXAMPLE = REPO / 'inventories' / 'example'
EXTENSIONS = ['siderolabs/iscsi-tools', 'siderolabs/qemu-guest-agent', 'siderolabs/util-linux-tools']
LONGHORN_MOUNT = {'destination': '/var/lib/longhorn', 'type': 'bind', 'source': '/var/lib/longhorn',
                  'options': ['bind', 'rshared', 'rw']}


def module_of(task):
    return next((key for key in task if key.startswith(('ansible.builtin.', 'ephemeral.castle.'))), None)


def role_tasks(bundle, out):
    """roles/talos_cluster's tasks up to its machine configs, with the bundle in place of Vault's, then the
    configs written to `out`."""
    role = yaml.safe_load((REPO / 'roles' / 'talos_cluster' / 'tasks' / 'main.yml').read_text())
    assert len(role) == 1 and 'block' in role[0], 'roles/talos_cluster/tasks/main.yml is no longer one block'
    block = copy.deepcopy(role[0])
    kept = []
    for task in block['block']:
        if module_of(task) == 'ephemeral.castle.talos_secrets':
            task = {'name': task['name'], 'ansible.builtin.set_fact': {'talos_cluster_secrets': {'bundle': bundle}},
                    'no_log': True}
        kept.append(task)
        if module_of(task) == 'ephemeral.castle.talos_machine_config':
            break
    else:
        pytest.fail('roles/talos_cluster renders no configs with talos_machine_config')
    kept.append({'name': 'Keep what was rendered', 'no_log': True, 'ansible.builtin.copy': {
        'dest': str(out), 'mode': '0600',
        'content': "{{ {'configs': talos_cluster_configs.configs, 'factory': talos_playbook_factory,"
                   " 'vms': talos_playbook_vms, 'nodes': talos_cluster_nodes} | to_json }}"}})
    block['block'] = kept
    return [block]


def talos_play(tasks_file):
    """talos.yml's play, its Proxmox VE and Vault steps stood in for (see the module's docstring)."""
    play = copy.deepcopy(yaml.safe_load((REPO / 'playbooks' / 'talos.yml').read_text())[0])
    play.pop('environment', None)  # Vault's address and token, for talos_secrets
    tasks = []
    for task in play['tasks']:
        module = module_of(task)
        role = task.get('ansible.builtin.import_role', {}).get('name')
        if module in ('ephemeral.castle.proxmox_iso', 'ansible.builtin.file'):
            continue  # the ISO on Proxmox VE storage; the kubeconfig's directory in the operator's home
        if module == 'ephemeral.castle.talos_image_factory':
            task[module]['register'] = False
        if role == 'ephemeral.castle.proxmox_vms':
            # What the proxmox_vms role reports of running VMs: their NIC's MAC and the address it leased.
            task = {'name': task['name'], 'loop': '{{ talos_playbook_talos.nodes }}', 'ansible.builtin.set_fact': {
                'proxmox_vms_result': "{{ proxmox_vms_result | default({}) | combine({item.name: "
                                      "{'ips': [item.address], 'macs': {'net0': item.mac}}}) }}"}}
        elif role == 'ephemeral.castle.talos_cluster':
            task = {'name': task['name'], 'when': task['when'], 'vars': task['vars'],
                    'ansible.builtin.include_tasks': str(tasks_file)}
        tasks.append(task)
    play['tasks'] = tasks
    # The role's defaults, as import_role gives them; the fleet's only cluster, as bootstrap.yml asks for it.
    defaults = yaml.safe_load((REPO / 'roles' / 'talos_cluster' / 'defaults' / 'main.yml').read_text())
    play['vars'] = dict(defaults, **play['vars'], castle_use_fleet=True)
    return play


@pytest.fixture(scope='module')
def rendered(tmp_path_factory):
    """What the example's run rendered: {'configs', 'factory', 'vms', 'nodes'}, the fleet's cluster row and the
    ansible-playbook run; the lab's talosctl (gen secrets, gen config, validate) on PATH."""
    work = tmp_path_factory.mktemp('example')
    # Ansible's RPC host listens on a Unix socket under TMPDIR: a short one of its own.
    tmp = tempfile.mkdtemp(prefix='castle-example-')
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), TMPDIR=tmp, HOME=str(work),
               PATH='{0}:{1}'.format(VENV_BIN, os.environ['PATH']))
    env.pop('PROXMOX_TOKEN_SECRET', None)
    env.pop('ANSIBLE_INVENTORY', None)
    subprocess.run(['talosctl', 'gen', 'secrets', '--output-file', str(work / 'bundle.yaml')], env=env,
                   capture_output=True, text=True, check=True)
    bundle = (work / 'bundle.yaml').read_text()
    (work / 'talos_cluster.yml').write_text(yaml.safe_dump(role_tasks(bundle, work / 'rendered.json')))
    (work / 'example.yml').write_text(yaml.safe_dump([talos_play(work / 'talos_cluster.yml')]))
    inventory = subprocess.run([str(VENV_BIN / 'ansible-inventory'), '-i', str(EXAMPLE), '--list'], env=env,
                               cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    run = subprocess.run([str(VENV_BIN / 'ansible-playbook'), '-i', str(EXAMPLE), str(work / 'example.yml')],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    shutil.rmtree(tmp, ignore_errors=True)
    assert inventory.returncode == 0, inventory.stderr
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    hostvars = json.loads(inventory.stdout)['_meta']['hostvars']
    cluster = next(v['fleet_cluster'] for v in hostvars.values() if v.get('fleet_cluster', {}).get('name') == 'castle')
    nodes = [v['fleet_node'] for v in hostvars.values() if v.get('fleet_cluster_name') == 'castle']
    return dict(json.loads((work / 'rendered.json').read_text()), cluster=cluster, fleet_nodes=nodes, run=run,
                inventory=inventory, work=work, env=env)


def v1alpha1(text):
    """The v1alpha1 document of a machine config."""
    return next(d for d in yaml.safe_load_all(text) if d and d.get('version') == 'v1alpha1')


def test_the_fleet_is_read_offline_from_the_declared_data(rendered):
    assert 'live state of cluster(s) castle not read from https://pve1.example.internal:8006' in \
        rendered['inventory'].stderr.replace('\n', ' ')
    assert sorted(n['name'] for n in rendered['fleet_nodes']) == [
        'castle-cp-1', 'castle-cp-2', 'castle-cp-3', 'castle-w-1', 'castle-w-2']
    assert sorted(rendered['configs']) == sorted(n['name'] for n in rendered['fleet_nodes'])


def test_every_config_passes_the_labs_upstream_strict_validation(rendered):
    for hostname, made in sorted(rendered['configs'].items()):
        path = rendered['work'] / '{0}.yaml'.format(hostname)
        path.write_text(made['config'])
        checked = subprocess.run(['talosctl', 'validate', '--config', str(path), '--mode', 'metal'],
                                 env=rendered['env'], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, (hostname, checked.stdout, checked.stderr)


def test_each_node_selects_its_nic_by_the_fleets_mac(rendered):
    vip = rendered['cluster']['talos']['vip']
    for node in rendered['fleet_nodes']:
        network = v1alpha1(rendered['configs'][node['name']]['config'])['machine']['network']
        assert network['hostname'] == node['name']
        devices = network.get('interfaces') or []
        # No device is named: Talos names a Proxmox VE VM's virtio NIC ens18, never eth0.
        assert [d for d in devices if 'interface' in d] == [], (node['name'], devices)
        assert [d['deviceSelector'] for d in devices] == [{'hardwareAddr': node['mac'].lower()}] * len(devices)
        if node['role'] == 'controlplane':
            # The shared address goes on the device with the node's MAC, which leases its address by DHCP.
            assert devices == [{'deviceSelector': {'hardwareAddr': node['mac'].lower()}, 'dhcp': True,
                                'vip': {'ip': vip}}], (node['name'], devices)
        else:
            assert [d for d in devices if 'vip' in d] == [], (node['name'], devices)


def test_configs_install_the_factory_installer_of_the_three_extensions(rendered):
    talos = rendered['cluster']['talos']
    assert sorted(talos['extensions']) == EXTENSIONS
    expected = talos_factory.describe(EXTENSIONS)
    factory = rendered['factory']
    assert factory['schematic_id'] == expected['schematic_id']
    assert factory['schematic'] == expected['schematic']
    assert [name for name in EXTENSIONS if '- ' + name not in factory['schematic']] == []
    image = 'factory.talos.dev/metal-installer/{0}:{1}'.format(expected['schematic_id'], talos['version'])
    assert factory['installer_image'] == image
    for hostname, made in rendered['configs'].items():
        install = v1alpha1(made['config'])['machine']['install']
        assert install == dict(install, image=image, disk=talos['install_disk']), hostname


def test_configs_mount_var_lib_longhorn_for_the_kubelet(rendered):
    for hostname, made in rendered['configs'].items():
        kubelet = v1alpha1(made['config'])['machine']['kubelet']
        assert [m for m in kubelet.get('extraMounts', []) if m['destination'] == '/var/lib/longhorn'] == [
            LONGHORN_MOUNT], hostname


def test_configs_carry_the_clusters_endpoint_and_patches(rendered):
    talos = rendered['cluster']['talos']
    for node in rendered['fleet_nodes']:
        config = v1alpha1(rendered['configs'][node['name']]['config'])
        assert config['machine']['type'] == node['role']
        assert config['cluster']['controlPlane']['endpoint'] == talos['endpoint']
        assert config['machine']['time']['servers'] == ['time.cloudflare.com']
    # The worker the fleet puts on pve2 is described for that node (cloned on the template's, then migrated).
    placed = {vm['name']: vm.get('node') for vm in rendered['vms']}
    assert placed == {n['name']: n.get('proxmox_node') for n in rendered['fleet_nodes']}
