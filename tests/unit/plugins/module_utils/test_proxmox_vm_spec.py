"""From proxmox_vm options to the smallest PVE config change."""

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import proxmox_vm_spec as spec

TEMPLATE = {
    'name': 'talos-template', 'cores': '2', 'sockets': '1', 'memory': '4096', 'agent': '1',
    'scsi0': 'local-lvm:base-9000-disk-0/vm-101-disk-0,size=20G',
    'net0': 'virtio=BC:24:11:00:90:01,bridge=vmbr0', 'boot': 'order=scsi0', 'tags': 'talos',
}


def options(**kwargs):
    base = dict((k, None) for k in (
        'name', 'cores', 'sockets', 'cpu', 'memory', 'balloon', 'scsihw', 'agent', 'serial', 'tags', 'description',
        'onboot', 'startup', 'protection', 'boot', 'iso', 'disks', 'networks', 'target_storage'))
    base.update(kwargs)
    return base


@pytest.mark.parametrize('text, size', [('20G', 20 * 1024 ** 3), ('512M', 512 * 1024 ** 2), ('1.5T', 1536 * 1024 ** 3),
                                        ('32', 32 * 1024 ** 3), ('100K', 102400)])
def test_sizes_read_as_pve_reads_them(text, size):
    assert spec.parse_size(text) == size


def test_format_size_is_exact_and_short():
    assert spec.format_size(30 * 1024 ** 3) == '30G'
    assert spec.format_size(1536 * 1024 ** 2) == '1536M'
    assert spec.format_size(2 * 1024 ** 4) == '2T'


def test_a_bad_size_names_itself():
    with pytest.raises(spec.SpecError, match="'twenty' is not a size"):
        spec.parse_size('twenty')


def test_nothing_to_do_when_the_vm_matches():
    wanted = options(name='talos-template', cores=2, memory=4096, agent=True, tags=['talos'],
                     disks=[{'slot': 'scsi0', 'size': '20G', 'storage': 'local-lvm', 'discard': None,
                             'iothread': None, 'ssd': None}],
                     networks=[{'slot': 'net0', 'bridge': 'vmbr0', 'vlan': None, 'model': None, 'mac': None,
                                'firewall': None}])
    assert spec.plan_changes(wanted, TEMPLATE) == ({}, [], [])


def test_only_what_differs_is_written():
    wanted = options(cores=4, memory=4096, tags=['cp', 'talos'], serial=True)
    config, deletes, resizes = spec.plan_changes(wanted, TEMPLATE)
    assert config == {'cores': '4', 'tags': 'cp;talos', 'serial0': 'socket'}
    assert deletes == [] and resizes == []


def test_tags_compare_as_a_set():
    assert spec.plan_changes(options(tags=['b', 'a']), dict(TEMPLATE, tags='a;b'))[0] == {}
    assert spec.plan_changes(options(tags=['b', 'a']), dict(TEMPLATE, tags='b,a'))[0] == {}


def test_disk_grows_by_a_resize_and_options_by_the_config_write():
    wanted = options(disks=[{'slot': 'scsi0', 'size': '40G', 'storage': None, 'discard': True, 'iothread': True,
                             'ssd': None}])
    config, deletes, resizes = spec.plan_changes(wanted, TEMPLATE)
    assert resizes == [('scsi0', '40G')]
    assert config == {'scsi0': 'local-lvm:base-9000-disk-0/vm-101-disk-0,size=20G,discard=on,iothread=1'}
    after = spec.apply_plan(TEMPLATE, config, deletes, resizes)
    assert after['scsi0'] == 'local-lvm:base-9000-disk-0/vm-101-disk-0,size=40G,discard=on,iothread=1'


def test_shrinking_a_disk_is_refused_by_name():
    wanted = options(disks=[{'slot': 'scsi0', 'size': '10G', 'storage': None, 'discard': None, 'iothread': None,
                             'ssd': None}])
    with pytest.raises(spec.SpecError, match='scsi0 is 20G; shrinking it to 10G is not possible'):
        spec.plan_changes(wanted, TEMPLATE)


def test_a_disk_on_another_storage_is_not_moved():
    wanted = options(disks=[{'slot': 'scsi0', 'size': '20G', 'storage': 'ceph', 'discard': None, 'iothread': None,
                             'ssd': None}])
    with pytest.raises(spec.SpecError, match='scsi0 is on local-lvm, not ceph'):
        spec.plan_changes(wanted, TEMPLATE)


def test_a_new_disk_is_allocated_in_whole_gib():
    wanted = options(disks=[{'slot': 'scsi1', 'size': '1536M', 'storage': 'local-lvm', 'discard': True,
                             'iothread': None, 'ssd': None}])
    assert spec.plan_changes(wanted, TEMPLATE)[0] == {'scsi1': 'local-lvm:2,discard=on'}


def test_network_keeps_its_mac_unless_one_is_given():
    keep = options(networks=[{'slot': 'net0', 'bridge': 'vmbr1', 'vlan': 40, 'model': None, 'mac': None,
                              'firewall': None}])
    assert spec.plan_changes(keep, TEMPLATE)[0] == {'net0': 'virtio=BC:24:11:00:90:01,bridge=vmbr1,tag=40'}
    fixed = options(networks=[{'slot': 'net0', 'bridge': None, 'vlan': None, 'model': None,
                               'mac': 'bc:24:11:40:00:01', 'firewall': None}])
    assert spec.plan_changes(fixed, TEMPLATE)[0] == {'net0': 'virtio=BC:24:11:40:00:01,bridge=vmbr0'}


def test_serial_console_off_deletes_the_key():
    assert spec.plan_changes(options(serial=False), dict(TEMPLATE, serial0='socket')) == ({}, ['serial0'], [])


def test_startup_compares_by_its_parts():
    current = dict(TEMPLATE, startup='up=30,order=1')
    assert spec.plan_changes(options(startup={'order': 1, 'up': 30, 'down': None}), current)[0] == {}
    assert spec.plan_changes(options(startup={'order': 2, 'up': 30, 'down': None}), current)[0] == {
        'startup': 'order=2,up=30'}


def test_create_config_for_an_iso_boot():
    cfg = spec.create_config(options(
        name='w1', iso='local:iso/talos.iso', boot=['scsi0', 'ide2'], memory=2048, serial=True,
        disks=[{'slot': 'scsi0', 'size': '32G', 'storage': 'local-lvm', 'discard': None, 'iothread': True,
                'ssd': None}],
        networks=[{'slot': 'net0', 'bridge': 'vmbr0', 'vlan': None, 'model': None, 'mac': None, 'firewall': None}]))
    assert cfg == {'name': 'w1', 'memory': '2048', 'ide2': 'local:iso/talos.iso,media=cdrom',
                   'boot': 'order=scsi0;ide2', 'serial0': 'socket', 'scsi0': 'local-lvm:32,iothread=1',
                   'net0': 'virtio,bridge=vmbr0'}


@pytest.mark.parametrize('bad, message', [
    ({'disks': [{'slot': 'disk0', 'size': '1G'}]}, "slot 'disk0' is not a disk slot"),
    ({'networks': [{'slot': 'net0', 'mac': 'nope'}]}, "'nope' is not a MAC address"),
    ({'networks': [{'slot': 'net0', 'vlan': 5000}]}, 'vlan 5000 is outside'),
    ({'memory': 1024, 'balloon': 2048}, 'balloon .2048. cannot exceed memory'),
    ({'disks': [{'slot': 'scsi0', 'size': '1G'}, {'slot': 'scsi0', 'size': '2G'}]}, 'listed twice'),
])
def test_impossible_options_are_refused_before_any_request(bad, message):
    with pytest.raises(spec.SpecError, match=message):
        spec.check_spec(options(**bad))


def test_macs_of_every_network_device():
    assert spec.macs(dict(TEMPLATE, net1='e1000=bc:24:11:00:00:02,bridge=vmbr1')) == {
        'net0': 'BC:24:11:00:90:01', 'net1': 'BC:24:11:00:00:02'}


def test_agent_addresses_leave_out_the_loopback_interface_only():
    from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_guest import agent_ipv4
    eth0 = [{'ip-address': '127.0.50.101', 'ip-address-type': 'ipv4'},
            {'ip-address': 'fe80::1', 'ip-address-type': 'ipv6'}]
    answer = {'result': [
        {'name': 'lo', 'ip-addresses': [{'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4'}]},
        {'name': 'eth0', 'ip-addresses': eth0},
        {'name': 'eth1', 'ip-addresses': [{'ip-address': '10.0.40.7', 'ip-address-type': 'ipv4'}]}]}
    assert agent_ipv4(answer) == ['127.0.50.101', '10.0.40.7']
