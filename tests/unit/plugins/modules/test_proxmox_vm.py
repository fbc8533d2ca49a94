"""proxmox_vm against a fake Proxmox VE: create, clone, reconcile with the smallest change, power, waits, check
mode, diff, idempotence, retries, and errors naming the bad input."""

import proxmoxer
import pytest
from ansible_collections.ephemeral.castle.plugins.module_utils import gate

import fake_pve

SCRATCH = dict(name='w-1', node='pve1', cores=2, memory=2048, scsihw='virtio-scsi-single',
               disks=[{'slot': 'scsi0', 'storage': 'local-lvm', 'size': '8G'}],
               networks=[{'slot': 'net0', 'bridge': 'vmbr0', 'mac': 'bc:24:11:00:00:01'}])


@pytest.fixture
def pve(monkeypatch):
    cluster = fake_pve.install(monkeypatch)
    cluster.add_vm(9000, 'talos-template', template=1, cores='2', scsi0='local-lvm:base-9000-disk-0,size=20G')
    return cluster


def vm(run_module, check_mode=False, diff=False, **args):
    return run_module('proxmox_vm', check_mode=check_mode, diff=diff, **dict(fake_pve.LOGIN, **args))


def test_a_missing_vm_is_created_in_one_request_and_a_rerun_changes_nothing(run_module, pve):
    made = vm(run_module, **SCRATCH)
    assert not made.failed, made.msg
    assert made.changed and made['vmid'] == 100 and made['status'] == 'stopped'
    assert pve.made('post') == [('nodes/pve1/qemu', {
        'vmid': 100, 'name': 'w-1', 'cores': '2', 'memory': '2048', 'scsihw': 'virtio-scsi-single',
        'scsi0': 'local-lvm:8', 'net0': 'virtio=BC:24:11:00:00:01,bridge=vmbr0'})]
    assert made['macs'] == {'net0': 'BC:24:11:00:00:01'}
    again = vm(run_module, **SCRATCH)
    assert not again.changed and again['requests'] == 2
    assert again['config']['scsi0'] == 'local-lvm:vm-100-disk-0,size=8G'


def test_check_mode_creates_nothing_and_shows_the_config_it_would_write(run_module, pve):
    result = vm(run_module, check_mode=True, diff=True, **SCRATCH)
    assert result.changed and result['vmid'] is None
    assert result['diff']['after']['net0'] == 'virtio=BC:24:11:00:00:01,bridge=vmbr0'
    assert pve.writes() == []


def test_a_change_is_one_config_write_with_a_diff_and_disks_only_grow(run_module, pve):
    vm(run_module, **SCRATCH)
    changed = vm(run_module, diff=True, **{**SCRATCH, 'cores': 4, 'disks': [{'slot': 'scsi0', 'size': '16G'}]})
    assert changed.changed
    assert changed['diff']['before']['cores'] == '2' and changed['diff']['after']['cores'] == '4'
    assert pve.made('put') == [('nodes/pve1/qemu/100/config', {'cores': '4'}),
                               ('nodes/pve1/qemu/100/resize', {'disk': 'scsi0', 'size': '16G'})]
    shrink = vm(run_module, **{**SCRATCH, 'disks': [{'slot': 'scsi0', 'size': '4G'}]})
    assert shrink.failed
    assert shrink.msg == 'disks: scsi0 is 16G; shrinking it to 4G is not possible (disks only grow)'


def test_a_clone_is_brought_to_the_options_and_started(run_module, pve):
    result = vm(run_module, name='cp-1', vmid=101, node='pve1', clone='talos-template', cores=4, state='started')
    assert not result.failed, result.msg
    assert result.changed and result['status'] == 'running'
    assert [path for path, _params in pve.made('post')] == [
        'nodes/pve1/qemu/9000/clone', 'nodes/pve1/qemu/101/status/start']
    assert pve.vms[101]['config']['cores'] == '4'


def test_a_change_a_running_vm_cannot_take_stays_pending_unless_a_restart_is_allowed(run_module, pve):
    vm(run_module, **{**SCRATCH, 'state': 'started'})
    pending = vm(run_module, **{**SCRATCH, 'memory': 4096, 'state': 'started'})
    assert pending.changed and pending['pending'] == ['memory'] and pending['config']['memory'] == '4096'
    assert not [p for p, _params in pve.made('post') if p.endswith('/shutdown')]
    restarted = vm(run_module, **{**SCRATCH, 'memory': 4096, 'state': 'started', 'restart_if_needed': True})
    assert restarted.changed and restarted['pending'] == []
    assert [p.rsplit('/', 1)[1] for p, _params in pve.made('post', 'nodes/pve1/qemu/100/status')] == [
        'start', 'shutdown', 'start']
    assert pve.made('post', 'nodes/pve1/qemu/100/status/shutdown')[0][1] == {'timeout': 120, 'forceStop': 1}


def test_stopped_shuts_a_running_vm_down_and_check_mode_only_says_so(run_module, pve):
    vm(run_module, **{**SCRATCH, 'state': 'started'})
    planned = vm(run_module, check_mode=True, name='w-1', state='stopped')
    assert planned.changed and planned['status'] == 'stopped' and pve.vms[100]['status'] == 'running'
    done = vm(run_module, name='w-1', state='stopped', shutdown_timeout=30)
    assert done.changed and pve.vms[100]['status'] == 'stopped'
    assert vm(run_module, name='w-1', state='stopped').changed is False


def test_wait_for_ip_reports_the_agents_ipv4_addresses(run_module, pve):
    vm(run_module, **{**SCRATCH, 'state': 'started'})
    silent = vm(run_module, name='w-1', state='started', wait_for_ip=True, wait_timeout=0)
    assert silent.failed
    assert silent.msg.startswith('VM 100 reported no IP address within 0s (GET nodes/pve1/qemu/100/agent/'
                                 'network-get-interfaces: 500 QEMU guest agent is not running)')
    assert silent.msg.endswith('siderolabs/qemu-guest-agent system extension)')
    pve.agent[100] = [
        {'name': 'lo', 'ip-addresses': [{'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4'}]},
        {'name': 'eth0', 'ip-addresses': [{'ip-address': '10.0.40.11', 'ip-address-type': 'ipv4'},
                                          {'ip-address': 'fe80::1', 'ip-address-type': 'ipv6'}]}]
    found = vm(run_module, name='w-1', state='started', wait_for_ip=True, timeout=5)
    assert not found.changed and found['ips'] == ['10.0.40.11']
    assert vm(run_module, check_mode=True, name='w-1', state='started', wait_for_ip=True)['ips'] == ['10.0.40.11']


def test_a_locked_vm_is_waited_for_and_named_when_it_stays_locked(run_module, pve):
    vm(run_module, **SCRATCH)
    pve.vms[100]['lock'] = 'backup'
    locked = vm(run_module, name='w-1', cores=4, wait_timeout=0)
    assert locked.failed and locked.msg == 'VM 100 is still locked (backup) after 0s'
    assert pve.vms[100]['config']['cores'] == '2'


def test_a_passing_5xx_is_retried_and_an_exhausted_budget_fails_with_the_request_count(run_module, pve):
    busy = proxmoxer.ResourceException(503, 'Service Unavailable', 'backend busy')
    pve.fail('get', 'cluster/resources', busy, 2)
    assert not vm(run_module, name='talos-template', retries=2).failed
    pve.fail('get', 'cluster/resources', busy, 3)
    failed = vm(run_module, name='talos-template', api_retries=2)
    assert failed.failed and failed['requests'] == 3
    assert failed.msg == 'GET cluster/resources failed after 3 tries: backend busy'


@pytest.mark.parametrize('args, message', [
    ({'disks': [{'slot': 'hd0', 'size': '8G'}]}, "disks: slot 'hd0' is not a disk slot such as scsi0, virtio1, sata0"),
    ({'networks': [{'slot': 'net0', 'mac': 'nope'}]}, "networks: 'nope' is not a MAC address"),
    ({'balloon': 4096, 'memory': 2048}, 'balloon (4096) cannot exceed memory (2048)'),
])
def test_impossible_options_are_refused_naming_them_before_any_request(run_module, pve, args, message):
    result = vm(run_module, name='w-1', node='pve1', **args)
    assert result.failed and result.msg == message
    assert pve.requests == [] and result['requests'] == 0


def test_what_pve_cannot_do_is_refused_naming_it_and_nothing_is_made(run_module, pve):
    storage = vm(run_module, **{**SCRATCH, 'clone': 'talos-template', 'target_storage': 'ceph'})
    assert storage.failed
    assert storage.msg == "storage 'ceph' does not exist on node pve1 (it has: local, local-lvm)"
    unknown = vm(run_module, name='w-1', node='pve1', clone='nope')
    assert unknown.failed and unknown.msg == "clone: no template or VM named 'nope'"
    assert vm(run_module, name='w-1').msg == 'node is required to create VM \'w-1\''
    assert pve.writes() == []


def test_a_task_still_running_at_the_deadline_fails_naming_it_and_a_rerun_waits(run_module, pve):
    pve.running.add('qmclone')
    slow = vm(run_module, name='cp-1', vmid=101, node='pve1', clone='talos-template', timeout=0)
    assert slow.failed
    assert slow.msg.startswith('clone of 9000 to VM 101 still running after 0s (task UPID:pve1:')
    assert slow.msg.endswith('a re-run waits for it')


@pytest.fixture
def consent(tmp_path):
    """A gate token for w-1, issued into a journal beside a fleet file: (token, journal)."""
    fleet = tmp_path / 'fleet.yml'
    fleet.write_text('clusters: []\n')
    journal = str(tmp_path / 'phoenix-journal.md')
    token = gate.issue(journal, str(fleet), 'w-1', 'machine', ['w-1'], 600, 'gate passed')[0]
    return token, journal


def test_absent_destroys_a_running_vm_once_with_the_gates_token(run_module, pve, consent):
    vm(run_module, **{**SCRATCH, 'state': 'started'})
    token, journal = consent
    planned = vm(run_module, check_mode=True, diff=True, name='w-1', state='absent', gate_token=token,
                 gate_journal=journal)
    assert planned.changed and planned['diff']['before'] == {'vmid': 100, 'name': 'w-1', 'node': 'pve1'}
    assert 100 in pve.vms
    gone = vm(run_module, name='w-1', state='absent', gate_token=token, gate_journal=journal)
    assert gone.changed and gone['status'] == 'absent' and 100 not in pve.vms
    assert pve.made('delete') == [('nodes/pve1/qemu/100', {'purge': 1, 'destroy-unreferenced-disks': 1})]
    assert pve.made('post', 'nodes/pve1/qemu/100/status/stop')
    again = vm(run_module, name='w-1', state='absent', gate_token=token, gate_journal=journal)
    assert not again.failed and not again.changed
    vm(run_module, **SCRATCH)
    reused = vm(run_module, name='w-1', state='absent', gate_token=token, gate_journal=journal)
    assert reused.failed and 'was already used to destroy w-1' in reused.msg
    assert len(pve.made('delete')) == 1


def test_absent_without_a_token_or_with_another_vms_changes_nothing(run_module, pve, consent):
    vm(run_module, **SCRATCH)
    vm(run_module, **{**SCRATCH, 'name': 'w-2', 'networks': []})
    token, journal = consent
    missing = vm(run_module, name='w-1', state='absent')
    assert missing.failed and missing.msg.startswith('destroy w-1 destroys it: give gate_token and gate_journal')
    assert missing['requests'] == 0
    other = vm(run_module, name='w-2', state='absent', gate_token=token, gate_journal=journal)
    assert other.failed and other.msg.endswith('clears w-1 (target w-1), not w-2; nothing was changed')
    assert pve.made('delete') == [] and sorted(pve.vms) == [100, 101, 9000]
    assert vm(run_module, check_mode=True, name='w-2', state='absent').changed


def test_a_protected_vm_is_never_destroyed(run_module, pve, consent):
    vm(run_module, **{**SCRATCH, 'protection': True})
    token, journal = consent
    refused = vm(run_module, name='w-1', state='absent', gate_token=token, gate_journal=journal)
    assert refused.failed and refused.msg == 'VM 100 (w-1) has protection set; unset it before removing the VM'
    assert 100 in pve.vms
