"""proxmox_vm placing a clone on another node than its template's (clone there, then migrate offline, unless
the template is on shared storage), and proxmox_iso putting a file on nodes' storage through download-url; run
through Ansible against the lab's Proxmox VE, read back with proxmoxer and the control API's request log."""

import hashlib

import pytest
from vm_helpers import clone_with, find, module, server_config

from castle_lab.control import ProxmoxControl

pytestmark = pytest.mark.lab

ISO = 'local:iso/talos-v1.11.6-metal-amd64.iso'
ON_PVE2 = dict(node='pve2', iso=ISO, boot=['scsi0', 'ide2'], target_storage='local-lvm')


@pytest.fixture
def control(env):
    client = ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL'])
    client.clear_faults()
    client.reset_requests()
    yield client
    client.clear_faults()


def posts(control):
    return [r for r in control.requests(params=True)['requests'] if r[0] in ('POST', 'PUT')]


def volids(pve, node, storage='local-lvm', content=None):
    listing = pve.nodes(node).storage(storage).content.get(**({'content': content} if content else {}))
    return {v['volid']: v for v in listing}


# ------------------------------------------------------------------- placement

def test_a_clone_for_pve2_is_made_on_pve1_and_migrated_there_with_its_disk(lab, env, pve, control, name):
    made = module(lab, env, name, **clone_with(**ON_PVE2))
    assert made.rc == 0, made.stdout
    vmid = made.result['vmid']
    assert made.result['node'] == 'pve2'
    vm, config = server_config(pve, name)
    assert vm['node'] == 'pve2'
    assert config['scsi0'].startswith('local-lvm:vm-{0}-disk-0,'.format(vmid))
    assert config['ide2'].startswith(ISO)
    assert 'local-lvm:vm-{0}-disk-0'.format(vmid) in volids(pve, 'pve2')
    assert 'local-lvm:vm-{0}-disk-0'.format(vmid) not in volids(pve, 'pve1')
    seen = posts(control)
    clones = [r for r in seen if r[1].endswith('/clone')]
    assert [r[1] for r in clones] == ['/nodes/pve1/qemu/9000/clone'] and 'target' not in clones[0][2]
    assert clones[0][2]['storage'] == 'local-lvm'
    migrate = ['POST', '/nodes/pve1/qemu/{0}/migrate'.format(vmid), {'target': 'pve2', 'targetstorage': 'local-lvm'}]
    assert migrate in seen
    config_write = next(i for i, r in enumerate(seen) if r[1] == '/nodes/pve2/qemu/{0}/config'.format(vmid))
    assert seen.index(clones[0]) < seen.index(migrate) < config_write
    again = module(lab, env, name, **clone_with(**ON_PVE2))
    assert again.rc == 0 and again.changed is False


def test_check_mode_tells_the_placement_and_makes_nothing(lab, env, pve, control, name):
    predicted = module(lab, env, name, check=True, diff=True, **clone_with(**ON_PVE2))
    assert predicted.rc == 0 and predicted.changed
    assert any('cloned on node pve1, then migrated offline to node pve2 (storage local-lvm not shared)' in line
               for line in predicted.diff), predicted.diff
    assert find(pve, name) == []
    assert posts(control) == []


def test_a_rerun_moves_the_vm_a_failed_migration_left_on_the_templates_node(lab, env, pve, control, name):
    vmid = 4410
    control.fail('POST', '/nodes/pve1/qemu/{0}/migrate'.format(vmid), status=500, message='migration tunnel broke')
    failed = module(lab, env, name, api_retries=0, **clone_with(vmid=vmid, **ON_PVE2))
    assert failed.rc != 0 and 'migration tunnel broke' in failed.result['msg']
    (left,) = find(pve, name)
    assert (left['node'], left['status']) == ('pve1', 'stopped')
    control.clear_faults()
    control.reset_requests()
    fixed = module(lab, env, name, diff=True, **clone_with(vmid=vmid, **ON_PVE2))
    assert fixed.rc == 0 and fixed.changed, fixed.stdout
    assert fixed.result['node'] == 'pve2' and server_config(pve, name)[0]['node'] == 'pve2'
    assert '+    "node": "pve2",' in fixed.diff
    seen = posts(control)
    assert not [r for r in seen if r[1].endswith('/clone')]
    assert ['POST', '/nodes/pve1/qemu/{0}/migrate'.format(vmid), {'target': 'pve2', 'targetstorage': 'local-lvm'}] \
        in seen
    assert server_config(pve, name)[1]['ide2'].startswith(ISO)


def test_a_running_vm_on_another_node_is_refused_not_stopped(lab, env, pve, name):
    assert module(lab, env, name, **clone_with(state='started')).rc == 0
    refused = module(lab, env, name, **clone_with(node='pve2', state='started'))
    assert refused.rc != 0
    assert 'runs on node pve1, not on node pve2: stop it to let it migrate offline' in refused.result['msg']
    assert find(pve, name)[0]['status'] == 'running'


def test_a_linked_clone_for_another_node_is_refused_before_anything_is_made(lab, env, pve, control, name):
    refused = module(lab, env, name, **clone_with(node='pve2', full=False))
    assert refused.rc != 0
    assert ('a linked clone of talos-template cannot be placed on node pve2: the template is on node pve1 and '
            'storage local-lvm is not shared') in refused.result['msg']
    assert find(pve, name) == [] and posts(control) == []


def test_a_template_on_shared_storage_is_cloned_straight_to_the_node(lab, env, pve, control, name):
    template = name + '-tpl'
    pve.nodes('pve1').qemu.post(vmid=4420, name=template, scsi0='shared-nfs:1', net0='virtio,bridge=vmbr0',
                                scsihw='virtio-scsi-single')
    pve.nodes('pve1').qemu(4420).template.post()
    control.reset_requests()
    made = module(lab, env, name, node='pve2', clone=template, cores=2)
    assert made.rc == 0, made.stdout
    assert server_config(pve, name)[0]['node'] == 'pve2'
    seen = posts(control)
    clones = [r for r in seen if r[1].endswith('/clone')]
    assert [(r[1], r[2].get('target')) for r in clones] == [('/nodes/pve1/qemu/4420/clone', 'pve2')]
    assert not [r for r in seen if r[1].endswith('/migrate')]


# ------------------------------------------------------------------ proxmox_iso

def iso(lab, env, check=False, diff=False, **args):
    return module(lab, env, None, check=check, diff=diff, module_name='proxmox_iso', **args)


def test_an_iso_is_downloaded_on_each_node_once_and_verified(lab, env, pve, control, served):
    url, directory = served
    data = b'factory ISO ' * 4096
    (directory / 'factory.iso').write_bytes(data)
    wanted = dict(nodes=['pve1', 'pve2'], url=url + '/factory.iso', filename='talos-factory.iso',
                  checksum=hashlib.sha256(data).hexdigest(), checksum_algorithm='sha256')
    predicted = iso(lab, env, check=True, diff=True, **wanted)
    assert predicted.rc == 0 and predicted.changed
    assert 'local:iso/talos-factory.iso' not in volids(pve, 'pve1', 'local', 'iso')
    made = iso(lab, env, **wanted)
    assert made.rc == 0, made.stdout
    assert made.result['volid'] == 'local:iso/talos-factory.iso'
    assert made.result['nodes'] == {node: {'volid': 'local:iso/talos-factory.iso', 'changed': True, 'size': len(data)}
                                    for node in ('pve1', 'pve2')}
    for node in ('pve1', 'pve2'):
        assert volids(pve, node, 'local', 'iso')['local:iso/talos-factory.iso']['size'] == len(data)
    downloads = [r for r in posts(control) if r[1].endswith('/download-url')]
    assert [r[1] for r in downloads] == ['/nodes/pve1/storage/local/download-url',
                                         '/nodes/pve2/storage/local/download-url']
    assert downloads[0][2]['checksum-algorithm'] == 'sha256'
    control.reset_requests()
    again = iso(lab, env, **wanted)
    assert again.rc == 0 and again.changed is False
    assert not [r for r in posts(control) if r[1].endswith('/download-url')]
    gone = iso(lab, env, node='pve2', filename='talos-factory.iso', state='absent')
    assert gone.rc == 0 and gone.changed
    assert 'local:iso/talos-factory.iso' not in volids(pve, 'pve2', 'local', 'iso')
    assert 'local:iso/talos-factory.iso' in volids(pve, 'pve1', 'local', 'iso')
    assert iso(lab, env, node='pve1', filename='talos-factory.iso', state='absent').changed


def test_a_bad_checksum_or_name_fails_clearly(lab, env, pve, served):
    url, directory = served
    (directory / 'bad.iso').write_bytes(b'not what was promised')
    failed = iso(lab, env, node='pve1', url=url + '/bad.iso', checksum='0' * 64, checksum_algorithm='sha256')
    assert failed.rc != 0
    assert 'download of {0}/bad.iso to local:iso/bad.iso on node pve1 failed: checksum mismatch'.format(url) \
        in failed.result['msg']
    assert 'local:iso/bad.iso' not in volids(pve, 'pve1', 'local', 'iso')
    named = iso(lab, env, node='pve1', url=url + '/bad.iso', filename='bad.txt')
    assert named.rc != 0 and "filename 'bad.txt': a file of content iso must end in .iso or .img" in \
        named.result['msg']
    half = iso(lab, env, node='pve1', url=url + '/bad.iso', checksum='0' * 64)
    assert half.rc != 0 and 'checksum_algorithm' in half.result['msg']
