"""The lab's Talos nodes and talosctl: VMs booting the Talos ISO through the lab's Proxmox API come up in
maintenance mode, and the real `talosctl` executable takes them to a bootstrapped cluster and back."""

import base64
import json
import re
import subprocess

import pytest
import yaml
from talos_helpers import ISO, Talos, agent_address, talos_vms, until

from castle_lab.control import ProxmoxControl
from castle_lab.talos import secrets

pytestmark = pytest.mark.lab


@pytest.fixture(scope='module')
def machines(pve):
    """Two VMs cloned from the Talos template, booting the Talos ISO (control plane and worker)."""
    with talos_vms(pve, 'talos-it') as vms:
        yield vms


@pytest.fixture(scope='module')
def talos(env, machines, tmp_path_factory):
    return Talos(env, tmp_path_factory.mktemp('talos'))


def stage(talos, address, insecure=False):
    flags = ['-i'] if insecure else []
    result = talos('get', 'machinestatus', '-n', address, '-o', 'json', *flags, expect=None)
    return json.loads(result.stdout)['spec']['stage'] if result.returncode == 0 else None


def test_nodes_boot_into_maintenance_at_their_reserved_addresses(lab, env, pve, talos, machines):
    addresses = machines['addresses']
    assert all(pve.nodes('pve1').qemu(vmid).config.get()['ide2'] == ISO for vmid in machines['vmids'].values())
    assert len(set(addresses.values())) == 2
    net = lab.env['CASTLE_LAB_NET']
    for address in addresses.values():
        assert address.startswith(net + '.') and 100 <= int(address.rsplit('.', 1)[1]) <= 199
        assert until(lambda a=address: stage(talos, a, insecure=True), 'maintenance API') == 'maintenance'
        out = talos('version', '--insecure', '-n', address).stdout
        assert '\tTag:         v1.11.6' in out and '\tNODE:        {0}'.format(address) in out
        # --short shortens the client's part only (pkg/machinery/version Short(): `Talos <tag>`).
        short = talos('version', '--short', '--insecure', '-n', address).stdout
        assert short.startswith('Client:\nTalos v1.11.6\nServer:\n\tNODE:        {0}\n\tTag:         v1.11.6\n'
                                '\tSHA:'.format(address)), short
    leases = json.loads((lab.dir / 'talos' / 'leases.json').read_text())
    assert sorted(leases.values()) == sorted(addresses.values())
    listed = {n['vmid']: n for n in ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL']).talos_nodes()}
    for role, vmid in machines['vmids'].items():
        assert listed[vmid]['address'] == addresses[role] and listed[vmid]['stage'] == 'maintenance'


def test_gen_config_with_patches_validates(talos, machines):
    cp = machines['addresses']['cp']
    talos('gen', 'secrets', '-o', 'secrets.yaml')
    assert talos('gen', 'secrets', '-o', 'secrets.yaml', expect=1).stderr.strip().endswith(
        'already exists, use --force to overwrite')
    (talos.workdir / 'sans.json').write_text(json.dumps([{'op': 'add', 'path': '/machine/certSANs/-',
                                                          'value': 'talos.lab'}]))
    talos('gen', 'config', 'lab', 'https://{0}:6443'.format(cp), '--with-secrets', 'secrets.yaml',
          '--config-patch', '@sans.json', '--config-patch-control-plane',
          'cluster: {allowSchedulingOnControlPlanes: true}',
          '--config-patch-worker', '{"machine": {"nodeLabels": {"role": "worker"}}}',
          '--install-disk', '/dev/vda', '--output-types', 'controlplane,worker,talosconfig', '-o', '.')
    cp_config = yaml.safe_load((talos.workdir / 'controlplane.yaml').read_text())
    worker_config = yaml.safe_load((talos.workdir / 'worker.yaml').read_text())
    assert cp_config['machine']['certSANs'] == ['talos.lab'] and worker_config['machine']['certSANs'] == ['talos.lab']
    assert cp_config['cluster']['allowSchedulingOnControlPlanes'] is True
    assert 'allowSchedulingOnControlPlanes' not in worker_config['cluster']
    assert worker_config['machine']['nodeLabels'] == {'role': 'worker'}
    assert worker_config['machine']['install']['disk'] == '/dev/vda'
    # A release talosctl pins the default installer to its own version.
    assert worker_config['machine']['install']['image'] == 'ghcr.io/siderolabs/installer:v1.11.6'
    assert worker_config['machine']['ca']['key'] == ''
    context = yaml.safe_load((talos.workdir / 'talosconfig').read_text())
    assert context['context'] == 'lab' and context['contexts']['lab']['endpoints'] == [cp]
    for name in ('controlplane.yaml', 'worker.yaml'):
        assert talos('validate', '--mode', 'metal', '--config', name).stdout == \
            '{0} is valid for metal mode\n'.format(name)


def test_invalid_config_is_refused_and_nothing_applied(talos, machines):
    worker = machines['addresses']['worker']
    broken = yaml.safe_load((talos.workdir / 'worker.yaml').read_text())
    broken['machine']['kubelet']['imagee'] = broken['machine']['kubelet'].pop('image')
    (talos.workdir / 'broken.yaml').write_text(yaml.safe_dump(broken))
    refused = talos('apply-config', '--insecure', '-n', worker, '-f', 'broken.yaml', expect=1)
    assert refused.stderr.startswith('error applying new configuration: rpc error: code = InvalidArgument desc = '
                                     'configuration validation failed: 1 error occurred:')
    assert "machine.kubelet: unknown field ('imagee' was unexpected)" in refused.stderr
    assert 'machine.kubelet' in talos('validate', '-m', 'metal', '-c', 'broken.yaml', expect=1).stderr
    assert stage(talos, worker, insecure=True) == 'maintenance'


def test_maintenance_mode_takes_auto_reboot_and_try_only(talos, machines):
    """internal/app/maintenance/server.go: any other mode is Unimplemented, checked before the config (and dry run)."""
    worker = machines['addresses']['worker']
    for mode, dry in (('no-reboot', []), ('staged', ['--dry-run']), ('no-reboot', ['--dry-run'])):
        refused = talos('apply-config', '--insecure', '-n', worker, '-f', 'broken.yaml', '--mode', mode, *dry, expect=1)
        assert refused.stderr == ('error applying new configuration: rpc error: code = Unimplemented desc = apply '
                                  "configuration --mode='{0}' is not supported in maintenance mode\n".format(mode))
    for mode in ('try', 'reboot', 'auto'):
        dry = talos('apply-config', '--insecure', '-n', worker, '-f', 'worker.yaml', '--mode', mode, '--dry-run')
        assert (dry.stdout, dry.stderr) == (
            '', 'Dry run summary:\nNode is running in maintenance mode and does not have a config yet.\n')
    assert stage(talos, worker, insecure=True) == 'maintenance'


def test_apply_bootstrap_kubeconfig_and_health(talos, machines):
    cp, worker = machines['addresses']['cp'], machines['addresses']['worker']
    # The maintenance service answers no mode details: talosctl prints nothing.
    applied = talos('apply-config', '--insecure', '-n', cp, '-f', 'controlplane.yaml')
    assert (applied.stdout, applied.stderr) == ('', '')
    # try is taken in maintenance mode as a plain apply: nothing rolls back after its timeout.
    talos('apply-config', '--insecure', '--nodes', worker, '--file', 'worker.yaml', '--mode', 'try', '--timeout', '1s')
    until(lambda: stage(talos, cp) == 'running' and stage(talos, worker) == 'running', 'configured nodes')
    # A configured node no longer answers the maintenance service's clients.
    assert 'code = Unavailable' in talos('version', '--insecure', '-n', cp, expect=1).stderr

    talos('bootstrap', '-n', cp, '-e', cp)
    again = talos('bootstrap', '-n', cp, expect=1)
    # One node through the endpoint is still a one-to-many call: its error comes back as a multierror.
    assert again.stderr == ('error executing bootstrap: 1 error occurred:\n\t* {0}: rpc error: code = AlreadyExists '
                            'desc = etcd data directory is not empty\n\n'.format(cp))
    both = talos('bootstrap', '-n', '{0},{1}'.format(cp, worker), expect=1)
    assert both.stderr == 'command "bootstrap" is not supported with multiple nodes\n'
    talos('kubeconfig', '-n', cp, str(talos.workdir / 'kubeconfig'))

    def ready_nodes():
        result = talos.kubectl('get', 'nodes', '-o', 'json')
        if result.returncode != 0:
            return None
        items = json.loads(result.stdout)['items']
        ready = [n for n in items if {c['type']: c['status'] for c in n['status'].get('conditions', [])}.get(
            'Ready') == 'True']
        return items if len(ready) == 2 and len(items) == 2 else None
    nodes = until(ready_nodes, 'two Ready Kubernetes nodes')
    roles = {n['status']['addresses'][0]['address']: 'node-role.kubernetes.io/control-plane' in n['metadata']['labels']
             for n in nodes}
    assert roles == {cp: True, worker: False}
    hostname = json.loads(talos('get', 'hostname', '-n', worker, '-o', 'json').stdout)['spec']['hostname']
    assert hostname in {n['metadata']['name'] for n in nodes}
    assert talos.kubectl('get', 'nodes').stdout.count(' Ready ') == 2

    health = talos('health', '-n', cp, '--control-plane-nodes', cp, '--worker-nodes', worker, '--wait-timeout', '30s')
    assert health.stdout == ''
    progress = health.stderr.splitlines()
    assert progress[0] == 'discovered nodes: ["{0}" "{1}"]'.format(cp, worker)
    for check in ('etcd to be healthy', 'apid to be ready', 'no diagnostics', 'all k8s nodes to report ready'):
        assert 'waiting for {0}: OK'.format(check) in progress
    assert 'waiting for kube-proxy to report ready: SKIP' in progress
    members = talos('etcd', 'members', '-n', cp).stdout.splitlines()
    assert members[0].split()[:3] == ['NODE', 'ID', 'HOSTNAME'] and len(members) == 2 and cp in members[1]
    found = [json.loads(doc) for doc in talos('get', 'members', '-o', 'json').stdout.replace('}\n{', '}\x00{').split(
        '\x00')]
    assert sorted(m['spec']['machineType'] for m in found) == ['controlplane', 'worker']
    listed = list(yaml.safe_load_all(talos('get', 'mc', '-n', worker, '-o', 'yaml').stdout))
    assert [doc['metadata']['id'] for doc in listed] == ['persistent', 'v1alpha1']
    assert yaml.safe_load(listed[1]['spec'])['machine']['type'] == 'worker'


def test_health_takes_ip_addresses_only(talos, machines):
    cp = machines['addresses']['cp']
    named = talos('health', '-n', cp, '--control-plane-nodes', 'cp-1', '--wait-timeout', '30s', expect=1)
    assert named.stderr == 'healthcheck error: rpc error: code = Unknown desc = ParseAddr("cp-1"): unable to parse IP\n'
    many = talos('health', '-n', '{0},{1}'.format(cp, machines['addresses']['worker']), expect=1)
    assert many.stderr == 'command "health" is not supported with multiple nodes\n'


def held_addresses(talos, node):
    found = talos('get', 'addresses', '-n', node, '-o', 'json').stdout.replace('}\n{', '}\x00{').split('\x00')
    return sorted((item['spec']['linkName'], item['spec']['address']) for item in map(json.loads, found))


def test_addresses_go_on_the_link_a_device_names_or_selects(env, pve, talos, machines):
    """Talos >= 1.5 names a Proxmox virtio NIC ens18 (predictable names): a device naming eth0 configures nothing,
    one selecting the NIC by its MAC (deviceSelector.hardwareAddr) gets the static address and the VIP."""
    cp, vmid = machines['addresses']['cp'], machines['vmids']['cp']
    mac = pve.nodes('pve1').qemu(vmid).config.get()['net0'].split(',')[0].split('=')[1].lower()
    links = [json.loads(doc) for doc in talos('get', 'links', '-n', cp, '-o', 'json').stdout.replace(
        '}\n{', '}\x00{').split('\x00')]
    assert [link['metadata']['id'] for link in links] == ['lo', 'ens18']
    assert links[1]['spec']['hardwareAddr'] == links[1]['spec']['permanentAddr'] == mac
    assert links[1]['spec']['driver'] == 'virtio_net'
    table = talos('get', 'links', '-n', cp).stdout.splitlines()
    assert table[0].split() == ['NODE', 'NAMESPACE', 'TYPE', 'ID', 'VERSION', 'TYPE', 'KIND', 'HW', 'ADDR', 'OPER',
                                'STATE', 'LINK', 'STATE']
    net = env['CASTLE_LAB_NET']
    static, vip = '{0}.240/24'.format(net), '{0}.250'.format(net)
    lease = [('ens18', '{0}/24'.format(cp)), ('lo', '127.0.0.1/8')]
    assert held_addresses(talos, cp) == lease

    def apply(device):
        patch = json.dumps({'machine': {'network': {'interfaces': [
            dict(device, dhcp=True, addresses=[static], vip={'ip': vip})]}}})
        talos('apply-config', '-n', cp, '-f', 'controlplane.yaml', '--config-patch', patch)
    try:
        apply({'interface': 'eth0'})
        assert held_addresses(talos, cp) == lease
        apply({'deviceSelector': {'hardwareAddr': mac[:9] + '*'}})
        assert held_addresses(talos, cp) == sorted(lease + [('ens18', static), ('ens18', vip + '/32')])
        assert talos('get', 'addresses', 'ens18/' + static, '-n', cp).stdout.splitlines()[0].split()[-2:] == [
            'ADDRESS', 'LINK']
        apply({'deviceSelector': {'hardwareAddr': mac, 'driver': 'e1000'}})  # every field must match
        assert held_addresses(talos, cp) == lease
    finally:
        talos('apply-config', '-n', cp, '-f', 'controlplane.yaml')
    assert held_addresses(talos, cp) == lease


def test_a_reader_certificate_reads_but_does_not_act(talos, machines):
    cp = machines['addresses']['cp']
    bundle = secrets.load((talos.workdir / 'secrets.yaml').read_text())
    cert, key = secrets.issue(*secrets.ca_pair(bundle, 'os'), 'ops', organizations=('os:reader',), client=True)
    config = yaml.safe_load((talos.workdir / 'talosconfig').read_text())
    config['contexts']['lab'].update(crt=base64.b64encode(cert).decode(), key=base64.b64encode(key).decode())
    (talos.workdir / 'reader').write_text(yaml.safe_dump(config))
    assert 'Server:' in talos('version', '--talosconfig', 'reader', '-n', cp).stdout
    refused = talos('bootstrap', '--talosconfig', 'reader', '-n', cp, expect=1)
    assert refused.stderr.strip() == 'error executing bootstrap: rpc error: code = PermissionDenied desc = not authorized'


def test_dry_run_shows_the_diff_and_changes_nothing(talos, machines):
    worker = machines['addresses']['worker']
    dry = talos('apply-config', '-n', worker, '-f', 'worker.yaml', '--dry-run',
                '--config-patch', 'machine: {nodeLabels: {tier: edge}}')
    assert dry.stdout == ''
    assert dry.stderr.startswith('Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).')
    assert '+    tier: edge' in dry.stderr
    spec = yaml.safe_load(yaml.safe_load(talos('get', 'mc', 'v1alpha1', '-n', worker, '-o', 'yaml').stdout)['spec'])
    assert 'tier' not in spec['machine']['nodeLabels']


def test_a_kubeconfig_from_the_same_secrets_still_works(talos, machines, tmp_path):
    """The admin kubeconfig is signed by the cluster CA of the secrets bundle, not by a node's own."""
    cp = machines['addresses']['cp']
    talos('kubeconfig', '-n', cp, '--merge=false', str(tmp_path / 'again'))
    result = subprocess.run(['kubectl', '--kubeconfig', str(tmp_path / 'again'), 'get', 'nodes'], env=talos.env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    printed = talos('kubeconfig', '-n', cp, '--merge=false', '-').stdout
    assert yaml.safe_load(printed)['current-context'] == 'admin@lab'
    # Merged into ~/.kube/config by default; a second merge keeps the first context and renames the new one.
    talos('kubeconfig', '-n', cp)
    talos('kubeconfig', '-n', cp)
    merged = yaml.safe_load((talos.workdir / '.kube' / 'config').read_text())
    assert [c['name'] for c in merged['contexts']] == ['admin@lab', 'admin@lab-1']
    assert merged['current-context'] == 'admin@lab-1'


def worker_labels(talos, worker, rid='v1alpha1'):
    spec = yaml.safe_load(talos('get', 'machineconfig', rid, '-n', worker, '-o', 'yaml').stdout)['spec']
    return yaml.safe_load(spec)['machine'].get('nodeLabels') or {}


def test_staged_config_waits_for_the_vm_reboot(pve, talos, machines):
    worker, vmid = machines['addresses']['worker'], machines['vmids']['worker']
    staged = talos('apply-config', '-n', worker, '-f', 'worker.yaml', '--mode=staged',
                   '-p', '[{"op": "add", "path": "/machine/nodeLabels/stage", "value": "two"}]')
    assert (staged.stdout, staged.stderr) == ('', 'Staged configuration to be applied after a reboot\n')
    assert 'stage' not in worker_labels(talos, worker)
    assert worker_labels(talos, worker, 'persistent').get('stage') == 'two'
    pve.nodes('pve1').qemu(vmid).status.reboot.post()
    until(lambda: stage(talos, worker) == 'running' and worker_labels(talos, worker).get('stage') == 'two',
          'the staged config after the reboot')


def test_try_mode_rolls_back_after_its_timeout(talos, machines):
    worker = machines['addresses']['worker']
    tried = talos('apply-config', '-n', worker, '-f', 'worker.yaml', '--mode', 'try', '--timeout', '1s',
                  '--config-patch', 'machine: {nodeLabels: {trial: "yes"}}')
    assert (tried.stdout, tried.stderr) == ('', 'Applied configuration with a try mode: will roll back in 1s\n')
    assert worker_labels(talos, worker).get('trial') == 'yes'
    until(lambda: 'trial' not in worker_labels(talos, worker), 'the roll back')


def test_health_discovers_the_nodes_and_etcd_refuses_unknown_members(talos, machines):
    cp, worker = machines['addresses']['cp'], machines['addresses']['worker']
    out = talos('health', '--wait-timeout=30s').stderr.splitlines()
    assert out[0] == 'discovered nodes: ["{0}" "{1}"]'.format(cp, worker)
    assert out[-1] == 'waiting for all k8s nodes to report schedulable: OK'
    missing = talos('etcd', 'remove-member', '0123456789abcdef', '-n', cp, expect=1)
    assert missing.stderr.startswith('error removing member: 1 error occurred:\n\t* {0}: rpc error: code = '.format(cp))


def test_upgrade_boots_the_new_version(talos, machines):
    worker = machines['addresses']['worker']
    talos('upgrade', '-n', worker, '--image', 'ghcr.io/siderolabs/installer:v1.11.7')
    until(lambda: '\tTag:         v1.11.7' in talos('version', '-n', worker, expect=None).stdout, 'the new version')


def ready_status(talos, node_name):
    result = talos.kubectl('get', 'node', node_name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')
    return result.stdout if result.returncode == 0 else None


def test_a_powered_off_node_turns_not_ready(pve, talos, machines):
    worker, vmid = machines['addresses']['worker'], machines['vmids']['worker']
    hostname = json.loads(talos('get', 'hostname', '-n', worker, '-o', 'json').stdout)['spec']['hostname']
    pve.nodes('pve1').qemu(vmid).status.stop.post()
    until(lambda: ready_status(talos, hostname) == 'Unknown', 'the worker Ready Unknown')
    assert ' NotReady ' in talos.kubectl('get', 'nodes').stdout
    pve.nodes('pve1').qemu(vmid).status.start.post()
    until(lambda: ready_status(talos, hostname) == 'True', 'the worker Ready again')


def test_the_cluster_keeps_its_objects_while_its_control_plane_node_is_off(pve, talos, machines):
    cp, vmid = machines['addresses']['cp'], machines['vmids']['cp']
    assert talos.kubectl('create', 'configmap', 'kept', '--from-literal=answer=42').returncode == 0
    pve.nodes('pve1').qemu(vmid).status.stop.post()
    until(lambda: stage(talos, cp) is None, 'the control plane node off')
    pve.nodes('pve1').qemu(vmid).status.start.post()
    until(lambda: stage(talos, cp) == 'running', 'the control plane node running again')
    kept = talos.kubectl('get', 'configmap', 'kept', '-o', 'jsonpath={.data.answer}')
    assert (kept.returncode, kept.stdout) == (0, '42'), kept.stderr


def test_reset_takes_nodes_back_to_maintenance(talos, machines):
    cp, worker = machines['addresses']['cp'], machines['addresses']['worker']
    # Reset waits by default; a node wiped into maintenance never answers the cluster's client again.
    waited = talos('reset', '-n', worker, '--graceful=false', '--reboot', '--timeout', '2s', expect=1)
    assert waited.stdout == ''
    lines = waited.stderr.splitlines()
    assert lines[0] == '"{0}": waiting for actor ID'.format(worker)
    assert re.match(r'"{0}": actor ID: [0-9a-f-]{{36}}$'.format(re.escape(worker)), lines[1]), lines[1]
    assert '"{0}": events check condition met'.format(worker) in waited.stderr
    assert waited.stderr.splitlines()[-1] == '"{0}": context deadline exceeded'.format(worker)
    until(lambda: stage(talos, worker, insecure=True) == 'maintenance', 'the worker in maintenance')
    until(lambda: talos.kubectl('get', 'nodes').stdout.count(' Ready ') == 1, 'the worker leaving Kubernetes')
    assert 'control-plane' in talos.kubectl('get', 'nodes').stdout
    refused = talos('reset', '-n', cp, '--reboot', expect=1)
    assert 'code = FailedPrecondition' in refused.stderr
    quick = talos('reset', '-n', cp, '--graceful=false', '--reboot', '--wait=false',
                  '--system-labels-to-wipe', 'STATE,EPHEMERAL')
    assert (quick.stdout, quick.stderr) == ('', '')
    until(lambda: stage(talos, cp, insecure=True) == 'maintenance', 'the control plane node in maintenance')


def test_stopping_the_vm_takes_the_node_away(pve, talos, machines):
    worker, vmid = machines['addresses']['worker'], machines['vmids']['worker']
    pve.nodes('pve1').qemu(vmid).status.stop.post()
    until(lambda: talos('version', '-i', '-n', worker, expect=None).returncode == 1, 'the node to go away')
    unreachable = talos('version', '-i', '-n', worker, expect=1)
    assert unreachable.stderr.strip() == (
        'error getting version: rpc error: code = Unavailable desc = connection error: desc = "transport: Error '
        'while dialing: dial tcp {0}:50000: connect: connection refused"'.format(worker))
    assert agent_address(pve, vmid) is None
    pve.nodes('pve1').qemu(vmid).status.start.post()
    assert until(lambda: stage(talos, worker, insecure=True), 'the node back') == 'maintenance'
    assert agent_address(pve, vmid) == worker
