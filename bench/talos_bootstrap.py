#!/usr/bin/env python3
"""Print the wall time of playbooks/talos.yml, from no VMs to a healthy Talos cluster, for 3, 6 and 12
nodes (a third of them control-plane nodes, at most 3), and the ratio of 12 to 3 nodes (goal: 1.5 or less).

Runs its own lab (.lab/bench-talos on 127.0.34.x, proxmox and vault) so it never touches another; each
size is a cluster of its own (name, secrets in Vault, VMs), built beside the ones before it.
Usage: bench/talos_bootstrap.py [--sizes 3 6 12]
"""

import argparse
import json
import pathlib
import subprocess
import time

from benchlab import client_env, lab_environ, lab_info, run
from castle_lab.talos.factory import default_iso

LAB = lab_environ('bench-talos', '127.0.34')


def nodes(size):
    control = min(3, max(1, size // 3))
    return ([{'name': 'b{0}-cp-{1}'.format(size, i), 'role': 'controlplane'} for i in range(1, control + 1)]
            + [{'name': 'b{0}-w-{1}'.format(size, i), 'role': 'worker'} for i in range(1, size - control + 1)])


def cluster(size):
    state = pathlib.Path(LAB['CASTLE_LAB_DIR']) / 'talos' / 'bench-{0}'.format(size)
    return {'name': 'bench-{0}'.format(size), 'node': 'pve1', 'template': 'talos-template',
            # The factory ISO of the lab's default extensions: the stock one runs no guest agent.
            'iso': 'local:iso/' + default_iso()[0], 'kubeconfig_path': str(state / 'kubeconfig'),
            'talosconfig_path': str(state / 'talosconfig'), 'nodes': nodes(size)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[3, 6, 12])
    args = parser.parse_args()
    subprocess.run(['castle-lab', 'down'], env=LAB, capture_output=True, check=False)
    subprocess.run(['rm', '-rf', LAB['CASTLE_LAB_DIR']], check=True)
    run(['castle-lab', 'up', 'proxmox', 'vault'], LAB)
    try:
        env = client_env(LAB, 'proxmox', 'vault')
        inventory = lab_info(LAB)['inventory_file']
        times = {}
        for size in args.sizes:
            began = time.monotonic()
            run(['ansible-playbook', '-i', inventory, 'playbooks/talos.yml', '-e',
                 json.dumps({'castle_talos': cluster(size)})], env)
            times[size] = time.monotonic() - began
            ready = run(['kubectl', '--kubeconfig', cluster(size)['kubeconfig_path'], 'get', 'nodes', '--no-headers'],
                        env).count(' Ready ')
            print('{0:2d} nodes: {1:6.1f}s to a healthy cluster ({2} Ready)'.format(size, times[size], ready))
        if 3 in times and 12 in times:
            print('ratio 12/3 nodes: {0:.2f} (goal <= 1.5)'.format(times[12] / times[3]))
    finally:
        subprocess.run(['castle-lab', 'down'], env=LAB, capture_output=True, check=False)


if __name__ == '__main__':
    main()
