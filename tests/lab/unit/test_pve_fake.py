"""Sizes as the lab's Proxmox VE fake reads them for disk resizes and clone durations; storage that is each
node's own; migrate's storage map and a volume's owner."""

import copy

import pytest

from castle_lab.proxmox.fake import LabPve
from castle_lab.proxmox.storage import NodeLocalStore, drive_size, parse_size, resized, storage_map, volume_owner

GIB = 1024 ** 3


@pytest.mark.parametrize('text, size', [
    ('20G', 20 * GIB), ('512M', 512 * 1024 ** 2), ('1T', 1024 * GIB), ('4K', 4096), ('1048576', 1048576),
    ('1.5G', int(1.5 * GIB)), (' 8G ', 8 * GIB),
])
def test_parse_size_reads_pve_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize('text', ['', 'G', '20g', '20GB', '+2G', '-1G', '2 G', None])
def test_parse_size_refuses_what_pve_refuses(text):
    with pytest.raises(ValueError, match='invalid size'):
        parse_size(text)


@pytest.mark.parametrize('request_, size', [
    ('+2G', 22 * GIB), ('+512M', 20 * GIB + 512 * 1024 ** 2), ('30G', 30 * GIB), ('10G', 10 * GIB),
    ('+0', 20 * GIB), (str(21 * GIB), 21 * GIB),
])
def test_resized_is_relative_with_a_plus_and_absolute_without(request_, size):
    assert resized(20 * GIB, request_) == size


@pytest.mark.parametrize('request_', ['', '++1G', '-1G', '1X'])
def test_resized_refuses_a_malformed_request(request_):
    with pytest.raises(ValueError):
        resized(GIB, request_)


def test_drive_size_reads_the_size_option():
    assert drive_size('local-lvm:vm-100-disk-0,iothread=1,size=32G') == 32 * GIB
    assert drive_size('local:iso/talos.iso,media=cdrom') == 0
    assert drive_size('local-lvm:vm-100-disk-0,size=junk') == 0


def test_a_store_that_is_not_shared_keeps_files_volumes_and_space_per_node():
    pve = LabPve()
    pve.add_node('pve2')
    pve.local_storages('local')
    store = pve.storages['local']
    assert isinstance(store, NodeLocalStore) and store['type'] == 'dir'
    with pve.on_node('pve1'):
        pve.store_file('local', 'a.iso', 1024)
        assert 'iso/a.iso' in pve._volumes('local')
    with pve.on_node('pve2'):
        assert pve._volumes('local') == {}
        assert store['avail'] == 50 * 1024 ** 3
    with pve.on_node('pve1'):
        assert store['avail'] == 50 * 1024 ** 3 - 1024
    with pytest.raises(RuntimeError, match='not shared'):
        store.get('volumes')
    # storage.cfg shows the options only, and a copy (keep_initial, reset) keeps each node's part.
    assert 'volumes' not in pve.storage_config('local') and 'avail' not in pve.storage_config('local')
    copied = copy.deepcopy(store)
    with pve.on_node('pve1'):
        assert 'iso/a.iso' in copied['volumes']


def test_a_shared_store_stays_one():
    pve = LabPve()
    pve.storages['nfs'] = {'type': 'nfs', 'shared': 1, 'files': set(), 'content': 'iso'}
    pve.local_storages('nfs')
    assert not isinstance(pve.storages['nfs'], NodeLocalStore)


@pytest.mark.parametrize('text, mapping', [
    ('local-lvm', ({}, 'local-lvm', False)),
    ('1', ({}, None, True)),
    ('local-lvm:fast,ceph:slow', ({'local-lvm': 'fast', 'ceph': 'slow'}, None, False)),
    ('local-lvm:fast,other', ({'local-lvm': 'fast'}, 'other', False)),
])
def test_storage_map_reads_targetstorage_as_pve_does(text, mapping):
    assert storage_map(text) == mapping


@pytest.mark.parametrize('name, owner', [
    ('vm-101-disk-0', (101, None)), ('base-9000-disk-0', (9000, None)),
    ('base-9000-disk-0/vm-101-disk-0', (101, 'base-9000-disk-0')), ('101/vm-101-disk-0.qcow2', (101, None)),
    ('iso/talos.iso', (None, None)),
])
def test_volume_owner_names_the_vm_and_the_base_of_a_linked_clone(name, owner):
    assert volume_owner(name) == owner
