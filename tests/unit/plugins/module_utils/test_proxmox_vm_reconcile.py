"""Where proxmox_vm puts a clone whose template is on another node: straight there on shared storage, else
cloned on the template's node and migrated offline (qemu-server refuses a clone `target` from local storage)."""

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox import ProxmoxError
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_reconcile import (
    VmReconciler, vm_argument_spec)

TEMPLATE = {'vmid': 9000, 'name': 'talos-template', 'node': 'pve1', 'status': 'stopped', 'template': 1}
STORAGES = [{'storage': 'local', 'shared': 0}, {'storage': 'local-lvm', 'shared': 0},
            {'storage': 'shared-nfs', 'shared': 1}]


class FakeClient(object):
    """Answers the reads a clone makes and records every write; tasks end at once."""

    def __init__(self, template_disk='local-lvm:base-9000-disk-0,size=20G', vms=None):
        self.template_config = {'name': 'talos-template', 'scsi0': template_disk, 'cores': 2}
        self.listed = vms if vms is not None else [dict(TEMPLATE)]
        self.writes = []
        self.retries = 0

    def vms(self):
        return self.listed

    def get(self, path, **params):
        if path.endswith('/storage'):
            return STORAGES
        if path == 'nodes/pve1/qemu/9000/config':
            return self.template_config
        if path.endswith('/pending'):
            return [{'key': 'name', 'value': 'w-2'}, {'key': 'cores', 'value': 2}]
        raise AssertionError('unexpected GET ' + path)

    def run_task(self, node, method, path, what, wait, params=None):
        self.writes.append((method, path, dict(params or {})))

    def put(self, path, **params):
        self.writes.append(('put', path, params))


def params(**given):
    values = dict((key, spec.get('default')) for key, spec in vm_argument_spec().items())
    values.update(name='w-2', vmid=102, node='pve2', clone='talos-template', **given)
    return values


def test_a_clone_from_local_storage_is_made_on_the_templates_node_then_migrated():
    client = FakeClient()
    result = VmReconciler(client, params(target_storage='local-lvm'), check_mode=False).run()
    assert client.writes[:2] == [
        ('post', 'nodes/pve1/qemu/9000/clone', {'newid': 102, 'name': 'w-2', 'full': 1, 'storage': 'local-lvm'}),
        ('post', 'nodes/pve1/qemu/102/migrate', {'target': 'pve2', 'targetstorage': 'local-lvm'})]
    assert result['node'] == 'pve2'


def test_a_template_on_shared_storage_is_cloned_straight_to_the_node():
    client = FakeClient(template_disk='shared-nfs:base-9000-disk-0.raw,size=20G')
    VmReconciler(client, params(), check_mode=False).run()
    assert client.writes[0] == ('post', 'nodes/pve1/qemu/9000/clone',
                                {'newid': 102, 'name': 'w-2', 'full': 1, 'target': 'pve2'})
    assert not [w for w in client.writes if w[1].endswith('/migrate')]


@pytest.mark.parametrize('target_storage', ['local-lvm', None])
def test_a_local_target_storage_or_cdrom_image_makes_the_clone_migrate(target_storage):
    client = FakeClient(template_disk='shared-nfs:base-9000-disk-0.raw,size=20G')
    client.template_config['ide2'] = 'local:iso/talos.iso,media=cdrom' if not target_storage else 'none,media=cdrom'
    VmReconciler(client, params(target_storage=target_storage), check_mode=False).run()
    assert 'target' not in client.writes[0][2]
    assert client.writes[1][1] == 'nodes/pve1/qemu/102/migrate'


def test_check_mode_names_the_placement_and_writes_nothing():
    client = FakeClient()
    reconciler = VmReconciler(client, params(), check_mode=True)
    reconciler.run()
    assert client.writes == []
    assert reconciler.diff['after']['placement'] == \
        'cloned on node pve1, then migrated offline to node pve2 (storage local-lvm not shared)'


def test_a_linked_clone_for_another_node_is_refused():
    client = FakeClient()
    with pytest.raises(ProxmoxError, match='a linked clone of talos-template cannot be placed on node pve2'):
        VmReconciler(client, params(full=False), check_mode=False).run()
    assert client.writes == []


def test_a_stopped_vm_left_on_the_templates_node_is_migrated_and_a_running_one_refused():
    left = {'vmid': 102, 'name': 'w-2', 'node': 'pve1', 'status': 'stopped'}
    client = FakeClient(vms=[dict(TEMPLATE), left])
    result = VmReconciler(client, params(), check_mode=False).run()
    assert client.writes[0] == ('post', 'nodes/pve1/qemu/102/migrate', {'target': 'pve2'})
    assert result['node'] == 'pve2'
    client = FakeClient(vms=[dict(TEMPLATE), dict(left, status='running')])
    with pytest.raises(ProxmoxError, match='runs on node pve1, not on node pve2'):
        VmReconciler(client, params(), check_mode=False).run()
    assert client.writes == []
