#!/usr/bin/env python3
"""Parse time of the fleet inventory for generated fleets of 1,000 and 10,000 machines; then, against a lab with
1,000 VMs and every API request slowed by an injected latency (10 ms), the live Proxmox VE source's requests and
time beside community.proxmox.proxmox's, with and without want_facts.

Each figure is the wall time of `ansible-inventory --list` (the best of --runs), which includes ansible's own
start-up, printed beside that start-up alone (an empty host list), the time beyond it, the goal, and the fleet
model's own validation and rule check in this process. Requests are counted, and the latency injected, through
the lab's control API (`POST /time-scale` 1, `POST /network` latency). The machine's load is printed at the
start and at the end: on a shared machine the CPU figures are the steadier.

Runs its own lab (.lab/bench-fleet on 127.0.35.x, proxmox only) so it never touches another.
Usage: bench/inventory_scale.py [--sizes 1000,10000] [--vms 1000] [--runs 3] [--latency-ms 10] [--no-profile]
"""

import argparse
import json
import os
import pathlib
import resource
import shutil
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
# Seconds beyond ansible's own start-up the issue sets for `ansible-inventory --list`, by fleet size.
GOALS = {1000: 0.3, 10000: 2.0}
# How many times faster than community.proxmox.proxmox with want_facts the live source should be.
PEER_GOAL = 10


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


def load():
    return 'load average {0:.2f} {1:.2f} {2:.2f} ({3} CPUs)'.format(*os.getloadavg(), os.cpu_count())


def parse_figures(sizes, runs, directory):
    start_wall, start_cpu = timed(['ansible-inventory', '-i', 'localhost,', '--list'], LAB, runs)
    print('ansible-inventory start-up alone (-i localhost,): {0:.2f}s wall, {1:.2f}s CPU'.format(start_wall, start_cpu))
    for size in sizes:
        fleet = generated(size)
        path = pathlib.Path(directory) / 'scale-{0}.fleet.yml'.format(size)
        path.write_text(yaml.safe_dump({'plugin': 'ephemeral.castle.fleet', 'fleet': fleet}, sort_keys=False))
        began = time.monotonic()
        checked = fleet_schema.validate(fleet, str(path))
        violations = fleet_rules.check(checked)
        model = time.monotonic() - began
        wall, cpu = timed(['ansible-inventory', '-i', str(path), '--list'], LAB, runs)
        goal = ', goal {0:.1f}s'.format(GOALS[size]) if size in GOALS else ''
        print('{0:>6} machines ({1:>6} hosts, {2:>6} workloads): ansible-inventory --list {3:6.2f}s wall, '
              '{4:6.2f}s CPU; beyond start-up {5:5.2f}s wall, {6:5.2f}s CPU{7}; validate + check in process '
              '{8:5.2f}s ({9} violations)'.format(size, size + 3, len(fleet['workloads']), wall, cpu, wall - start_wall,
                                                  cpu - start_cpu, goal, model, len(violations)))


# Where the time of `ansible-inventory --list` goes, as (label, frame of the stack): the fleet plugin's parse and
# what ansible does inside it (every set_variable copies and tags its value), then ansible-inventory's own host
# variables and JSON output, which no plugin changes for a given listing.
PHASES = (('fleet plugin parse', 'InventoryModule.parse (fleet.py:'),
          ('  reading the YAML (libyaml)', 'get_single_data ('),
          ('  ansible set_variable', '_InventoryDataWrapper.set_variable ('),
          ('  ansible add_host/add_child', 'InventoryData.add_'),
          ('ansible-inventory host variables', 'InventoryCLI.json_inventory ('),
          ('ansible-inventory JSON output', 'InventoryCLI.dump ('))


def profile_figures(size, directory):
    """py-spy's samples of one `ansible-inventory --list` of the generated fleet, summed by phase (a sampling
    profiler: it does not slow the code it samples, so the shares hold without it)."""
    spy = shutil.which('py-spy', path=LAB['PATH'])
    if not spy:
        print('profile skipped: py-spy is not installed (pip install py-spy)')
        return
    path, out = pathlib.Path(directory) / 'scale-{0}.fleet.yml'.format(size), pathlib.Path(directory) / 'samples'
    run([spy, 'record', '--rate', '200', '--format', 'raw', '--output', str(out), '--', sys.executable,
         shutil.which('ansible-inventory', path=LAB['PATH']), '-i', str(path), '--list'], LAB)
    samples = [line.rsplit(' ', 1) for line in out.read_text().splitlines() if line.strip()]
    total = sum(int(count) for _stack, count in samples)
    print('py-spy profile of {0} machines ({1} samples at 200 Hz), share of the run:'.format(size, total))
    plugin, shown = PHASES[0][1], 0.0
    for label, frame in PHASES:
        share = sum(int(count) for stack, count in samples
                    if frame in stack and (plugin in stack or not label.startswith(' '))) / total
        shown += 0 if label.startswith(' ') else share
        print('  {0:<36} {1:4.0%}'.format(label, share))
    print('  {0:<36} {1:4.0%}'.format('start-up and the rest', 1 - shown))


def live_figures(vms, runs, latency, directory):
    run(['castle-lab', 'up', 'proxmox'], LAB)
    env = client_env(LAB, 'proxmox')
    control = ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL'])
    control.reset()
    made = control.create_vms(vms, prefix='fleet', running=False)
    control.create_vms(vms // 2, prefix='other', running=True)
    # Latency is in PVE seconds, turned into real ones by the time scale (reads start no task it would slow).
    control.time_scale(1.0)
    control.network(latency=latency)
    print('lab: {0} VMs in the fleet (vmids {1}-{2}) and {3} others, {4} in all; {5:.0f} ms added to every API '
          'request'.format(vms, made['first_vmid'], made['last_vmid'], vms // 2, len(control.vms()), latency * 1000))
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
    peer_env = dict(env, PROXMOX_USER=user, PROXMOX_TOKEN_ID=token)

    def peer(want_facts):
        path = pathlib.Path(directory) / 'facts-{0}.proxmox.yml'.format(str(want_facts).lower())
        path.write_text(yaml.safe_dump({
            'plugin': 'community.proxmox.proxmox', 'url': 'https://{0}:8006'.format(env['PROXMOX_HOST']),
            'validate_certs': True, 'want_facts': want_facts}))
        return path

    def measure(label, argv, env_, times):
        """The best wall and CPU of `times` runs, and the requests of the last."""
        results = []
        for _ in range(times):
            control.reset_requests()
            results.append(timed(argv, env_, 1) + (control.requests()['count'],))
        wall, cpu = min(r[0] for r in results), min(r[1] for r in results)
        print('{0:<48} {1:5d} requests, {2:6.2f}s wall, {3:6.2f}s CPU'.format(label, results[-1][2], wall, cpu))
        return wall

    ours = measure('ephemeral.castle.fleet (live, cache flushed)',
                   ['ansible-inventory', '-i', str(fleet_file), '--list', '--flush-cache'], env, runs)
    listed = subprocess.run(['ansible-inventory', '-i', str(fleet_file), '--list'], env=env, cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    power = json.loads(listed)['_meta']['hostvars']['fleet-1'].get('fleet_power')
    if power != {'__ansible_unsafe': 'stopped'}:
        sys.exit('the live source did not read the lab (fleet-1 power: {0!r})'.format(power))
    measure('ephemeral.castle.fleet (live, from the cache)',
            ['ansible-inventory', '-i', str(fleet_file), '--list'], env, runs)
    measure('community.proxmox.proxmox (want_facts: false)',
            ['ansible-inventory', '-i', str(peer(False)), '--list'], peer_env, runs)
    # One run: with facts it asks for every VM's config, status and snapshots, and takes minutes.
    facts = measure('community.proxmox.proxmox (want_facts: true)',
                    ['ansible-inventory', '-i', str(peer(True)), '--list'], peer_env, 1)
    print('live source (cache flushed) {0:.1f}x faster than community.proxmox.proxmox with want_facts '
          '(goal: at least {1}x)'.format(facts / ours, PEER_GOAL))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--sizes', default='1000,10000')
    parser.add_argument('--vms', type=int, default=1000)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--profile', action=argparse.BooleanOptionalAction, default=True,
                        help='profile the largest size with py-spy and print where its time goes')
    parser.add_argument('--latency-ms', type=float, default=10.0, help='added to every Proxmox VE API request')
    args = parser.parse_args()
    print(load())
    with tempfile.TemporaryDirectory() as directory:
        sizes = [int(n) for n in args.sizes.split(',') if n]
        parse_figures(sizes, args.runs, directory)
        if args.profile and sizes:
            profile_figures(max(sizes), directory)
        if args.vms:
            try:
                live_figures(args.vms, args.runs, args.latency_ms / 1000, directory)
            finally:
                run(['castle-lab', 'down'], LAB)
    print(load())


if __name__ == '__main__':
    main()
