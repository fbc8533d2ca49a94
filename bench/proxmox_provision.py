#!/usr/bin/env python3
"""Provision 3, 6 and 12 Talos VMs through the proxmox_vms role against the lab's Proxmox VE,
with task durations scaled like real storage; print wall time, API requests, and the 12/3 ratio.

In the same run, create one VM of the same shape with community.proxmox.proxmox_kvm (clone,
then update, then start: what it takes that module to reach the same VM) and with
ephemeral.castle.proxmox_vm, and re-check both; print the requests each needed.

Runs its own lab (.lab/bench-pve on 127.0.31.x, proxmox only) so it never touches another.
Usage: bench/proxmox_provision.py [--time-scale 0.2] [--sizes 3,6,12]
"""

import argparse
import json
import pathlib
import subprocess
import tempfile
import time

from benchlab import client_env, lab_environ, run
from castle_lab.control import ProxmoxControl

LAB = lab_environ('bench-pve', '127.0.31')

SHAPE = {'clone': 'talos-template', 'full': True, 'cores': 2, 'memory': 4096, 'serial': True, 'agent': True}


def playbook(tasks_or_roles, directory):
    path = pathlib.Path(directory) / 'play-{0}.yml'.format(time.monotonic_ns())
    play = {'name': 'bench', 'hosts': 'localhost', 'gather_facts': False}
    play.update(tasks_or_roles)
    path.write_text(json.dumps([play]))
    return str(path)


def fresh(control, scale):
    """Back to the lab's initial VMs, tasks at the bench's pace, no requests counted."""
    control.reset()
    control.time_scale(scale)
    control.reset_requests()


def role_run(control, scale, env, count, directory):
    vms = [dict(name='bench-{0}-{1}'.format(count, i), node='pve1' if i % 2 == 0 else 'pve2') for i in range(count)]
    book = playbook({'roles': [{'role': 'ephemeral.castle.proxmox_vms', 'vars': {
        'proxmox_vms_list': vms, 'proxmox_vms_defaults': SHAPE, 'proxmox_vms_per_node_limit': 8}}]}, directory)
    fresh(control, scale)
    began = time.monotonic()
    run(['ansible-playbook', book], env)
    wall = time.monotonic() - began
    return wall, control.requests()['count']


def requests_for(control, env, directory, tasks):
    control.reset_requests()
    run(['ansible-playbook', playbook({'tasks': tasks}, directory)], env)
    return control.requests()['count']


def peer_comparison(control, scale, env, directory):
    """Requests to create and to re-check one VM of SHAPE, with each module."""
    conn = {'api_host': env['PROXMOX_HOST'], 'api_user': env['PROXMOX_TOKEN_ID'].split('!')[0],
            'api_token_id': env['PROXMOX_TOKEN_ID'].split('!')[1], 'api_token_secret': env['PROXMOX_TOKEN_SECRET'],
            'ca_path': env['PROXMOX_CA'], 'validate_certs': True}
    kvm = dict(conn, name='bench-kvm', node='pve1', timeout=600)
    fresh(control, scale)
    kvm_create = requests_for(control, env, directory, [
        {'name': 'clone', 'community.proxmox.proxmox_kvm': dict(kvm, clone='talos-template', full=True, newid=200)},
        {'name': 'update', 'community.proxmox.proxmox_kvm': dict(kvm, vmid=200, update=True, cores=SHAPE['cores'],
                                                                  memory=SHAPE['memory'], serial={'serial0': 'socket'},
                                                                  agent='1')},
        {'name': 'start', 'community.proxmox.proxmox_kvm': dict(kvm, vmid=200, state='started')}])
    kvm_recheck = requests_for(control, env, directory, [
        {'name': 'recheck', 'community.proxmox.proxmox_kvm': dict(kvm, vmid=200, state='started')}])
    ours = dict(conn, name='bench-castle', node='pve1', state='started', **SHAPE)
    castle_create = requests_for(control, env, directory, [{'name': 'create', 'ephemeral.castle.proxmox_vm': ours}])
    castle_recheck = requests_for(control, env, directory, [{'name': 'recheck', 'ephemeral.castle.proxmox_vm': ours}])
    iso = 'local:iso/talos-v1.11.6-metal-amd64.iso'
    kvm_iso = dict(conn, name='bench-kvm-iso', node='pve1', cores=2, memory=2048, scsi={'scsi0': 'local-lvm:32'},
                   ide={'ide2': iso + ',media=cdrom'}, net={'net0': 'virtio,bridge=vmbr0'}, boot='order=scsi0;ide2')
    ours_iso = dict(conn, name='bench-castle-iso', node='pve1', cores=2, memory=2048, iso=iso, boot=['scsi0', 'ide2'],
                    disks=[{'slot': 'scsi0', 'storage': 'local-lvm', 'size': '32G'}],
                    networks=[{'slot': 'net0', 'bridge': 'vmbr0'}])
    scratch = [requests_for(control, env, directory, [{'name': 'create', module_name: args}])
               for module_name, args in (('community.proxmox.proxmox_kvm', kvm_iso),
                                         ('community.proxmox.proxmox_kvm', kvm_iso),
                                         ('ephemeral.castle.proxmox_vm', ours_iso),
                                         ('ephemeral.castle.proxmox_vm', ours_iso))]
    return kvm_create, kvm_recheck, castle_create, castle_recheck, scratch


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--time-scale', type=float, default=0.2, help='real seconds per PVE second (default 0.2)')
    parser.add_argument('--sizes', default='3,6,12')
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(',')]
    run(['castle-lab', 'up', 'proxmox'], LAB)
    try:
        env = client_env(LAB, 'proxmox')
        control = ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL'])
        with tempfile.TemporaryDirectory() as directory:
            walls = {}
            print('time scale: {0} real s per PVE s; full clones of the 20G template, started'.format(args.time_scale))
            for count in sizes:
                wall, made = role_run(control, args.time_scale, env, count, directory)
                walls[count] = wall
                print('{0:>3} VMs: wall {1:6.1f}s, {2:4d} API requests, {3:5.1f} per VM'.format(
                    count, wall, made, made / count))
            if 3 in walls and 12 in walls:
                print('wall time ratio 12 VMs / 3 VMs: {0:.2f} (goal <= 1.5)'.format(walls[12] / walls[3]))
            kvm_create, kvm_recheck, castle_create, castle_recheck, scratch = peer_comparison(
                control, args.time_scale, env, directory)
            print('one VM, create (clone + config + start): community.proxmox.proxmox_kvm {0} requests, '
                  'ephemeral.castle.proxmox_vm {1}'.format(kvm_create, castle_create))
            print('one VM, re-check: community.proxmox.proxmox_kvm {0} requests (vmid only), '
                  'ephemeral.castle.proxmox_vm {1} (whole config)'.format(kvm_recheck, castle_recheck))
            print('one VM from the ISO, create / re-check: community.proxmox.proxmox_kvm {0} / {1} requests, '
                  'ephemeral.castle.proxmox_vm {2} / {3}'.format(*scratch))
    finally:
        subprocess.run(['castle-lab', 'down'], env=LAB, capture_output=True, check=False)


if __name__ == '__main__':
    main()
