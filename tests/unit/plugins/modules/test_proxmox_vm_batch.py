"""proxmox_vm_batch against a fake Proxmox VE: many VMs at once, every description checked first, one failure
not stopping the others, check mode, diff and idempotence."""

import pytest
from ansible_collections.ephemeral.castle.plugins.module_utils import gate

import fake_pve


def described(name, **options):
    return dict(dict(name=name, node='pve1', clone='talos-template', cores=2), **options)


@pytest.fixture
def pve(monkeypatch):
    cluster = fake_pve.install(monkeypatch)
    cluster.add_vm(9000, 'talos-template', template=1, cores='1', scsi0='local-lvm:base-9000-disk-0,size=20G')
    return cluster


def batch(run_module, vms, check_mode=False, diff=False, **args):
    return run_module('proxmox_vm_batch', check_mode=check_mode, diff=diff, vms=vms, **dict(fake_pve.LOGIN, **args))


def test_every_vm_is_made_with_its_own_vmid_and_a_rerun_changes_nothing(run_module, pve):
    vms = [described('w-{0}'.format(i)) for i in range(3)] + [described('w-pve2', node='pve2', clone=None)]
    made = batch(run_module, vms, per_node_limit=1)
    assert not made.failed, made.msg
    assert made.changed and made['failed_vms'] == {}
    assert sorted(r['vmid'] for r in made['vms'].values()) == [100, 101, 102, 103]
    assert all(r['changed'] and 'config' not in r for r in made['vms'].values())
    again = batch(run_module, vms)
    assert not again.changed and not any(r['changed'] for r in again['vms'].values())


def test_check_mode_makes_nothing_and_the_diff_is_by_vm(run_module, pve):
    result = batch(run_module, [described('w-1'), described('w-2')], check_mode=True, diff=True)
    assert result.changed
    assert sorted(result['diff']['after']) == ['w-1', 'w-2']
    assert result['diff']['after']['w-1']['clone_of'] == 'talos-template (9000)'
    assert pve.writes() == []


def test_one_failing_vm_does_not_stop_the_others_and_is_named(run_module, pve):
    result = batch(run_module, [described('w-1'), described('w-2', target_storage='ceph')])
    assert result.failed and result.changed
    assert result.msg == ("1 of 2 VMs failed (a re-run completes them): w-2: storage 'ceph' does not exist on node "
                          "pve1 (it has: local, local-lvm)")
    assert list(result['vms']) == ['w-1'] and list(result['failed_vms']) == ['w-2']
    assert [vm['config']['name'] for vm in pve.vms.values()] == ['talos-template', 'w-1']


@pytest.mark.parametrize('vms, message', [
    ([described('w-1'), {'node': 'pve1'}], 'vms[1]: name is required'),
    ([described('w-1'), described('w-1')], 'w-1: listed more than once'),
    ([described('w-1', cores='many')], "w-1: argument 'cores' is of type"),
    ([described('w-1', disks=[{'slot': 'hd0', 'size': '1G'}])], "w-1: disks: slot 'hd0' is not a disk slot"),
])
def test_a_bad_description_changes_nothing_and_is_named(run_module, pve, vms, message):
    result = batch(run_module, vms)
    assert result.failed and result.msg.startswith('bad VM descriptions, nothing was changed: ')
    assert message in result.msg
    assert pve.requests == []


def test_per_node_limit_must_allow_one_vm(run_module, pve):
    result = batch(run_module, [described('w-1')], per_node_limit=0)
    assert result.failed and result.msg == 'per_node_limit must be 1 or more, not 0'


def test_a_refused_login_fails_once_before_any_vm(run_module, pve):
    result = run_module('proxmox_vm_batch', vms=[described('w-1')], api_host='pve.test', api_user='root@pam',
                        api_password='wrong')
    assert result.failed and result.msg.startswith('login to pve.test as root@pam failed')
    assert len(pve.logins) == 1


def test_vms_are_removed_only_with_the_gates_token_for_their_names(run_module, pve, tmp_path):
    batch(run_module, [described('w-1'), described('w-2')])
    fleet = tmp_path / 'fleet.yml'
    fleet.write_text('clusters: []\n')
    journal = str(tmp_path / 'phoenix-journal.md')
    token = gate.issue(journal, str(fleet), 'lab', 'cluster', ['w-1'], 600, 'gate passed')[0]
    removal = [described('w-1', state='absent'), described('w-2', state='absent', timeout=30)]
    refused = batch(run_module, removal)
    assert refused.failed and refused.msg.startswith('destroy w-1, w-2 destroys it: give gate_token and gate_journal')
    # A token that does not clear every VM to remove is refused before any is touched.
    partly = batch(run_module, removal, gate_token=token, gate_journal=journal)
    refusal = 'the gate token {0} clears w-1 (target lab), not w-2; nothing was changed'.format(gate.digest(token)[:12])
    assert partly.failed and partly.msg == refusal
    assert sorted(vm['config']['name'] for vm in pve.vms.values()) == ['talos-template', 'w-1', 'w-2']
    assert pve.made('delete') == []
    both = gate.issue(journal, str(fleet), 'lab', 'cluster', ['w-1', 'w-2'], 600, 'gate passed')[0]
    gone = batch(run_module, removal, gate_token=both, gate_journal=journal)
    assert not gone.failed and gone.changed and len(pve.made('delete')) == 2
    assert [vm['config']['name'] for vm in pve.vms.values()] == ['talos-template']
    assert open(journal).read().count('used: destroy') == 2
