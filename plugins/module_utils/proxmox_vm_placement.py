# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where a Proxmox VE VM goes: the template a clone is made from, whether the clone can go straight to its node
or is made on the template's node and migrated offline, and the storages it needs. PRIVATE to the collection."""

import re

from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox import ProxmoxError
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_spec import storages_needed

# Config keys of the drives qemu-server checks before a clone to another node (foreach_volume).
DRIVE_KEY = re.compile(r'^(?:ide|sata|scsi|virtio)\d+$|^efidisk0$|^tpmstate0$')


def source_of_clone(vms, wanted):
    """The one template (or VM) named or numbered `wanted`."""
    matches = [vm for vm in vms if vm.get('name') == wanted or str(vm['vmid']) == wanted]
    if len(matches) != 1:
        raise ProxmoxError('clone: {0} {1!r}'.format(
            'no template or VM named' if not matches else 'more than one VM is named', wanted))
    return matches[0]


def check_storages(client, params, node):
    """Refuse unknown storages before anything is created, naming what the node has."""
    needed = storages_needed(params)
    if not needed:
        return
    available = set(s['storage'] for s in client.get('nodes/{0}/storage'.format(node)))
    missing = sorted(needed - available)
    if missing:
        raise ProxmoxError('storage {0} does not exist on node {1} (it has: {2})'.format(
            ', '.join(repr(m) for m in missing), node, ', '.join(sorted(available))))


def clone_route(client, params, source, node):
    """How a clone of `source` reaches `node`: ('here', []) on the template's node; ('target', []) straight
    there, when every disk and CD-ROM image of the template (and the target storage) is on shared storage;
    else ('migrate', storages that are not shared): qemu-server refuses a clone to another node of a VM on
    local storage, so it is cloned on the template's node and migrated offline."""
    if source['node'] == node:
        return 'here', []
    storages = client.get('nodes/{0}/storage'.format(source['node']))
    shared = set(s['storage'] for s in storages if s.get('shared'))
    config = client.get('nodes/{node}/qemu/{vmid}/config'.format(**source))
    local = set()
    for key, value in config.items():
        volume = str(value).split(',', maxsplit=1)[0]
        if DRIVE_KEY.match(key) and ':' in volume and volume.split(':')[0] not in shared:
            local.add(volume.split(':')[0])
    if params['full'] and params['target_storage'] and params['target_storage'] not in shared:
        local.add(params['target_storage'])
    if not local:
        return 'target', []
    if not params['full']:
        raise ProxmoxError(
            'a linked clone of {0} cannot be placed on node {1}: the template is on node {2} and storage {3} '
            'is not shared, and a linked clone cannot migrate; use full: true, shared storage, or a template '
            'on node {1}'.format(source.get('name') or source['vmid'], node, source['node'], ', '.join(sorted(local))))
    return 'migrate', sorted(local)


def migrate(client, vm, node, target_storage, timeout):
    """Migrate the stopped VM offline to `node`, its local disks with it (to target_storage when given)."""
    options = {'target': node}
    if target_storage:
        options['targetstorage'] = target_storage
    client.run_task(vm['node'], 'post', 'nodes/{node}/qemu/{vmid}/migrate'.format(**vm),
                    'migration of VM {0} from node {1} to {2}'.format(vm['vmid'], vm['node'], node), timeout, options)
    return dict(vm, node=node)
