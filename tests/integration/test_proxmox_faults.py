"""proxmox_vm under the faults the lab's Proxmox VE injects: retried where PVE's trouble is
passing, failing clearly where it is not."""

import pytest
from castle_lab.control import ProxmoxControl

from vm_helpers import CLONE, find, module

pytestmark = pytest.mark.lab

LOCK_TIMEOUT = "can't lock file '/var/lock/qemu-server/lock-{0}.conf' - got timeout"


@pytest.fixture
def control(env):
    ctl = ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL'])
    ctl.clear_faults()
    yield ctl
    ctl.clear_faults()
    ctl.time_scale(0)


def posts_to(control, path):
    return [r for r in control.requests()['requests'] if r == ['POST', path]]


def test_injected_5xx_on_clone_is_retried_and_succeeds(lab, env, pve, name, control):
    path = '/nodes/pve1/qemu/9000/clone'
    control.fail('POST', path, status=503, message='proxy: backend busy', times=2)
    control.reset_requests()
    made = module(lab, env, name, **CLONE)
    assert made.rc == 0, made.stdout
    assert len(find(pve, name)) == 1
    assert len(posts_to(control, path)) == 3


def test_lock_timeouts_on_a_config_write_are_retried(lab, env, pve, name, control):
    made = module(lab, env, name, **CLONE)
    vmid = made.result['vmid']
    control.fail('PUT', '/nodes/pve1/qemu/{0}/config'.format(vmid), status=500, message=LOCK_TIMEOUT.format(vmid),
                 times=2)
    changed = module(lab, env, name, **{**CLONE, 'cores': 6})
    assert changed.rc == 0, changed.stdout
    assert str(pve.nodes('pve1').qemu(vmid).config.get()['cores']) == '6'


def test_a_held_config_lock_exhausts_a_small_retry_budget_clearly(lab, env, pve, name, control):
    vmid = module(lab, env, name, **CLONE).result['vmid']
    control.fail('PUT', '/nodes/pve1/qemu/{0}/config'.format(vmid), status=500, message=LOCK_TIMEOUT.format(vmid))
    failed = module(lab, env, name, api_retries=1, **{**CLONE, 'cores': 6})
    assert failed.rc != 0
    assert 'PUT nodes/pve1/qemu/{0}/config failed after 2 tries'.format(vmid) in failed.result['msg']
    assert "can't lock file" in failed.result['msg']
    control.clear_faults()
    assert str(pve.nodes('pve1').qemu(vmid).config.get()['cores']) == '2'
    assert module(lab, env, name, **{**CLONE, 'cores': 6}).rc == 0


def test_an_exhausted_retry_budget_on_reads_fails_clearly(lab, env, name, control):
    control.fail('GET', '/cluster/resources', status=502, message='Bad Gateway')
    failed = module(lab, env, name, api_retries=2, **CLONE)
    assert failed.rc != 0
    assert failed.result['msg'].startswith('GET cluster/resources failed after 3 tries')
    assert failed.result['requests'] == 3


def test_a_failed_task_fails_with_its_log_tail(lab, env, pve, name, control):
    assert module(lab, env, name, vmid=4401, **CLONE).rc == 0
    control.fail('POST', '/nodes/pve1/qemu/4401/status/start', error='qemu_exited_code')
    failed = module(lab, env, name, vmid=4401, state='started')
    assert failed.rc != 0
    assert 'start of VM 4401 failed: QEMU exited with code 1' in failed.result['msg']
    assert failed.result['task_log']
    assert find(pve, name)[0]['status'] == 'stopped'


def test_parallel_clones_of_one_template_with_slow_storage(lab, env, pve, name, control):
    # Full clones take a while and hold the template's lock shared: all of them must succeed.
    control.time_scale(0.05)
    vms = [dict(CLONE, name='{0}-{1}'.format(name, i), state='present') for i in range(4)]
    made = module(lab, env, None, module_name='proxmox_vm_batch', vms=vms, per_node_limit=4)
    assert made.rc == 0, made.stdout
    ids = [made.result['vms'][vm['name']]['vmid'] for vm in vms]
    assert len(set(ids)) == 4
    for vm in vms:
        assert len(find(pve, vm['name'])) == 1


def test_a_node_that_went_away_fails_clearly(lab, env, pve, name, control):
    control.node('pve2', False)
    try:
        failed = module(lab, env, name, api_retries=1, **{**CLONE, 'node': 'pve2', 'clone': None,
                                                          'disks': [{'slot': 'scsi0', 'size': '8G',
                                                                     'storage': 'local-lvm'}]})
        assert failed.rc != 0
        assert 'pve2' in failed.result['msg']
        assert find(pve, name) == []
    finally:
        control.node('pve2', True)


def test_wait_for_ip_returns_what_the_guest_agent_reports(lab, env, name, control):
    made = module(lab, env, name, **{**CLONE, 'state': 'started'})
    vmid = made.result['vmid']
    silent = module(lab, env, name, state='started', wait_for_ip=True, timeout=2)
    assert silent.rc != 0
    assert 'reported no IP address within 2s' in silent.result['msg']
    assert 'guest agent is not running' in silent.result['msg']
    assert 'siderolabs/qemu-guest-agent system extension' in silent.result['msg']
    control.agent(vmid, [
        {'name': 'lo', 'ip-addresses': [{'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', 'prefix': 8}]},
        {'name': 'eth0', 'hardware-address': made.result['macs']['net0'].lower(),
         'ip-addresses': [{'ip-address': '10.0.40.11', 'ip-address-type': 'ipv4', 'prefix': 24},
                          {'ip-address': 'fe80::1', 'ip-address-type': 'ipv6', 'prefix': 64}]}])
    found = module(lab, env, name, state='started', wait_for_ip=True, timeout=30)
    assert found.rc == 0 and found.changed is False
    assert found.result['ips'] == ['10.0.40.11']


def test_a_slow_full_clone_times_out_clearly_and_a_rerun_finishes_it(lab, env, pve, name, control):
    # 20 PVE seconds of copying at half speed: longer than the first run is willing to wait.
    control.time_scale(0.5)
    slow = module(lab, env, name, timeout=2, **CLONE)
    assert slow.rc != 0
    assert 'still running after 2s' in slow.result['msg'] and 'a re-run waits for it' in slow.result['msg']
    (vm,) = find(pve, name)
    assert vm.get('lock') == 'clone'
    done = module(lab, env, name, timeout=120, **CLONE)
    assert done.rc == 0, done.stdout
    (vm,) = find(pve, name)
    assert not vm.get('lock')
    assert module(lab, env, name, **CLONE).changed is False
