"""The lab's Proxmox VE storage as upstream has it: `local` and `local-lvm` are each node's own, a clone to
another node from local storage is refused, an offline migration copies the local disks, and download-url
really downloads (qemu-server clone_vm/migrate_vm/QemuMigrate, pve-storage download_url, pve-common
download_file_from_url)."""

import hashlib

import pytest
from proxmoxer import ResourceException

from test_lab_proxmox_control import TEMPLATE, finished

pytestmark = pytest.mark.lab

ISO = 'talos-v1.11.6-metal-amd64.iso'


@pytest.fixture
def api(pve):
    return pve


def volumes(api, node, storage, content=None):
    listing = api.nodes(node).storage(storage).content.get(**({'content': content} if content else {}))
    return {v['volid']: v for v in listing}


def task_log(api, upid):
    return [line['t'] for line in api.nodes(upid.split(':')[1]).tasks(upid).log.get(limit=500)]


def refusal(call):
    with pytest.raises(ResourceException) as failure:
        call()
    return failure.value.status_code, str(failure.value)


def clone(api, newid, node='pve1', source=TEMPLATE, **options):
    upid = api.nodes(node).qemu(source).clone.post(newid=newid, name='vm-{0}'.format(newid), **options)
    assert finished(api, upid)['exitstatus'] == 'OK', task_log(api, upid)


# ------------------------------------------------------------------- storages

def test_local_storages_are_each_nodes_own_and_a_shared_one_is_one(control, api):
    assert api.storage('local').get().get('shared') in (None, 0)
    assert api.storage('shared-nfs').get()['shared'] == 1
    assert 'local-lvm:base-9000-disk-0' in volumes(api, 'pve1', 'local-lvm')
    assert volumes(api, 'pve2', 'local-lvm') == {}
    clone(api, 301, full=1)
    assert 'local-lvm:vm-301-disk-0' in volumes(api, 'pve1', 'local-lvm')
    assert 'local-lvm:vm-301-disk-0' not in volumes(api, 'pve2', 'local-lvm')
    # The Talos ISO was put on each node's `local`; the status of each node's `local` is its own.
    for node in ('pve1', 'pve2'):
        assert 'local:iso/' + ISO in volumes(api, node, 'local', 'iso')
    shared = {n: api.nodes(n).storage.get(storage='shared-nfs')[0]['shared'] for n in ('pve1', 'pve2')}
    assert shared == {'pve1': 1, 'pve2': 1}


# ---------------------------------------------------------------------- clone

def test_a_clone_to_another_node_from_local_storage_is_refused(control, api):
    status, message = refusal(lambda: api.nodes('pve1').qemu(TEMPLATE).clone.post(newid=310, target='pve2'))
    assert status == 500
    assert "can't clone VM to node 'pve2' (VM uses local storage)" in message
    status, message = refusal(lambda: api.nodes('pve1').qemu(TEMPLATE).clone.post(
        newid=310, target='pve2', full=1, storage='local-lvm'))
    assert "can't clone to non-shared storage 'local-lvm'" in message
    assert [vm['vmid'] for vm in control.vms()] == [TEMPLATE]


def test_a_template_on_shared_storage_clones_straight_to_another_node(control, api):
    api.nodes('pve1').qemu.post(vmid=320, name='shared-template', scsi0='shared-nfs:1')
    assert finished(api, api.nodes('pve1').qemu(320).template.post())['exitstatus'] == 'OK'
    clone(api, 321, source=320, target='pve2', full=1)
    made = next(vm for vm in control.vms() if vm['vmid'] == 321)
    assert made['node'] == 'pve2'
    assert made['config']['scsi0'].startswith('shared-nfs:321/vm-321-disk-0')
    # A template with a CD-ROM image on a node's own storage is local too.
    api.nodes('pve1').qemu(320).config.put(ide2='local:iso/{0},media=cdrom'.format(ISO))
    status, message = refusal(lambda: api.nodes('pve1').qemu(320).clone.post(newid=322, target='pve2', full=1))
    assert "can't clone VM to node 'pve2' (VM uses local storage)" in message


# -------------------------------------------------------------------- migrate

def test_an_offline_migration_copies_the_local_disks_to_the_target_node(control, api):
    clone(api, 330, full=1)
    upid = api.nodes('pve1').qemu(330).migrate.post(target='pve2')
    assert finished(api, upid)['exitstatus'] == 'OK'
    log = task_log(api, upid)
    assert "starting migration of VM 330 to node 'pve2'" in log[0]
    assert "volume 'local-lvm:vm-330-disk-0' is 'local-lvm:vm-330-disk-0' on the target" in log
    moved = next(vm for vm in control.vms() if vm['vmid'] == 330)
    assert moved['node'] == 'pve2' and moved['lock'] is None
    assert 'local-lvm:vm-330-disk-0' not in volumes(api, 'pve1', 'local-lvm')
    assert volumes(api, 'pve2', 'local-lvm')['local-lvm:vm-330-disk-0']['size'] == 20 * 1024 ** 3
    # targetstorage maps the disks to another storage of the target node.
    upid = api.nodes('pve2').qemu(330).migrate.post(target='pve1', targetstorage='shared-nfs')
    assert finished(api, upid)['exitstatus'] == 'OK', task_log(api, upid)
    moved = next(vm for vm in control.vms() if vm['vmid'] == 330)
    assert moved['node'] == 'pve1' and moved['config']['scsi0'].startswith('shared-nfs:330/vm-330-disk-0.raw,')
    assert volumes(api, 'pve2', 'local-lvm') == {}


def test_a_migration_refuses_what_qemu_server_refuses(control, api):
    clone(api, 340, full=1)
    vm = api.nodes('pve1').qemu(340)
    status, message = refusal(lambda: vm.migrate.post(target='pve1'))
    assert status == 400 and 'target is local node.' in message
    status, message = refusal(lambda: vm.migrate.post(target='pve2', targetstorage='local'))
    assert status == 400 and "storage 'local' does not support vm images" in message
    # A storage restricted to some nodes (storage.cfg `nodes`) is no target on the others.
    api.storage('shared-nfs').put(nodes='pve1')
    status, message = refusal(lambda: vm.migrate.post(target='pve2', targetstorage='shared-nfs'))
    assert "storage 'shared-nfs' is not available on node 'pve2'" in message
    assert finished(api, vm.status.start.post())['exitstatus'] == 'OK'
    status, message = refusal(lambda: vm.migrate.post(target='pve2'))
    assert status == 500 and "can't migrate running VM without --online" in message
    upid = vm.migrate.post(target='pve2', online=1)
    assert finished(api, upid)['exitstatus'] == 'migration aborted'
    assert ("can't migrate local disk 'local-lvm:vm-340-disk-0': can't live migrate attached local disks without "
            "with-local-disks option") in task_log(api, upid)
    assert finished(api, vm.status.stop.post())['exitstatus'] == 'OK'
    # A CD-ROM image on the node's own storage stops an offline migration (it is not copied).
    vm.config.put(ide2='local:iso/{0},media=cdrom'.format(ISO))
    upid = vm.migrate.post(target='pve2')
    assert finished(api, upid)['exitstatus'] == 'migration aborted'
    log = task_log(api, upid)
    assert "can't migrate local disk 'local:iso/{0}': local cdrom image".format(ISO) in log
    assert any('Problem found while scanning volumes - can\'t migrate VM - check log' in line for line in log)
    assert next(v for v in control.vms() if v['vmid'] == 340)['node'] == 'pve1'
    # A linked clone of a local template cannot leave its base volume's node.
    clone(api, 341, full=0)
    upid = api.nodes('pve1').qemu(341).migrate.post(target='pve2')
    assert finished(api, upid)['exitstatus'] == 'migration aborted'
    assert any("as it's a clone of 'base-9000-disk-0'" in line for line in task_log(api, upid))


# --------------------------------------------------------------- download-url

def test_download_url_fetches_verifies_and_stores_on_that_node_only(control, api, served):
    url, directory = served
    data = b'ISO-bytes ' * 1000
    (directory / 'factory.iso').write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    storage = api.nodes('pve1').storage('local')
    upid = storage('download-url').post(url=url + '/factory.iso', content='iso', filename='factory.iso',
                                        checksum=digest, **{'checksum-algorithm': 'sha256'})
    assert finished(api, upid)['exitstatus'] == 'OK', task_log(api, upid)
    log = task_log(api, upid)
    assert log[0] == 'downloading {0}/factory.iso to /var/lib/vz/template/iso/factory.iso'.format(url)
    assert 'calculating checksum...OK, checksum verified' in log
    assert volumes(api, 'pve1', 'local', 'iso')['local:iso/factory.iso']['size'] == len(data)
    assert 'local:iso/factory.iso' not in volumes(api, 'pve2', 'local', 'iso')
    # The same file again: refused without a checksum, skipped with the right one.
    upid = storage('download-url').post(url=url + '/factory.iso', content='iso', filename='factory.iso')
    assert finished(api, upid)['exitstatus'] == \
        "refusing to override existing file '/var/lib/vz/template/iso/factory.iso'"
    upid = storage('download-url').post(url=url + '/factory.iso', content='iso', filename='factory.iso',
                                        checksum=digest, **{'checksum-algorithm': 'sha256'})
    assert finished(api, upid)['exitstatus'] == 'OK'
    assert any('no need to download' in line for line in task_log(api, upid))


def test_download_url_refuses_a_bad_checksum_a_bad_name_and_a_missing_file(control, api, served):
    url, directory = served
    (directory / 'other.iso').write_bytes(b'other')
    storage = api.nodes('pve2').storage('local')
    wrong = '0' * 64
    upid = storage('download-url').post(url=url + '/other.iso', content='iso', filename='other.iso',
                                        checksum=wrong, **{'checksum-algorithm': 'sha256'})
    assert finished(api, upid)['exitstatus'] == "checksum mismatch: got '{0}' != expect '{1}'".format(
        hashlib.sha256(b'other').hexdigest(), wrong)
    assert 'local:iso/other.iso' not in volumes(api, 'pve2', 'local', 'iso')
    status, message = refusal(lambda: storage('download-url').post(url=url + '/other.iso', content='iso',
                                                                   filename='other.txt'))
    assert status == 400 and 'wrong file extension' in message
    status, message = refusal(lambda: api.nodes('pve2').storage('local-lvm')('download-url').post(
        url=url + '/other.iso', content='iso', filename='other.iso'))
    assert "not a file based storage" in message
    upid = storage('download-url').post(url=url + '/missing.iso', content='iso', filename='missing.iso')
    assert finished(api, upid)['exitstatus'] == 'download failed: exit code 8'


# ---------------------------------------------------------------- request log

def test_the_request_log_shows_clone_migrate_and_download_with_their_parameters(control, api, served):
    url, directory = served
    (directory / 'x.iso').write_bytes(b'x')
    control.reset_requests()
    clone(api, 350, full=1)
    finished(api, api.nodes('pve1').qemu(350).migrate.post(target='pve2'))
    finished(api, api.nodes('pve2').storage('local')('download-url').post(url=url + '/x.iso', content='iso',
                                                                          filename='x.iso'))
    posts = [r for r in control.requests(params=True)['requests'] if r[0] == 'POST']
    assert posts[0][:2] == ['POST', '/nodes/pve1/qemu/{0}/clone'.format(TEMPLATE)]
    assert posts[0][2]['newid'] == '350' and 'target' not in posts[0][2]
    assert posts[1] == ['POST', '/nodes/pve1/qemu/350/migrate', {'target': 'pve2'}]
    assert posts[2][:2] == ['POST', '/nodes/pve2/storage/local/download-url']
    assert posts[2][2]['url'] == url + '/x.iso'
