"""Running the collection's Proxmox modules ad hoc, and reading the server back with proxmoxer."""

from harness import run_module

from conftest import find


def server_config(pve, name):
    (vm,) = find(pve, name)
    return vm, pve.nodes(vm['node']).qemu(vm['vmid']).config.get()


def module(lab, env, name_, check=False, diff=False, module_name='proxmox_vm', **args):
    """Run a Proxmox module ad hoc on the lab's controller for the VM `name_` (None: no name), with `env`."""
    if name_ is not None:
        args.setdefault('name', name_)
    return run_module(env, module_name, check=check, diff=diff, **args)


CLONE = dict(node='pve1', clone='talos-template', cores=2, memory=2048, serial=True, tags=['talos', 'it'],
             disks=[{'slot': 'scsi0', 'size': '20G', 'discard': True}],
             networks=[{'slot': 'net0', 'bridge': 'vmbr0', 'vlan': 40}])


def clone_with(**changes):
    return {**CLONE, **changes}
