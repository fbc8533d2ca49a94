"""A Talos node's links and addresses, as Talos v1.11 sets them up from machine.network.interfaces.

A lab node has one NIC: its VM's net0, a virtio NIC at PCI slot 18, which Talos (predictable interface
names since v1.5) calls `ens18`. A device of the config applies to a link it names (`interface`) or
selects (`deviceSelector`: every given field must match, glob patterns with `*` allowed, `physical`
exactly); a device naming a link that does not exist (`eth0`) applies to nothing. A link no device
applies to runs DHCP, as Talos runs it on unconfigured physical links; a configured link gets its
static `addresses` (an address without a prefix is a /32 or /128) and DHCP only with `dhcp: true`.
The VIP of a control plane device comes up on one control plane node at a time (see Node.holds_vip).
"""

import fnmatch
import ipaddress

NIC = 'ens18'
# What the link reports, for device selectors (`talosctl get links -o yaml` of a Proxmox virtio NIC).
NIC_BUS_PATH = '0000:00:12.0'
NIC_PCI_ID = '1AF4:1000'
NIC_DRIVER = 'virtio_net'
LEASE_PREFIX = 24


def links(mac):
    """LinkStatus specs of the node's links, by name."""
    return {
        'lo': {'index': 1, 'type': 'loopback', 'linkIndex': 0, 'flags': 'UP,LOOPBACK,RUNNING,LOWER_UP',
               'hardwareAddr': '00:00:00:00:00:00', 'permanentAddr': '', 'broadcastAddr': '00:00:00:00:00:00',
               'mtu': 65536, 'queueDisc': 'noqueue', 'operationalState': 'unknown', 'kind': '', 'slaveKind': '',
               'busPath': '', 'pciID': '', 'driver': '', 'physical': False, 'linkState': True},
        NIC: {'index': 2, 'type': 'ether', 'linkIndex': 0, 'flags': 'UP,BROADCAST,RUNNING,MULTICAST,LOWER_UP',
              'hardwareAddr': mac.lower(), 'permanentAddr': mac.lower(), 'broadcastAddr': 'ff:ff:ff:ff:ff:ff',
              'mtu': 1500, 'queueDisc': 'pfifo_fast', 'operationalState': 'up', 'kind': '', 'slaveKind': '',
              'busPath': NIC_BUS_PATH, 'pciID': NIC_PCI_ID, 'driver': NIC_DRIVER, 'physical': True,
              'linkState': True},
    }


def selects(selector, link):
    """Whether a deviceSelector matches a link: all its fields (AND), each a glob but `physical`."""
    if not isinstance(selector, dict) or not any(v not in (None, '') for v in selector.values()):
        return False
    for field, wanted in selector.items():
        if wanted in (None, ''):
            continue
        if field == 'physical':
            if bool(wanted) != link.get('physical'):
                return False
        elif not fnmatch.fnmatchcase(str(link.get(field) or ''), str(wanted)):
            return False
    return True


def devices_for(document, name, link):
    """The config's devices (machine.network.interfaces) that apply to a link."""
    found = []
    for device in (((document or {}).get('machine') or {}).get('network') or {}).get('interfaces') or []:
        if not isinstance(device, dict) or device.get('ignore'):
            continue
        if device.get('interface') == name or (not device.get('interface') and selects(device.get('deviceSelector'), link)):
            found.append(device)
    return found


def _with_prefix(address):
    if '/' in address:
        return str(ipaddress.ip_interface(address))
    ip = ipaddress.ip_address(address)
    return '{0}/{1}'.format(ip, ip.max_prefixlen)


def addresses(document, mac, lease, vip=None):
    """[(link name, CIDR)] the node holds: loopback, the NIC's addresses, and the VIP when it holds it."""
    found = [('lo', '127.0.0.1/8')]
    link = links(mac)[NIC]
    devices = devices_for(document, NIC, link)
    if not devices:
        found.append((NIC, '{0}/{1}'.format(lease, LEASE_PREFIX)))
    else:
        static = [_with_prefix(a) for device in devices for a in device.get('addresses') or []]
        found += [(NIC, cidr) for cidr in static]
        if any(device.get('dhcp') for device in devices) and \
                not any(cidr.split('/')[0] == lease for cidr in static):
            found.append((NIC, '{0}/{1}'.format(lease, LEASE_PREFIX)))
    if vip:
        found.append((NIC, _with_prefix(vip)))
    return found


def configured_vip(document, mac):
    """The shared IP the config puts on an existing link of the node, or None."""
    for device in devices_for(document, NIC, links(mac)[NIC]):
        vip = (device.get('vip') or {}).get('ip')
        if vip:
            return vip
    return None


def address_status(name, cidr, mac):
    """An AddressStatus spec."""
    interface = ipaddress.ip_interface(cidr)
    family = 'inet4' if interface.version == 4 else 'inet6'
    return {'address': cidr, 'local': str(interface.ip) if interface.version == 4 else '',
            'broadcast': str(interface.network.broadcast_address) if interface.version == 4 and
            interface.network.prefixlen < 31 else '',
            'anycast': '', 'multicast': '', 'linkIndex': links(mac)[name]['index'], 'linkName': name,
            'family': family, 'scope': 'host' if name == 'lo' else 'global', 'flags': 'permanent'}
