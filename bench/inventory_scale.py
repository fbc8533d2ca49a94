#!/usr/bin/env python3
"""Parse time of the fleet inventory for generated fleets of 100, 1,000 and 10,000 machines; then, against a
lab with 1,000 VMs, the live Proxmox VE source's requests and time beside community.proxmox.proxmox's.

Each figure is the wall time of `ansible-inventory --list` (the best of --runs), which includes ansible's own
start-up, printed beside that start-up alone (an empty host list) and the fleet model's own validation and
rule check in this process. Requests are counted by the lab's control API.

Runs its own lab (.lab/bench-fleet on 127.0.35.x, proxmox only) so it never touches another.
Usage: bench/inventory_scale.py [--sizes 100,1000,10000] [--vms 1000] [--runs 3]
"""

import argparse
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import yaml
from benchlab import REPO, client_env, lab_environ, run
from castle_lab.control import ProxmoxControl

sys.path.insert(0, str(REPO / '.collections'))
from ansible_collections.ephemeral.castle.plugins.module_utils import fleet_rules, fleet_schema  # noqa: E402

LAB = lab_environ('bench-fleet', '127.0.35')
ROLES = ('production', 'production', 'production', 'experimental', 'frozen', 'workstation')


def generated(size):
    """A fleet of `size` machines, one workload per machine moving off every frozen one, a tunnel per ten."""
    machines = [{'name': 'm{0:05d}'.format(i), 'address': '10.{0}.{1}.{2}'.format(i // 65536, i // 256 % 256, i % 256),
                 'role': ROLES[i % len(ROLES)], 'labels': {'rack': 'r{0}'.format(i % 40)}} for i in range(size)]
    workloads = []
    for i, machine in enumerate(machines):
        target = machine['name'] if machine['role'] != 'frozen' else machines[i - 1]['name']
        workloads.append({'name': 'w{0:05d}'.format(i), 'current_host': machine['name'], 'target_host': target,
                          'owner': 'team-{0}'.format(i % 12), 'wave': 1 + i % 3, 'stateful': i % 4 == 0})
    tunnels = [{'name': 't{0:05d}'.format(i), 'from': machines[i]['name'], 'to': machines[(i + 1) % size]['name'],
                'direction': 'forward', 'critical': False} for i in range(0, size, 10)]
    nodes = [{'name': 'k-cp-{0}'.format(i), 'role': 'controlplane'} for i in (1, 2, 3)]
    return {'machines': machines, 'workloads': workloads, 'tunnels': tunnels,
            'clusters': [{'name': 'castle', 'nodes': nodes}]}


def cpu_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv, env, runs):
    """(wall, cpu) seconds of the best of `runs` runs of the command; on a shared machine cpu is the steadier."""
    best = None
    for _ in range(runs):
        began, cpu = time.monotonic(), cpu_of_children()
        proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False)
        took = (time.monotonic() - began, cpu_of_children() - cpu)
        if proc.returncode != 0:
            sys.exit('{0} failed:\n{1}'.format(' '.join(argv), proc.stderr[-3000:]))
        best = took if best is None else min(best, took)
    return best


def parse_figures(sizes, runs, directory):
    print('ansible-inventory start-up alone (-i localhost,): {0:.2f}s wall, {1:.2f}s CPU'.format(
        *timed(['ansible-inventory', '-i', 'localhost,', '--list'], LAB, runs)))
    for size in sizes:
        fleet = generated(size)
        path = pathlib.Path(directory) / 'scale-{0}.fleet.yml'.format(size)
        path.write_text(yaml.safe_dump({'plugin': 'ephemeral.castle.fleet', 'fleet': fleet}, sort_keys=False))
        began = time.monotonic()
        checked = fleet_schema.validate(fleet, str(path))
        violations = fleet_rules.check(checked)
        model = time.monotonic() - began
        wall, cpu = timed(['ansible-inventory', '-i', str(path), '--list'], LAB, runs)
        print('{0:>6} machines ({1:>6} hosts, {2:>6} workloads): ansible-inventory --list {3:6.2f}s wall, '
              '{4:6.2f}s CPU; validate + check in process {5:5.2f}s ({6} violations)'.format(
                  size, size + 3, len(fleet['workloads']), wall, cpu, model, len(violations)))


def live_figures(vms, runs, directory):
    run(['castle-lab', 'up', 'proxmox'], LAB)
    env = client_env(LAB, 'proxmox')
    control = ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL'])
    control.reset()
    made = control.create_vms(vms, prefix='fleet', running=False)
    control.create_vms(vms // 2, prefix='other', running=True)
    print('lab: {0} VMs in the fleet (vmids {1}-{2}) and {3} others, {4} in all'.format(
        vms, made['first_vmid'], made['last_vmid'], vms // 2, len(control.vms())))
    nodes = [{'name': 'fleet-{0}'.format(i + 1), 'role': 'controlplane' if i < 3 else 'worker',
              'address': '10.20.{0}.{1}'.format(i // 256, i % 256)} for i in range(vms)]
    cluster = {'name': 'castle', 'nodes': nodes, 'proxmox': {
        'api_host': env['PROXMOX_HOST'], 'api_token_id': env['PROXMOX_TOKEN_ID'], 'ca_path': env['PROXMOX_CA'],
        'api_token_secret': "{{ lookup('ansible.builtin.env', 'PROXMOX_TOKEN_SECRET') }}"}}
    fleet_file = pathlib.Path(directory) / 'live.fleet.yml'
    cache = pathlib.Path(directory) / 'cache'
    fleet_file.write_text(yaml.safe_dump({
        'plugin': 'ephemeral.castle.fleet', 'cache': True, 'cache_plugin': 'ansible.builtin.jsonfile',
        'cache_connection': str(cache), 'fleet': {'machines': [], 'clusters': [cluster]}}, sort_keys=False))
    user, token = env['PROXMOX_TOKEN_ID'].split('!')
    peer_file = pathlib.Path(directory) / 'bench.proxmox.yml'
    peer_env = dict(env, PROXMOX_USER=user, PROXMOX_TOKEN_ID=token)

    def peer(want_facts):
        peer_file.write_text(yaml.safe_dump({
            'plugin': 'community.proxmox.proxmox', 'url': 'https://{0}:8006'.format(env['PROXMOX_HOST']),
            'validate_certs': True, 'want_facts': want_facts}))
        return peer_file

    def measure(argv, env_):
        control.reset_requests()
        wall, cpu = timed(argv, env_, 1)
        return wall, cpu, control.requests()['count']

    rows = [('ephemeral.castle.fleet (live, cache flushed)',
             ['ansible-inventory', '-i', str(fleet_file), '--list', '--flush-cache'], env),
            ('ephemeral.castle.fleet (live, from the cache)',
             ['ansible-inventory', '-i', str(fleet_file), '--list'], env),
            ('community.proxmox.proxmox (want_facts: false)',
             ['ansible-inventory', '-i', str(peer(False)), '--list'], peer_env)]
    for label, argv, env_ in rows:
        results = [measure(argv, env_) for _ in range(runs)]
        print('{0:<48} {1:5d} requests, {2:6.2f}s wall, {3:6.2f}s CPU'.format(
            label, results[-1][2], min(r[0] for r in results), min(r[1] for r in results)))
    wall, cpu, count = measure(['ansible-inventory', '-i', str(peer(True)), '--list'], peer_env)
    print('{0:<48} {1:5d} requests, {2:6.2f}s wall, {3:6.2f}s CPU'.format(
        'community.proxmox.proxmox (want_facts: true)', count, wall, cpu))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--sizes', default='100,1000,10000')
    parser.add_argument('--vms', type=int, default=1000)
    parser.add_argument('--runs', type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        parse_figures([int(n) for n in args.sizes.split(',')], args.runs, directory)
        try:
            live_figures(args.vms, args.runs, directory)
        finally:
            run(['castle-lab', 'down'], LAB)


if __name__ == '__main__':
    main()
