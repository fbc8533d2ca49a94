"""The Proxmox VE fake's control API, what the lab adds to fakepve, and `castle-lab fault`, through real clients."""

import time

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from castle_lab.control import ControlError

pytestmark = pytest.mark.lab

TEMPLATE = 9000
TASK_DEADLINE = 30.0


@pytest.fixture
def api(env):
    user, token_name = env['PROXMOX_TOKEN_ID'].split('!')
    return ProxmoxAPI(env['PROXMOX_HOST'], port=8006, user=user, token_name=token_name,
                      token_value=env['PROXMOX_TOKEN_SECRET'], verify_ssl=env['PROXMOX_CA'])


def task_status(api, upid):
    return api.nodes(upid.split(':')[1]).tasks(upid).status.get()


def finished(api, upid, deadline=TASK_DEADLINE):
    """The task's final status, polled until it stops or the deadline passes."""
    give_up = time.monotonic() + deadline
    while True:
        status = task_status(api, upid)
        if status['status'] == 'stopped':
            return status
        assert time.monotonic() < give_up, 'task {0} still running after {1}s'.format(upid, deadline)
        time.sleep(0.05)


def clone(api, newid, **options):
    upid = api.nodes('pve1').qemu(TEMPLATE).clone.post(newid=newid, name='vm-{0}'.format(newid), **options)
    assert finished(api, upid)['exitstatus'] == 'OK'


def server_vm(control, vmid):
    return next((vm for vm in control.vms() if vm['vmid'] == vmid), None)


def test_a_fault_fails_that_many_calls_then_the_api_answers_again(control, api):
    control.fail('GET', '/nodes/pve1/qemu', status=500, message='boom', times=2)
    for _attempt in range(2):
        with pytest.raises(ResourceException) as failure:
            api.nodes('pve1').qemu.get()
        assert failure.value.status_code == 500
        assert 'boom' in str(failure.value)
    assert [vm['vmid'] for vm in api.nodes('pve1').qemu.get()] == [TEMPLATE]
    assert control.requests() == {'count': 3, 'requests': [['GET', '/nodes/pve1/qemu']] * 3}


def test_a_named_pve_error_lasts_until_cleared(control, api):
    control.fail('POST', '/nodes/pve1/qemu', error='no_quorum')
    for _attempt in range(2):
        with pytest.raises(ResourceException) as failure:
            api.nodes('pve1').qemu.post(vmid=120, name='blocked')
        assert 'cluster not ready - no quorum?' in str(failure.value)
    assert control.clear_faults() == {'cleared': 1}
    assert finished(api, api.nodes('pve1').qemu.post(vmid=120, name='created'))['exitstatus'] == 'OK'
    assert server_vm(control, 120)['name'] == 'created'


def test_an_error_pve_raises_in_its_worker_fails_the_task(control, api):
    control.fail('POST', '/nodes/pve1/qemu', error='live_restore_failed', times=1)
    upid = api.nodes('pve1').qemu.post(vmid=121, name='restored')
    assert finished(api, upid)['exitstatus'] == 'live-restore failed'
    assert server_vm(control, 121) is None


@pytest.mark.parametrize('fault, reason', [
    ({'error': 'nosuch'}, "no error 'nosuch'"),
    ({'status': 500}, "give 'status' and 'message'"),
    ({'status': 500, 'message': 'x', 'times': 0}, "'times' must be an integer of at least 1"),
])
def test_a_bad_fault_is_refused_with_its_reason(control, fault, reason):
    with pytest.raises(ControlError) as refused:
        control.fail('POST', '/nodes/pve1/qemu', **fault)
    assert refused.value.status == 400
    assert reason in str(refused.value)


def test_a_held_config_lock_makes_a_config_write_time_out(control, api):
    clone(api, 130)
    control.hold_lock(130, 60)
    with pytest.raises(ResourceException) as failure:
        api.nodes('pve1').qemu(130).config.put(cores=4)
    assert failure.value.status_code == 500
    assert "can't lock file '/var/lock/qemu-server/lock-130.conf' - got timeout" in str(failure.value)
    assert server_vm(control, 130)['config']['cores'] == 2


def test_resize_grows_the_disk_and_refuses_to_shrink_it(control, api):
    clone(api, 140)
    vm = api.nodes('pve1').qemu(140)
    assert finished(api, vm.resize.put(disk='scsi0', size='+2G'))['exitstatus'] == 'OK'
    assert 'size=22G' in vm.config.get()['scsi0']
    assert finished(api, vm.resize.put(disk='scsi0', size='24G'))['exitstatus'] == 'OK'
    assert 'size=24G' in server_vm(control, 140)['config']['scsi0']
    shrink = vm.resize.put(disk='scsi0', size='10G')
    assert finished(api, shrink)['exitstatus'] == 'shrinking disks is not supported'
    log = [line['t'] for line in api.nodes('pve1').tasks(shrink).log.get()]
    assert log[-1] == 'TASK ERROR: shrinking disks is not supported'
    assert 'size=24G' in vm.config.get()['scsi0']
    volumes = {v['volid']: v['size'] for v in api.nodes('pve1').storage('local-lvm').content.get()}
    # A linked clone of the template: its volume is named <base>/<own> (LvmThinPlugin clone_image).
    assert volumes['local-lvm:base-9000-disk-0/vm-140-disk-0'] == 24 * 1024 ** 3


def test_a_full_clone_takes_time_and_holds_the_new_vm_locked(control, api):
    control.time_scale(0.1)  # 20 GiB at one PVE second each: two real seconds
    upid = api.nodes('pve1').qemu(TEMPLATE).clone.post(newid=150, name='slow', full=1)
    assert task_status(api, upid)['status'] == 'running'
    assert server_vm(control, 150)['lock'] == 'clone'
    with pytest.raises(ResourceException, match=r'VM is locked \(clone\)'):
        api.nodes('pve1').qemu(150).config.put(cores=4)
    assert finished(api, upid)['exitstatus'] == 'OK'
    cloned = server_vm(control, 150)
    assert cloned['lock'] is None
    assert cloned['config']['scsi0'].startswith('local-lvm:vm-150-disk-0,')


def test_concurrent_clones_of_the_template_share_its_lock(control, api):
    # An exclusive lock would fail the second clone after PVE's one-second lock timeout.
    control.time_scale(0.05)
    upids = [api.nodes('pve1').qemu(TEMPLATE).clone.post(newid=newid, name='c{0}'.format(newid), full=1)
             for newid in (151, 152)]
    assert [task_status(api, upid)['status'] for upid in upids] == ['running', 'running']
    assert [finished(api, upid)['exitstatus'] for upid in upids] == ['OK', 'OK']
    assert {vm['vmid'] for vm in control.vms()} == {TEMPLATE, 151, 152}


def test_vms_shows_the_servers_view_of_api_changes(control, api):
    clone(api, 160, full=1)
    vm = api.nodes('pve1').qemu(160)
    vm.config.put(memory=8192, description='from the api')
    assert finished(api, vm.status.start.post())['exitstatus'] == 'OK'
    seen = server_vm(control, 160)
    assert (seen['node'], seen['status'], seen['template'], seen['lock']) == ('pve1', 'running', False, None)
    assert str(seen['config']['memory']) == '8192'
    assert seen['config']['description'] == 'from the api'
    # A running VM with a disk on the node's own storage migrates live only with with-local-disks.
    assert finished(api, vm.migrate.post(target='pve2', online=1, **{'with-local-disks': 1}))['exitstatus'] == 'OK'
    assert server_vm(control, 160)['node'] == 'pve2'
    assert [v['vmid'] for v in api.nodes('pve2').qemu.get()] == [160]


def test_vms_added_in_bulk_are_served_by_the_api(control, api):
    made = control.create_vms(300, prefix='bulk', nodes=['pve1', 'pve2'], running=True, first_vmid=2000)
    assert made == {'count': 300, 'first_vmid': 2000, 'last_vmid': 2299}
    listed = {vm['vmid']: vm for vm in api.cluster.resources.get(type='vm') if vm['name'].startswith('bulk-')}
    assert sorted(listed) == list(range(2000, 2300))
    assert listed[2000]['name'] == 'bulk-1' and listed[2000]['node'] == 'pve1' and listed[2001]['node'] == 'pve2'
    assert {vm['status'] for vm in listed.values()} == {'running'}
    assert api.nodes('pve2').qemu(2299).config.get()['memory'] in (512, '512')
    with pytest.raises(ControlError, match='VM id.s. already taken: 2000'):
        control.create_vms(1, first_vmid=2000)
    with pytest.raises(ControlError, match="no node 'pve9'"):
        control.create_vms(1, nodes=['pve9'])
    control.reset()
    assert not [vm for vm in api.cluster.resources.get(type='vm') if vm['name'].startswith('bulk-')]


def test_reset_restores_the_initial_state(control, api):
    initial = control.vms()
    clone(api, 170, full=1)
    control.fail('GET', '/nodes', status=502, message='bad gateway')
    control.node('pve2', False)
    control.quorum(False)
    control.network(latency=0.5)
    control.time_scale(0.5)
    assert control.reset() == {'vms': [TEMPLATE]}
    assert control.vms() == initial
    assert control.requests()['count'] == 0
    assert {n['node']: n['status'] for n in api.nodes.get()} == {'pve1': 'online', 'pve2': 'online'}
    assert api.cluster.status.get()[0]['quorate'] == 1
    volumes = [v['volid'] for v in api.nodes('pve1').storage('local-lvm').content.get()]
    assert volumes == ['local-lvm:base-9000-disk-0']
    # Time scale 0 again: a clone's task has ended when its request returns.
    upid = api.nodes('pve1').qemu(TEMPLATE).clone.post(newid=171, full=1)
    assert task_status(api, upid)['status'] == 'stopped'


def test_castle_lab_fault_drives_the_control_api(lab, control, api):
    lab.castle_lab('fault', 'proxmox', 'fail', '--method', 'GET', '--path', '/nodes/pve1/qemu',
                   '--status', '503', '--message', 'maintenance', '--times', '1')
    with pytest.raises(ResourceException) as failure:
        api.nodes('pve1').qemu.get()
    assert failure.value.status_code == 503
    api.nodes('pve1').qemu.get()
    assert lab.castle_lab('requests', 'proxmox').stdout.strip() == '2'
    lab.castle_lab('fault', 'proxmox', 'node', 'pve2', '--offline')
    with pytest.raises(ResourceException) as failure:
        api.nodes('pve2').qemu.get()
    assert failure.value.status_code == 595
    lab.castle_lab('fault', 'proxmox', 'reset')
    assert api.nodes('pve2').qemu.get() == []


@pytest.mark.parametrize('args, reason', [
    (('fault', 'proxmox', 'nosuch'), "invalid choice: 'nosuch'"),
    (('fault', 'nosuch', 'clear'), "unknown service 'nosuch'"),
    (('fault', 'vault', 'clear'), "only proxmox has a control API, not 'vault'"),
    (('requests', 'git'), "only proxmox has a control API, not 'git'"),
])
def test_bad_fault_commands_fail_with_one_line(lab, args, reason):
    result = lab.castle_lab(*args, check=False)
    assert result.returncode == 2
    assert result.stderr.count('\n') == 1
    assert reason in result.stderr
