"""A Talos node's links and addresses from machine.network.interfaces, as Talos sets them up."""

from castle_lab.talos import network

MAC = 'bc:24:11:00:00:01'
LEASE = '127.0.9.101'


def config(*devices, machine_type='controlplane'):
    return {'machine': {'type': machine_type, 'network': {'interfaces': list(devices)}}}


def test_the_nic_is_ens18_with_the_vms_mac():
    links = network.links(MAC.upper())
    assert list(links) == ['lo', 'ens18']
    assert links['ens18']['hardwareAddr'] == links['ens18']['permanentAddr'] == MAC
    assert links['ens18']['driver'] == 'virtio_net' and links['ens18']['physical'] is True


def test_a_device_naming_eth0_configures_nothing():
    named = config({'interface': 'eth0', 'addresses': ['10.0.40.11/24'], 'vip': {'ip': '10.0.40.10'}})
    assert network.addresses(named, MAC, LEASE) == [('lo', '127.0.0.1/8'), ('ens18', LEASE + '/24')]
    assert network.configured_vip(named, MAC) is None


def test_a_device_selected_by_mac_gets_its_address_and_vip():
    selected = config({'deviceSelector': {'hardwareAddr': MAC}, 'addresses': ['10.0.40.11/24'],
                       'vip': {'ip': '10.0.40.10'}})
    assert network.configured_vip(selected, MAC) == '10.0.40.10'
    # Configured without dhcp: true, the link keeps its static address only.
    assert network.addresses(selected, MAC, LEASE, vip='10.0.40.10') == [
        ('lo', '127.0.0.1/8'), ('ens18', '10.0.40.11/24'), ('ens18', '10.0.40.10/32')]
    dhcp = config({'interface': 'ens18', 'dhcp': True, 'addresses': ['10.0.40.12']})
    assert network.addresses(dhcp, MAC, LEASE) == [
        ('lo', '127.0.0.1/8'), ('ens18', '10.0.40.12/32'), ('ens18', LEASE + '/24')]


def test_selectors_match_every_field_with_globs():
    nic = network.links(MAC)['ens18']
    assert network.selects({'hardwareAddr': 'bc:24:11:*'}, nic)
    assert network.selects({'busPath': '0000:00:*', 'driver': 'virtio_net', 'physical': True}, nic)
    assert not network.selects({'hardwareAddr': MAC, 'driver': 'e1000'}, nic)
    assert not network.selects({'physical': False}, nic)
    assert not network.selects({}, nic)
    ignored = config({'deviceSelector': {'hardwareAddr': MAC}, 'ignore': True, 'addresses': ['10.0.40.11/24']})
    assert network.addresses(ignored, MAC, LEASE)[-1] == ('ens18', LEASE + '/24')


def test_address_status_shape():
    assert network.address_status('ens18', '10.0.40.11/24', MAC) == {
        'address': '10.0.40.11/24', 'local': '10.0.40.11', 'broadcast': '10.0.40.255', 'anycast': '',
        'multicast': '', 'linkIndex': 2, 'linkName': 'ens18', 'family': 'inet4', 'scope': 'global',
        'flags': 'permanent'}


def test_the_guest_agent_reports_the_nic_as_talos_names_it():
    from castle_lab.talos.proxmox_hook import agent_interfaces

    class Node:
        mac = MAC

        def network_addresses(self):
            return network.addresses(config({'deviceSelector': {'hardwareAddr': MAC}, 'dhcp': True}), MAC, LEASE)
    reported = agent_interfaces(Node())
    assert [i['name'] for i in reported] == ['lo', 'ens18']
    assert reported[1] == {'name': 'ens18', 'hardware-address': MAC, 'ip-addresses': [
        {'ip-address': LEASE, 'prefix': 24, 'ip-address-type': 'ipv4'}]}
