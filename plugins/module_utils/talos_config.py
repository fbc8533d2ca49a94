# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Machine config patches for `talosctl machineconfig patch`, and a node's own settings. PRIVATE to the collection.

talosctl does the merging (strategic merge with `$patch: delete`, or JSON 6902), so a config is patched here
exactly as Talos patches it. The collection only reads each patch, to name a bad one before talosctl runs, and
hands it over as YAML text. Comparing configs for a diff is in talos_documents.
"""

from ansible_collections.ephemeral.castle.plugins.module_utils.talos_output import TalosError, parse_yaml_docs, require_yaml

try:
    import yaml
except ImportError:
    pass  # require_yaml() names the missing library


# ------------------------------------------------------------------ patches

def patch_text(patch):
    """A patch as YAML text talosctl reads: a mapping (strategic merge), a list of operations (JSON 6902), text
    holding either, or @path of a file holding either. A patch that is neither is refused here, by what it is."""
    require_yaml()
    if isinstance(patch, dict):
        return yaml.safe_dump(patch, default_flow_style=False, sort_keys=False)
    if isinstance(patch, list):
        if not all(isinstance(op, dict) for op in patch):
            raise TalosError('a JSON patch is a list of operations (mappings with op and path)')
        return yaml.safe_dump(patch, default_flow_style=False, sort_keys=False)
    if not isinstance(patch, str):
        raise TalosError('a patch must be a mapping, a list of JSON patch operations or text, not {0}'.format(
            type(patch).__name__))
    text = patch
    if patch.startswith('@'):
        try:
            with open(patch[1:]) as handle:
                text = handle.read()
        except (IOError, OSError) as exc:
            raise TalosError('patch file {0}: {1}'.format(patch[1:], exc))
    docs = parse_yaml_docs(text)
    json_patch = len(docs) == 1 and isinstance(docs[0], list)
    if not docs or not (json_patch or all(isinstance(doc, dict) for doc in docs)):
        raise TalosError('neither a strategic merge patch (YAML mappings) nor a JSON patch (a list of operations)')
    return text


# ------------------------------------------------------------------ a node's own settings

def node_patch(hostname=None, address=None, gateway=None, mac=None, interface=None, install_disk=None,
               install_image=None, vip=None, nameservers=None):
    """The strategic merge patch that makes a generic config one node's: hostname, a static address and
    default route on the node's network device (DHCP on it when the VIP comes without a static address),
    the shared control-plane VIP, nameservers, the install disk and image.

    The device is the one named `interface` when given, else the one with the node's MAC
    (`deviceSelector: {hardwareAddr: mac}`): Talos names links predictably (ens18 for a Proxmox VM's
    first virtio NIC), so a name like eth0 matches nothing unless the operator knows it."""
    machine, network = {}, {}
    if hostname:
        network['hostname'] = hostname
    device = {}
    if address:
        if '/' not in address:
            raise TalosError('address {0!r} needs a prefix length, for example 10.0.0.11/24'.format(address))
        device['addresses'] = [address]
    if gateway:
        device['routes'] = [{'network': '0.0.0.0/0', 'gateway': gateway}]
    if vip:
        device['vip'] = {'ip': vip}
        if not address:
            # A device named in the config takes DHCP only when asked to.
            device['dhcp'] = True
    if device:
        if interface:
            selected = [('interface', interface)]
        elif mac:
            selected = [('deviceSelector', {'hardwareAddr': mac.lower()})]
        else:
            raise TalosError('address, gateway and vip go on a network device: give the node its mac '
                             '(selected by deviceSelector.hardwareAddr) or name its interface')
        network['interfaces'] = [dict(selected + list(device.items()))]
    if nameservers:
        network['nameservers'] = list(nameservers)
    if network:
        machine['network'] = network
    install = {}
    if install_disk:
        install['disk'] = install_disk
    if install_image:
        install['image'] = install_image
    if install:
        machine['install'] = install
    return {'machine': machine} if machine else {}
