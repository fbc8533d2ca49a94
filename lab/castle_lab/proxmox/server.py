"""The lab's Proxmox VE: fakepve (with the lab's additions) in this process, with the lab's nodes,
storages, ISO and template, and the control API beside it. `local` and `local-lvm` are each node's own
(the Talos ISO is on every node's `local`, the template's disk on pve1's `local-lvm`); `shared-nfs` is
one storage every node sees. With --talos-state, VMs that boot the
Talos ISO run emulated Talos nodes in this process too (castle_lab.talos.proxmox_hook).

fakepve's model is not thread-safe: everything that changes it, the control API included, runs on
this event loop.
"""

import asyncio

from ..serving import service_parser, stop_event
from ..talos.factory import default_iso
from .control import serve as serve_control
from .fake import LabPve

NODES = ('pve1', 'pve2')
TALOS_ISO = 'talos-v1.11.6-metal-amd64.iso'
TALOS_ISO_SIZE = 104 * 1024 ** 2
TEMPLATE = {'vmid': 9000, 'name': 'talos-template', 'config': {
    'cores': 2, 'sockets': 1, 'memory': 4096, 'cpu': 'x86-64-v2-AES', 'scsihw': 'virtio-scsi-single',
    'scsi0': 'local-lvm:base-9000-disk-0,size=20G', 'net0': 'virtio=BC:24:11:00:90:00,bridge=vmbr0',
    'ostype': 'l26', 'agent': '1', 'serial0': 'socket', 'boot': 'order=scsi0'}}
# A storage all nodes mount, as an NFS export is in PVE: `shared` set, one set of volumes.
SHARED_STORAGE = ('shared-nfs', {'type': 'nfs', 'server': '127.0.0.1', 'export': '/export/pve', 'shared': 1,
                                 'path': '/mnt/pve/shared-nfs', 'content': 'images,iso', 'active': 1,
                                 'files': set(), 'avail': 200 * 1024 ** 3})


def build(token_id, token_secret, host, port, storage_dir=None, ca_file=None):
    pve = LabPve(host=host, port=port, storage_dir=storage_dir, ca_file=ca_file)
    pve.apitokens[token_id] = token_secret
    for node in NODES:
        pve.add_node(node)
    pve.storages[SHARED_STORAGE[0]] = dict(SHARED_STORAGE[1], files=set())
    pve.local_storages('local', 'local-lvm')
    # Beside the stock ISO (no extensions), the Image Factory's ISO with the lab's default extensions.
    factory_iso, factory_iso_data = default_iso()
    for node in NODES:
        with pve.on_node(node):
            pve.store_file('local', TALOS_ISO, TALOS_ISO_SIZE)
            pve.store_file('local', factory_iso, len(factory_iso_data))
            pve.storages['local']['volumes']['iso/' + factory_iso]['data'] = factory_iso_data
    pve.add_vm(TEMPLATE['vmid'], TEMPLATE['name'], node=NODES[0], template=True, config=TEMPLATE['config'])
    pve.keep_initial()
    return pve


async def serve(args):
    with open(args.token_file) as handle:
        secret = handle.read().strip()
    pve = build(args.token_id, secret, args.host, args.port, args.storage_dir, args.ca)
    machines = None
    if args.talos_state:
        from ..talos.proxmox_hook import TalosMachines
        machines = TalosMachines(args.talos_state, args.lab_net)
        machines.install(pve)
    await pve.start(args.cert, args.key)
    control = await serve_control(pve, args.host, args.control_port, machines)
    stopping = stop_event()
    print('proxmox: listening on {0}, control API on http://{1}:{2}'.format(pve.url, args.host, args.control_port),
          flush=True)
    await stopping.wait()
    await control.cleanup()
    if machines is not None:
        await machines.close()
    await pve.stop()


def main():
    parser = service_parser(__doc__, ('--host', '--cert', '--key', '--token-id', '--token-file'), 8006, 8007)
    parser.add_argument('--talos-state', help='where Talos nodes keep their leases and clusters (none: no Talos nodes)')
    parser.add_argument('--storage-dir', help='where files download-url fetches are written (none: in memory)')
    parser.add_argument('--ca', help='the CA download-url trusts for https URLs (none: the system\'s)')
    parser.add_argument('--lab-net', default='127.0.10', help='first three octets of the Talos nodes\' addresses')
    asyncio.run(serve(parser.parse_args()))


if __name__ == '__main__':
    main()
