"""proxmox_vm, proxmox_vm_info and the proxmox_vms role, run through Ansible against the lab's
Proxmox VE; what they did is read back from the API independently with proxmoxer."""

import json

import pytest
from harness import play_recap, run_playbook
from vm_helpers import CLONE, clone_with, find, module, server_config

pytestmark = pytest.mark.lab


def test_clone_is_created_then_left_alone(lab, env, pve, name):
    first = module(lab, env, name, **CLONE)
    assert first.rc == 0, first.stdout
    assert first.changed
    vm, config = server_config(pve, name)
    assert first.result['vmid'] == vm['vmid']
    assert str(config['cores']) == '2' and config['serial0'] == 'socket'
    assert 'tag=40' in config['net0'] and 'discard=on' in config['scsi0']
    assert first.result['macs']['net0'] in config['net0']

    again = module(lab, env, name, **CLONE)
    assert again.rc == 0 and again.changed is False
    # Finding the VM and reading its config: no more than community.proxmox's two, with real change detection.
    assert again.result['requests'] == 2


def test_a_change_shows_exactly_that_change_in_the_diff(lab, env, pve, name):
    assert module(lab, env, name, **CLONE).rc == 0
    changed = module(lab, env, name, diff=True, **clone_with(cores=4))
    assert changed.rc == 0 and changed.changed
    assert changed.diff == ['-    "cores": "2",', '+    "cores": "4",']
    assert str(server_config(pve, name)[1]['cores']) == '4'


def test_check_mode_changes_nothing_on_the_server(lab, env, pve, name):
    predicted = module(lab, env, name, check=True, **CLONE)
    assert predicted.rc == 0 and predicted.changed
    assert find(pve, name) == []
    assert module(lab, env, name, **CLONE).rc == 0
    before = server_config(pve, name)[1]
    predicted = module(lab, env, name, check=True, diff=True, **clone_with(memory=4096, serial=False))
    assert predicted.changed
    assert '+    "memory": "4096",' in predicted.diff
    assert server_config(pve, name)[1] == before


def test_absent_twice_changes_once_and_only_with_the_gates_consent(lab, env, pve, name, consent):
    assert module(lab, env, name, **clone_with(state='started')).rc == 0
    for refused, why in ((module(lab, env, name, state='absent'), 'destroy {0} destroys it: give gate_token'),
                         (module(lab, env, name, state='absent', **consent('other')), 'clears other'),
                         (module(lab, env, name, state='absent', check=True, **consent('other')), 'clears other')):
        assert refused.rc != 0 and why.format(name) in refused.result['msg'], refused.result
    assert len(find(pve, name)) == 1
    predicted = module(lab, env, name, state='absent', check=True)
    assert predicted.rc == 0 and predicted.changed and len(find(pve, name)) == 1
    token = consent(name)
    gone = module(lab, env, name, state='absent', **token)
    assert gone.rc == 0 and gone.changed
    assert find(pve, name) == []
    again = module(lab, env, name, state='absent', **token)
    assert again.rc == 0 and again.changed is False
    assert module(lab, env, name, **clone_with()).rc == 0
    reused = module(lab, env, name, state='absent', **token)
    assert reused.rc != 0 and 'already used to destroy ' + name in reused.result['msg']
    assert len(find(pve, name)) == 1


def test_a_protected_vm_is_not_destroyed(lab, env, pve, name, consent):
    assert module(lab, env, name, **clone_with(protection=True)).rc == 0
    refused = module(lab, env, name, state='absent', **consent(name))
    assert refused.rc != 0
    assert 'has protection set' in refused.result['msg']
    assert len(find(pve, name)) == 1


def test_from_scratch_with_the_talos_iso(lab, env, pve, name):
    made = module(lab, env, name, node='pve2', iso='local:iso/talos-v1.11.6-metal-amd64.iso', boot=['scsi0', 'ide2'],
                  scsihw='virtio-scsi-single', memory=2048, agent=True, onboot=True,
                  startup={'order': 2, 'up': 30}, description='worker', vmid=4321,
                  disks=[{'slot': 'scsi0', 'storage': 'local-lvm', 'size': '32G', 'iothread': True}],
                  networks=[{'slot': 'net0', 'bridge': 'vmbr0', 'mac': 'BC:24:11:40:00:21'}])
    assert made.rc == 0, made.stdout
    vm, config = server_config(pve, name)
    assert vm['vmid'] == 4321 and vm['node'] == 'pve2'
    assert config['ide2'].startswith('local:iso/talos-v1.11.6-metal-amd64.iso')
    assert config['boot'] == 'order=scsi0;ide2'
    assert config['net0'].startswith('virtio=BC:24:11:40:00:21')
    assert 'iothread=1' in config['scsi0']
    again = module(lab, env, name, node='pve2', iso='local:iso/talos-v1.11.6-metal-amd64.iso',
                   boot=['scsi0', 'ide2'], memory=2048, onboot=True, startup={'order': 2, 'up': 30},
                   disks=[{'slot': 'scsi0', 'storage': 'local-lvm', 'size': '32G', 'iothread': True}])
    assert again.rc == 0 and again.changed is False


def test_pending_changes_wait_for_restart_if_needed(lab, env, pve, name):
    assert module(lab, env, name, **clone_with(state='started')).rc == 0
    pending = module(lab, env, name, **clone_with(state='started', memory=3072))
    assert pending.changed and pending.result['pending'] == ['memory']
    assert pending.result['status'] == 'running'
    applied = module(lab, env, name, **clone_with(state='started', memory=3072, restart_if_needed=True))
    assert applied.changed and applied.result['pending'] == []
    assert str(server_config(pve, name)[1]['memory']) == '3072'


def test_stopped_and_restarted(lab, env, pve, name):
    assert module(lab, env, name, **clone_with(state='started')).rc == 0
    stopped = module(lab, env, name, state='stopped')
    assert stopped.changed and find(pve, name)[0]['status'] == 'stopped'
    assert module(lab, env, name, state='stopped').changed is False
    restarted = module(lab, env, name, state='restarted')
    assert restarted.changed and find(pve, name)[0]['status'] == 'running'


@pytest.mark.parametrize('bad, message', [
    (clone_with(target_storage='nosuch'), "storage 'nosuch' does not exist on node pve1"),
    ({'node': 'pve1', 'disks': [{'slot': 'scsi0', 'size': '8G', 'storage': 'nosuch'}]}, "storage 'nosuch'"),
    (clone_with(clone='no-such-template'), "no template or VM named 'no-such-template'"),
    (clone_with(disks=[{'slot': 'scsi0', 'size': 'big'}]), "'big' is not a size"),
    (clone_with(node=None), 'node is required to create VM'),
])
def test_bad_input_is_named_and_creates_nothing(lab, env, pve, name, bad, message):
    failed = module(lab, env, name, **dict((k, v) for k, v in bad.items() if v is not None))
    assert failed.rc != 0
    assert message in failed.result['msg']
    assert find(pve, name) == []


def test_shrinking_a_disk_is_refused_and_changes_nothing(lab, env, pve, name):
    assert module(lab, env, name, **CLONE).rc == 0
    before = server_config(pve, name)[1]
    failed = module(lab, env, name, **clone_with(cores=8, disks=[{'slot': 'scsi0', 'size': '10G'}]))
    assert failed.rc != 0
    assert 'scsi0 is 20G; shrinking it to 10G is not possible' in failed.result['msg']
    assert server_config(pve, name)[1] == before


def test_a_duplicate_name_is_refused(lab, env, pve, name):
    assert module(lab, env, name, **CLONE).rc == 0
    assert module(lab, env, None, **clone_with(name='other-' + name, vmid=None)).rc == 0
    (other,) = find(pve, 'other-' + name)
    pve.nodes(other['node']).qemu(other['vmid']).config.put(name=name)
    try:
        failed = module(lab, env, name, cores=3)
        assert failed.rc != 0
        assert "name '{0}' is used by VMs".format(name) in failed.result['msg']
        renamed = module(lab, env, 'taken', vmid=other['vmid'], node='pve1')
        assert renamed.rc == 0
        clash = module(lab, env, name, vmid=other['vmid'])
        assert clash.rc != 0 and 'already used by VM' in clash.result['msg']
    finally:
        pve.nodes(other['node']).qemu(other['vmid']).delete(purge=1)


def test_missing_auth_is_a_clear_error(lab, env, name):
    bare = dict(env)
    for key in ('PROXMOX_TOKEN_ID', 'PROXMOX_TOKEN_SECRET'):
        bare.pop(key)
    failed = module(lab, bare, name, node='pve1')
    assert failed.rc != 0
    assert 'api_user is required' in failed.result['msg'] or 'give api_token_id' in failed.result['msg']
    wrong = module(lab, dict(env, PROXMOX_TOKEN_SECRET='0' * 32), name, node='pve1')
    assert wrong.rc != 0
    assert 'refused (401)' in wrong.result['msg']


def test_info_by_name_tag_and_all(lab, env, name):
    assert module(lab, env, name, **CLONE).rc == 0
    by_name = module(lab, env, None, module_name='proxmox_vm_info', name=name, include_config=True)
    assert by_name.rc == 0 and by_name.changed is False
    (vm,) = by_name.result['vms']
    assert vm['tags'] == ['it', 'talos'] and vm['config']['cores'] == '2'
    by_tag = module(lab, env, None, module_name='proxmox_vm_info', tag='it')
    assert name in [v['name'] for v in by_tag.result['vms']]
    everything = module(lab, env, None, module_name='proxmox_vm_info')
    assert any(v['template'] for v in everything.result['vms'])


def test_role_creates_every_vm_and_a_rerun_changes_nothing(lab, env, pve, name, tmp_path):
    playbook = tmp_path / 'vms.yml'
    vms = [{'name': '{0}-{1}'.format(name, i), 'node': 'pve1' if i % 2 else 'pve2'} for i in range(4)]
    playbook.write_text(json.dumps([{
        'name': 'VMs of a cluster', 'hosts': 'localhost', 'gather_facts': False,
        'roles': [{'role': 'ephemeral.castle.proxmox_vms', 'vars': {
            'proxmox_vms_list': vms, 'proxmox_vms_per_node_limit': 1,
            'proxmox_vms_defaults': {'clone': 'talos-template', 'memory': 2048, 'serial': True}}}],
    }]))
    first = run_playbook(env, playbook)
    assert first.returncode == 0 and play_recap(first)['localhost']['failed'] == 0, first.stdout[-3000:]
    for vm in vms:
        (found,) = find(pve, vm['name'])
        config = server_config(pve, vm['name'])[1]
        assert found['node'] == vm['node'] and found['status'] == 'running'
        assert str(config['memory']) == '2048'
        # The pve2 ones were cloned on the template's node and migrated: their disk is on pve2's own local-lvm.
        disk = config['scsi0'].split(',')[0]
        assert disk in [v['volid'] for v in pve.nodes(vm['node']).storage('local-lvm').content.get()]
    second = run_playbook(env, playbook)
    assert second.returncode == 0 and play_recap(second)['localhost']['changed'] == 0, second.stdout[-3000:]


def test_batch_failure_of_one_vm_spares_the_others_and_a_rerun_completes(lab, env, pve, name):
    vms = [dict(name='{0}-{1}'.format(name, i), node='pve1', clone='talos-template', state='started')
           for i in range(3)]
    vms[1]['target_storage'] = 'nosuch'
    first = module(lab, env, None, module_name='proxmox_vm_batch', vms=vms, per_node_limit=2)
    assert first.rc != 0
    assert '1 of 3 VMs failed' in first.result['msg']
    assert "storage 'nosuch' does not exist" in first.result['failed_vms'][vms[1]['name']]
    assert sorted(first.result['vms']) == sorted([vms[0]['name'], vms[2]['name']])
    assert find(pve, vms[1]['name']) == []
    vms[1].pop('target_storage')
    second = module(lab, env, None, module_name='proxmox_vm_batch', vms=vms, per_node_limit=2)
    assert second.rc == 0 and second.changed
    assert [second.result['vms'][vm['name']]['changed'] for vm in vms] == [False, True, False]
    assert len(set(second.result['vms'][vm['name']]['vmid'] for vm in vms)) == 3


def test_batch_refuses_bad_descriptions_before_any_request(lab, env, pve, name):
    vms = [dict(name=name, node='pve1', clone='talos-template'), dict(name=name, node='pve1', cores='many'),
           dict(node='pve2')]
    failed = module(lab, env, None, module_name='proxmox_vm_batch', vms=vms)
    assert failed.rc != 0
    msg = failed.result['msg']
    assert msg.startswith('bad VM descriptions, nothing was changed')
    assert 'vms[2]: name is required' in msg and 'listed more than once' in msg and 'cores' in msg
    assert find(pve, name) == []


def test_a_disk_grows_on_the_server(lab, env, pve, name):
    assert module(lab, env, name, **CLONE).rc == 0
    grown = module(lab, env, name, diff=True, **clone_with(disks=[{'slot': 'scsi0', 'size': '36G', 'discard': True}]))
    assert grown.rc == 0 and grown.changed
    assert 'size=36G' in server_config(pve, name)[1]['scsi0']
    assert module(lab, env, name, **clone_with(disks=[{'slot': 'scsi0', 'size': '36G', 'discard': True}])).changed \
        is False


def test_a_linked_clone(lab, env, pve, name):
    refused = module(lab, env, name, **clone_with(full=False, target_storage='local-lvm'))
    assert refused.rc != 0 and 'target_storage applies to full clones only' in refused.result['msg']
    made = module(lab, env, name, **clone_with(full=False))
    assert made.rc == 0, made.stdout
    # A linked clone's volume on LVM-thin is <base volume>/<its own>, as LvmThinPlugin's clone_image names it.
    assert server_config(pve, name)[1]['scsi0'].startswith('local-lvm:base-9000-disk-0/vm-{0}-disk-'.format(
        made.result['vmid']))
    assert module(lab, env, name, **clone_with(full=False)).changed is False
