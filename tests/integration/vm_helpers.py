"""Running the collection's Proxmox modules ad hoc, and reading the server back with proxmoxer."""

import json
import re

from conftest import find


def server_config(pve, name):
    (vm,) = find(pve, name)
    return vm, pve.nodes(vm['node']).qemu(vm['vmid']).config.get()


class Outcome(object):
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.result = json.loads(proc.stdout[proc.stdout.index('=> ') + 3:])
        self.diff = [line for line in proc.stdout.splitlines()
                     if re.match(r'^[-+] ', line) and not line.startswith(('--- ', '+++ '))]

    @property
    def changed(self):
        return self.result.get('changed')


def play_recap(proc):
    """The controller's PLAY RECAP counters, as strings: {'ok': '13', 'changed': '0', ...}."""
    line = [line for line in proc.stdout.splitlines() if line.startswith('localhost')][-1]
    return dict(part.split('=') for part in line.split(':', 1)[1].split())


def module(lab, env, name_, check=False, diff=False, module_name='proxmox_vm', **args):
    """Run a module ad hoc on the controller, as `ansible localhost -m` would."""
    if name_ is not None:
        args.setdefault('name', name_)
    argv = ['ansible', 'localhost', '-m', 'ephemeral.castle.' + module_name] + (['-a', json.dumps(args)] if args else [])
    argv += ['--check'] if check else []
    argv += ['--diff'] if diff else []
    return Outcome(lab.run(*argv, env=env, check=False))


CLONE = dict(node='pve1', clone='talos-template', cores=2, memory=2048, serial=True, tags=['talos', 'it'],
             disks=[{'slot': 'scsi0', 'size': '20G', 'discard': True}],
             networks=[{'slot': 'net0', 'bridge': 'vmbr0', 'vlan': 40}])


def clone_with(**changes):
    return {**CLONE, **changes}
