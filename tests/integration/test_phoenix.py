"""playbooks/bootstrap.yml and playbooks/phoenix.yml end to end against the lab, with the lab's fleet file
(written by `castle-lab up` beside hosts.yml): the cluster `castle` from nothing, a refused phoenix that changes
nothing, phoenix runs that fail midway (a Proxmox 5xx burst, a Talos node that does not come back) and a re-run
that completes with the same PKI and the services' secrets back from Vault, bootstrap changing nothing after it,
and an overridden machine phoenix recorded in the journal and the fleet file; each wipe done with the token the
gate issued for it, as the journal shows. Phoenix without a controller group or a target fails at once, with no lab.

The tests share one cluster and run in file order."""

import base64
import hashlib
import json
import os
import re
import urllib.request
from urllib.parse import urlparse

import hvac
import pytest
import yaml
from castle_lab.control import ProxmoxControl
from castle_lab.talos import factory

from ansible_collections.ephemeral.castle.plugins.module_utils import gate
from conftest import REPO, find, remove_named
from harness import play_recap, run_playbook

pytestmark = pytest.mark.lab

NODES = ['talos-cp-1', 'talos-cp-2', 'talos-cp-3', 'talos-w-1', 'talos-w-2', 'talos-w-3']
SERVICES = {'blog': 'blog', 'kaze': 'kaze', 'mcp': 'mcp'}  # service -> namespace
DEFAULT_SCHEMATIC_ID = factory.schematic_id(factory.marshal(factory.default_schematic()))
WORKLOADS_ON_PVE_OLD = ['blog', 'kaze', 'mcp', 'identity', 'openbao']


# A fleet inventory the gate never gets to: the run stops before any play on the controller.
FLEET = {'plugin': 'ephemeral.castle.fleet', 'live': False, 'fleet': {
    'machines': [{'name': 'pve-old', 'role': 'frozen', 'state': 'draining'}],
    'clusters': [{'name': 'castle', 'nodes': [{'name': 'cp-1', 'role': 'controlplane'}]}]}}
CONTROLLER = {'all': {'children': {'controller': {'hosts': {'localhost': {
    'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}'}}}}}}


def offline_phoenix(tmp_path, inventory, *extra, playbook='phoenix.yml'):
    """phoenix.yml (or another playbook) against an inventory directory of the given files ({name: content}),
    no lab."""
    directory = tmp_path / 'inventory'
    directory.mkdir()
    for name, content in inventory.items():
        (directory / name).write_text(yaml.safe_dump(content))
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'CASTLE_', 'PROXMOX_'))}
    return directory, run_playbook(env, REPO / 'playbooks' / playbook, *extra, inventory=directory)


def test_phoenix_without_a_controller_group_fails_saying_so_and_changes_nothing(tmp_path):
    directory, run = offline_phoenix(tmp_path, {'site.fleet.yml': FLEET}, '-e', 'target=castle')
    assert run.returncode != 0, run.stdout[-3000:]
    assert 'the inventory has no controller group' in run.stdout and 'Nothing was changed' in run.stdout
    assert 'fleet_gate' not in run.stdout and 'S0 gate' not in run.stdout
    assert sorted(p.name for p in directory.iterdir()) == ['site.fleet.yml']  # no journal


def test_bootstrap_without_a_controller_group_fails_saying_so(tmp_path):
    directory, run = offline_phoenix(tmp_path, {'site.fleet.yml': FLEET}, playbook='bootstrap.yml')
    assert run.returncode != 0, run.stdout[-3000:]
    assert 'the inventory has none' in run.stdout and 'Nothing was changed' in run.stdout
    assert sorted(p.name for p in directory.iterdir()) == ['site.fleet.yml']


def test_phoenix_without_a_target_fails_saying_so(tmp_path):
    directory, run = offline_phoenix(tmp_path, {'site.fleet.yml': FLEET, 'hosts.yml': CONTROLLER})
    assert run.returncode != 0, run.stdout[-3000:]
    assert 'no target is given' in run.stdout and 'Nothing was changed' in run.stdout
    assert 'S0 gate' not in run.stdout
    assert sorted(p.name for p in directory.iterdir()) == ['hosts.yml', 'site.fleet.yml']


def playbook(lab, env, name, *extra):
    return lab.run('ansible-playbook', '-i', str(lab.inventory), 'playbooks/' + name, *extra, env=env, check=False,
                   timeout=1500)


def kubectl(lab, env, kubeconfig, *args):
    return json.loads(lab.run('kubectl', '--kubeconfig', str(kubeconfig), *args, '-o', 'json', env=env).stdout)


def ready_nodes(lab, env, kubeconfig, *extra):
    return sorted(n['metadata']['name'] for n in kubectl(lab, env, kubeconfig, *extra, 'get', 'nodes')['items']
                  if any(c['type'] == 'Ready' and c['status'] == 'True' for c in n['status']['conditions']))


def vault(env):
    return hvac.Client(url=env['VAULT_ADDR'], token=env['VAULT_TOKEN'], verify=env['VAULT_CACERT'])


def synced_secrets(lab, env, kubeconfig):
    """{service: (the Secret's data, the service's KV data in Vault)}."""
    found = {}
    for service, namespace in SERVICES.items():
        secret = kubectl(lab, env, kubeconfig, '-n', namespace, 'get', 'secret', service)
        data = {k: base64.b64decode(v).decode() for k, v in secret['data'].items()}
        stored = vault(env).secrets.kv.v2.read_secret_version(path=service, mount_point='kv',
                                                              raise_on_deleted_version=True)['data']['data']
        found[service] = (data, stored)
    return found


def flux_not_ready(lab, env, kubeconfig):
    objects = []
    for kind in ('gitrepositories', 'kustomizations', 'helmreleases', 'helmrepositories'):
        objects += kubectl(lab, env, kubeconfig, 'get', kind, '-A')['items']
    return sorted('{0}/{1}'.format(o['kind'], o['metadata']['name']) for o in objects
                  if not any(c['type'] == 'Ready' and c['status'] == 'True'
                             for c in o.get('status', {}).get('conditions', [])))


def cluster_ca(kubeconfig):
    return yaml.safe_load(kubeconfig.read_text())['clusters'][0]['cluster']['certificate-authority-data']


def snapshot(lab, env, pve, kubeconfig):
    """What phoenix could change: Proxmox VMs, Talos nodes, Vault's Talos secrets and service paths, the cluster."""
    client = vault(env)
    versions = {path: client.secrets.kv.v2.read_secret_metadata(path=path, mount_point='kv')['data']['current_version']
                for path in ['castle/castle/talos'] + list(SERVICES)}
    objects = kubectl(lab, env, kubeconfig, 'get', 'nodes,namespaces,externalsecrets,kustomizations', '-A')['items']
    return {'vms': sorted((vm['vmid'], vm['name'], vm['status']) for vm in pve.cluster.resources.get(type='vm')),
            'talos': ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL']).talos_nodes(),
            'vault': versions, 'auth': sorted(client.sys.list_auth_methods()['data']),
            # What the objects are and what they ask for (status writes, such as ExternalSecret refreshes, aside).
            'cluster': sorted((o['kind'], o['metadata']['name'], o['metadata']['uid'], o['metadata'].get('generation'))
                              for o in objects)}


@pytest.fixture(scope='module')
def fleet(lab, env, pve, installed_collection):
    remove_named(pve, *NODES)
    journal = lab.inventory / 'phoenix-journal.md'
    journal.unlink(missing_ok=True)
    # The first bootstrap runs the built collection, installed with only its declared dependencies.
    built = run_playbook(dict(env, **installed_collection.env), 'ephemeral.castle.bootstrap', inventory=lab.inventory)
    yield {'bootstrap': built, 'kubeconfig': lab.dir / 'talos' / 'castle' / 'kubeconfig',
           'fleet_file': lab.inventory / 'lab.fleet.yml', 'journal': journal}
    ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL']).clear_faults()
    remove_named(pve, *NODES)


def fleet_nodes(fleet):
    """{name: the node's row} of the lab fleet's cluster."""
    doc = yaml.safe_load(fleet['fleet_file'].read_text())
    return {n['name']: n for n in doc['fleet']['clusters'][0]['nodes']}


def node_addresses(env):
    """{hostname: address} of the configured Talos nodes, as the lab's nodes report them."""
    return {n['hostname']: n['address'] for n in ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL']).talos_nodes()
            if n.get('hostname') in NODES}


def last_token(fleet, target):
    """The last token the gate issued for `target` in the journal, and every use of it: (issue record, [(action,
    name)])."""
    found = gate.records(str(fleet['journal']))
    issued = [r for r in found if r['event'] == 'issue' and r['target'] == target][-1]
    return issued, [(r['action'], r['name']) for r in found if r['event'] == 'use' and r['id'] == issued['id']]


def test_bootstrap_builds_the_cluster_of_the_fleet(lab, env, pve, fleet):
    built = fleet['bootstrap']
    assert built.returncode == 0, built.stdout[-4000:]
    assert ready_nodes(lab, env, fleet['kubeconfig']) == NODES
    # The VMs and Talos configs follow the fleet: each node's MAC and disk, the cluster's patches and version.
    rows = fleet_nodes(fleet)
    for name, row in rows.items():
        vm = find(pve, name)[0]
        config = pve.nodes(vm['node']).qemu(vm['vmid']).config.get()
        assert config['net0'].startswith('virtio=' + row['mac'].upper() + ','), config['net0']
        assert 'size={0}'.format(row.get('disk', '20G')) in config['scsi0'], config['scsi0']
    talosconfig = lab.dir / 'talos' / 'castle' / 'talosconfig'
    for address in node_addresses(env).values():
        out = lab.run('talosctl', '--talosconfig', str(talosconfig), '--nodes', address,
                      'get', 'machineconfig', 'v1alpha1', '--output', 'yaml', env=env).stdout
        spec = yaml.safe_load(out)['spec']
        machine = next(d for d in yaml.safe_load_all(spec if isinstance(spec, str) else yaml.safe_dump(spec))
                       if d and 'machine' in d)['machine']
        assert machine['time']['servers'] == ['time.lab.castle.internal']
        # The lab factory's installer of the fleet's schematic (guest agent, iscsi-tools, util-linux-tools).
        assert machine['install']['image'] == '{0}/metal-installer/{1}:v1.11.6'.format(
            env['CASTLE_LAB_FACTORY_URL'].split('://', 1)[1], DEFAULT_SCHEMATIC_ID)
        assert machine['kubelet']['extraMounts'][0]['destination'] == '/var/lib/longhorn'
    assert flux_not_ready(lab, env, fleet['kubeconfig']) == []
    for service, (data, stored) in synced_secrets(lab, env, fleet['kubeconfig']).items():
        assert data == stored and data, service
    # The seeded secrets come from ansible-vault encrypted inventory values and are never printed.
    for data, _stored in synced_secrets(lab, env, fleet['kubeconfig']).values():
        for value in data.values():
            assert value not in built.stdout


def test_phoenix_refuses_a_machine_that_still_hosts_workloads_and_changes_nothing(lab, env, pve, fleet):
    before = snapshot(lab, env, pve, fleet['kubeconfig'])
    fleet_text = fleet['fleet_file'].read_text()
    refused = playbook(lab, env, 'phoenix.yml', '-e', 'target=pve-old')
    assert refused.returncode != 0
    for workload in WORKLOADS_ON_PVE_OLD:
        assert '[not-drained] workload {0} still runs on pve-old'.format(workload) in refused.stdout
    assert '[no-backup-restore] stateful workload openbao' in refused.stdout
    assert 'nothing was changed' in refused.stdout
    assert snapshot(lab, env, pve, fleet['kubeconfig']) == before
    assert fleet['fleet_file'].read_text() == fleet_text
    assert not fleet['journal'].exists()


def volume_data(kubeconfig, claim, data=None):
    """The bytes in a claim's volume, read (or written, standing for the workload) through the cluster's kube control
    API, at the Kubernetes API's port + 1."""
    server = urlparse(yaml.safe_load(kubeconfig.read_text())['clusters'][0]['cluster']['server'])
    url = 'http://{0}:{1}/volumes/{2}/data'.format(server.hostname, server.port + 1, claim)
    request = urllib.request.Request(url, data=data, method='GET' if data is None else 'PUT')
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read()


def s3_outage(env, down):
    request = urllib.request.Request(env['CASTLE_LAB_S3_CONTROL'] + '/outage', method='PUT' if down else 'DELETE')
    urllib.request.urlopen(request, timeout=30).close()


def test_phoenix_refuses_at_s0_when_the_backup_target_is_down_and_changes_nothing(lab, env, pve, fleet):
    before = snapshot(lab, env, pve, fleet['kubeconfig'])
    journal = fleet['journal'].read_text() if fleet['journal'].exists() else None
    s3_outage(env, True)
    try:
        refused = playbook(lab, env, 'phoenix.yml', '-e', 'target=castle')
    finally:
        s3_outage(env, False)
    assert refused.returncode != 0
    assert re.search(r'\[backup-failed\] volume backup \S+ of claim blog/blog-content did not complete',
                     refused.stdout), refused.stdout[-4000:]
    assert 'phoenix refuses to wipe castle; nothing was changed' in refused.stdout
    assert snapshot(lab, env, pve, fleet['kubeconfig']) == before
    assert (fleet['journal'].read_text() if fleet['journal'].exists() else None) == journal


def test_phoenix_of_the_cluster_fails_midway_clearly_and_a_rerun_completes(lab, env, pve, fleet):
    control = ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL'])
    # What the blog wrote into its volume: backed up at S0, restored before Flux starts the blog again.
    content = os.urandom(64 * 1024)
    volume_data(fleet['kubeconfig'], 'blog/blog-content', content)
    old_kubeconfig = fleet['kubeconfig'].read_text()
    addresses = node_addresses(env)
    ca = cluster_ca(fleet['kubeconfig'])
    secrets_before = synced_secrets(lab, env, fleet['kubeconfig'])

    # A burst of 500s on one VM's destroy, longer than the client's retries: phoenix stops, naming it.
    victim = find(pve, 'talos-w-1')[0]
    control.fail('DELETE', '/nodes/{node}/qemu/{vmid}'.format(**victim), status=500, message='storage busy', times=50)
    burst = playbook(lab, env, 'phoenix.yml', '-e', 'target=castle')
    control.clear_faults()
    assert burst.returncode != 0
    assert 'talos-w-1: DELETE nodes/pve1/qemu/{vmid} failed after'.format(**victim) in burst.stdout, burst.stdout[-4000:]
    assert 'storage busy' in burst.stdout and 'a re-run completes them' in burst.stdout
    assert [vm['name'] for vm in pve.cluster.resources.get(type='vm') if vm['name'] in NODES] == ['talos-w-1']

    # Rebuilt, one node's Talos does not come back: phoenix stops when its VM reports no address in time.
    control.talos_hang('talos-w-3')
    hung = playbook(lab, env, 'phoenix.yml', '-e', 'target=castle', '-e', 'proxmox_vms_timeout=30')
    control.talos_hang('talos-w-3', False)
    assert hung.returncode != 0
    assert re.search(r'talos-w-3.*(address|agent)', hung.stdout), hung.stdout[-4000:]

    completed = playbook(lab, env, 'phoenix.yml', '-e', 'target=castle')
    assert completed.returncode == 0, completed.stdout[-4000:]
    summary = completed.stdout.rsplit("TASK [Each stage's duration]", 1)[1]
    stages = re.findall(r'"(S0 backups|S0 gate|S1 wipe|S1 rebuild|S2 join|S3 prove|total) [0-9.]+ s"', summary)
    assert stages == ['S0 backups', 'S0 gate', 'S1 wipe', 'S1 rebuild', 'S2 join', 'S3 prove', 'total'], summary

    assert ready_nodes(lab, env, fleet['kubeconfig']) == NODES
    assert cluster_ca(fleet['kubeconfig']) == ca  # the same Talos PKI, read back from Vault
    old = lab.dir / 'talos' / 'castle' / 'kubeconfig.before-phoenix'
    old.write_text(old_kubeconfig)
    # Every node is back at its address (its pinned MAC keeps its DHCP reservation), so the kubeconfig from
    # before phoenix works as it is.
    assert node_addresses(env) == addresses
    assert ready_nodes(lab, env, old) == NODES
    assert flux_not_ready(lab, env, fleet['kubeconfig']) == []
    secrets_after = synced_secrets(lab, env, fleet['kubeconfig'])
    for service, (data, stored) in secrets_after.items():
        assert data == stored == secrets_before[service][1], service
    assert hashlib.sha256(volume_data(fleet['kubeconfig'], 'blog/blog-content')).hexdigest() == \
        hashlib.sha256(content).hexdigest()
    journal = fleet['journal'].read_text().splitlines()
    assert len([line for line in journal if 'castle (cluster)' in line and 'gate passed' in line]) == 3
    # The last run's token cleared the cluster's nodes and destroyed each of their VMs (rebuilt by the run before).
    issued, uses = last_token(fleet, 'castle')
    assert (issued['kind'], issued['cleared']) == ('cluster', NODES)
    assert sorted(name for action, name in uses if action == 'destroy') == NODES
    assert {action for action, _name in uses} <= {'reset', 'destroy'}


def etcd_members(lab, env, address):
    """{hostname: member id} of the cluster's etcd, as talosctl lists it."""
    out = lab.run('talosctl', '--talosconfig', str(lab.dir / 'talos' / 'castle' / 'talosconfig'), '--nodes', address,
                  'etcd', 'members', env=env).stdout.splitlines()
    header = out[0].split()
    rows = [line.split() for line in out[1:] if line.strip()]
    return {row[header.index('HOSTNAME')]: row[header.index('ID')] for row in rows}


def uids(lab, env, kubeconfig):
    objects = kubectl(lab, env, kubeconfig, 'get', 'namespaces,kustomizations,externalsecrets', '-A')['items']
    return sorted((o['kind'], o['metadata'].get('namespace', ''), o['metadata']['name'], o['metadata']['uid'])
                  for o in objects)


def test_phoenix_of_the_first_control_plane_node_rebuilds_it_in_place(lab, env, fleet):
    addresses = node_addresses(env)
    members = etcd_members(lab, env, addresses['talos-cp-2'])
    objects = uids(lab, env, fleet['kubeconfig'])
    rebuilt = playbook(lab, env, 'phoenix.yml', '-e', 'target=talos-cp-1')
    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    # The node etcd was bootstrapped on left etcd, was wiped and rebuilt at its address, and joined the
    # running etcd as a new member: not bootstrapped again beside it. The cluster's data stayed.
    assert node_addresses(env) == addresses
    for asked in ('talos-cp-1', 'talos-cp-3'):
        after = etcd_members(lab, env, addresses[asked])
        assert sorted(after) == ['talos-cp-1', 'talos-cp-2', 'talos-cp-3'], asked
        assert after['talos-cp-1'] != members['talos-cp-1']
        assert {k: v for k, v in after.items() if k != 'talos-cp-1'} == {
            k: v for k, v in members.items() if k != 'talos-cp-1'}
    assert uids(lab, env, fleet['kubeconfig']) == objects
    assert ready_nodes(lab, env, fleet['kubeconfig']) == NODES
    # The gate's token for the node, and its one use for each destructive step.
    issued, uses = last_token(fleet, 'talos-cp-1')
    assert (issued['kind'], issued['cleared']) == ('node', ['talos-cp-1'])
    assert uses == [('reset', 'talos-cp-1'), ('destroy', 'talos-cp-1')]
    line = next(line for line in fleet['journal'].read_text().splitlines() if issued['sha256'] in line)
    assert 'talos-cp-1 (node)' in line and 'gate passed' in line and 'token ' + issued['id'] in line


def test_phoenix_with_every_control_plane_lost_restores_etcd_from_its_snapshot(lab, env, fleet):
    kept = {'written': 'before the wipe, never in Git'}
    lab.run('kubectl', '--kubeconfig', str(fleet['kubeconfig']), '-n', 'default', 'create', 'configmap',
            'phoenix-keepsake', '--from-literal=written=' + kept['written'], env=env)
    content = volume_data(fleet['kubeconfig'], 'blog/blog-content')
    rebuilt = playbook(lab, env, 'phoenix.yml', '-e', 'target=castle', '-e', 'phoenix_restore_etcd=true')
    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    back = kubectl(lab, env, fleet['kubeconfig'], '-n', 'default', 'get', 'configmap', 'phoenix-keepsake')
    assert back['data'] == kept
    assert volume_data(fleet['kubeconfig'], 'blog/blog-content') == content
    assert ready_nodes(lab, env, fleet['kubeconfig']) == NODES
    assert flux_not_ready(lab, env, fleet['kubeconfig']) == []


def test_bootstrap_after_phoenix_changes_nothing(lab, env, fleet):
    again = playbook(lab, env, 'bootstrap.yml')
    assert again.returncode == 0, again.stdout[-4000:]
    assert {host: counts['changed'] for host, counts in play_recap(again).items()} == {
        'localhost': 0, 'openclaw-node': 0}, again.stdout[-4000:]


def test_an_overridden_machine_phoenix_is_recorded(lab, env, fleet):
    reason = 'disk failed; restored from the 2026-11-20 backup'
    overridden = playbook(lab, env, 'phoenix.yml', '-e', 'target=pve-old', '-e',
                          json.dumps({'phoenix_override_reason': reason}))
    assert overridden.returncode == 0, overridden.stdout[-4000:]
    machines = {m['name']: m for m in yaml.safe_load(fleet['fleet_file'].read_text())['fleet']['machines']}
    assert (machines['pve-old']['state'], machines['castle-2']['state']) == ('wiped', 'active')
    assert '"total ' in overridden.stdout.rsplit("TASK [Each stage's duration]", 1)[1]
    line = fleet['journal'].read_text().splitlines()[-1]
    assert 'pve-old (machine)' in line and json.dumps(reason) in line and 'workload openbao still runs' in line
    # A machine outside the clusters: the token clears it, and nothing of the collection's destroyed it.
    issued, uses = last_token(fleet, 'pve-old')
    assert (issued['kind'], issued['cleared'], uses) == ('machine', ['pve-old'], [])
