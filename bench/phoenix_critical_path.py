#!/usr/bin/env python3
"""Print, under the lab's real timing profile, the wall time of playbooks/bootstrap.yml and of a cluster phoenix
(phoenix.yml -e target=castle) beside the critical path the profile gives (castle_lab.timing.critical_path) and
their ratio (goal: 1.25 or less), phoenix's per-stage breakdown, the slowest tasks with how their loop items
finished (items that end one after another serialise), and the phoenix wall time of 12 nodes against 3 (goal: 1.3
or less).

Each size runs in a lab of its own, made anew (.lab/bench-critical on 127.0.37.x, every service), with the lab's
fleet file rewritten to that many nodes (3 control planes, 1 below 6 nodes; workers with 32 GiB disks, the last
one on pve2, as in the lab's fleet). At the real durations (--scale 1, the default) a size takes about 20
minutes. --scale multiplies every real duration (CASTLE_LAB_TIMING_SCALE) for a quicker look: the lab's own work
does not shrink with it, so the ratio means little below 1; --baseline also runs the default (fast) profile and
prints the time the profile added ((real - fast) / critical path), which depends far less on the scale (the
playbooks' fixed retry delays do not shrink either).
Usage: bench/phoenix_critical_path.py [--nodes 6] [--sizes 3 12] [--scale 1] [--seed 1] [--baseline]
"""

import argparse
import pathlib
import re
import subprocess
import time

import yaml

from benchlab import REPO, client_env, lab_environ, lab_info, run
from castle_lab import timing

LAB = lab_environ('bench-critical', '127.0.37')
LOGS = REPO / '.lab' / 'bench-critical-logs'  # each playbook's output, each line with its second
TEMPLATE_GIB = 20  # the lab template's disk (castle_lab.proxmox.server.TEMPLATE)
WORKER_GIB = 32
TASK = re.compile(r'^(?:TASK|RUNNING HANDLER) \[(.*)\] \*+$')
PLAY = re.compile(r'^PLAY \[(.*)\] \*+$')
ITEM = re.compile(r'^(?:ok|changed|failed|fatal|skipping): \[[^]]+\] => \(item=(.*?)\)')
STAGE = re.compile(r'"((?:S\d [a-z0-9 ]+)|total) ([\d.]+) s"')


def nodes(size):
    """The cluster's nodes: 3 control planes (1 below 6 nodes), workers with bigger disks, the last one on pve2."""
    control = 3 if size >= 6 else 1
    rows = [{'name': 'talos-cp-{0}'.format(i), 'role': 'controlplane', 'mac': 'BC:24:11:CA:57:{0:02X}'.format(i)}
            for i in range(1, control + 1)]
    rows += [{'name': 'talos-w-{0}'.format(i), 'role': 'worker', 'mac': 'BC:24:11:CA:58:{0:02X}'.format(i),
              'disk': '{0}G'.format(WORKER_GIB)} for i in range(1, size - control + 1)]
    rows[-1]['proxmox_node'] = 'pve2'
    return rows


def critical_path(rows, profile):
    """The profile's critical path for these nodes: clones of the template, and on the pve2 node's chain its offline
    migration, which copies the clone's disk before it grows to its size (proxmox_vm_reconcile: clone, migrate,
    then reconcile the config)."""
    chain = [{'name': row['name'], 'role': row['role'], 'gib': TEMPLATE_GIB} for row in rows]
    extra = {row['name']: profile.duration('pve.migrate', gib=TEMPLATE_GIB) for row in rows
             if row.get('proxmox_node') == 'pve2'}
    return timing.critical_path(chain, profile, extra=extra)


def write_fleet(path, rows):
    """The lab's fleet file with the cluster's node list replaced by these rows."""
    text = path.read_text()
    start, end = text.index('      nodes:\n'), text.index('      flux:\n')
    listed = ''.join('        - {0}\n'.format(yaml.safe_dump(row, default_flow_style=True, width=1000).strip())
                     for row in rows)
    path.write_text(text[:start] + '      nodes:\n' + listed + text[end:])


def playbook(argv, env, log):
    """Run a playbook, timing each line of its output as it comes (kept in `log`); (wall seconds,
    [(seconds, line)])."""
    began = time.monotonic()
    lines = []
    with subprocess.Popen(argv, env=dict(env, PYTHONUNBUFFERED='1', ANSIBLE_NOCOLOR='1'), cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append((time.monotonic() - began, line.rstrip('\n')))
    wall = time.monotonic() - began
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / log).write_text(''.join('{0:8.2f} {1}\n'.format(at, line) for at, line in lines))
    if proc.returncode != 0:
        raise SystemExit('{0} failed:\n{1}'.format(' '.join(argv), '\n'.join(line for _t, line in lines[-60:])))
    return wall, lines


def tasks(lines):
    """Each task's (seconds, name, item completion offsets) from the timed output: a task lasts until the next
    task or play header."""
    found = []
    for at, line in lines:
        header = TASK.match(line) or PLAY.match(line)
        if header:
            if found:
                found[-1][0] = at - found[-1][0]
            found.append([at, header.group(1) if TASK.match(line) else None, []])
        elif found and ITEM.match(line):
            found[-1][2].append(at - found[-1][0])
    if found:
        found[-1][0] = lines[-1][0] - found[-1][0]
    return [(secs, name, items) for secs, name, items in found if name]


def stages(lines):
    return dict((name, float(secs)) for _at, line in lines for name, secs in STAGE.findall(line))


def one_size(size, environ, label):
    """A lab of its own with `size` nodes: bootstrap, then phoenix of the cluster. Returns the figures."""
    lab = dict(LAB, **environ)
    subprocess.run(['castle-lab', 'down'], env=lab, capture_output=True, check=False)
    subprocess.run(['rm', '-rf', lab['CASTLE_LAB_DIR']], check=True)
    run(['castle-lab', 'up'], lab)
    try:
        env = client_env(lab)
        inventory = pathlib.Path(lab_info(lab)['inventory_file']).parent
        rows = nodes(size)
        write_fleet(inventory / 'lab.fleet.yml', rows)
        load = open('/proc/loadavg', encoding='ascii').read().split()[:3]
        log = '{0}-{1}-'.format(label, size)
        boot_wall, boot_lines = playbook(['ansible-playbook', '-i', str(inventory), 'playbooks/bootstrap.yml'], env,
                                         log + 'bootstrap.log')
        phoenix_wall, phoenix_lines = playbook(['ansible-playbook', '-i', str(inventory), 'playbooks/phoenix.yml',
                                                '-e', 'target=castle'], env, log + 'phoenix.log')
        load_after = open('/proc/loadavg', encoding='ascii').read().split()[:3]
    finally:
        subprocess.run(['castle-lab', 'down'], env=lab, capture_output=True, check=False)
    print('{0}: {1} nodes, bootstrap {2:.1f}s, phoenix {3:.1f}s (load before {4}, after {5})'.format(
        label, size, boot_wall, phoenix_wall, ' '.join(load), ' '.join(load_after)))
    return {'rows': rows, 'bootstrap': boot_wall, 'phoenix': phoenix_wall, 'stages': stages(phoenix_lines),
            'tasks': {'bootstrap': tasks(boot_lines), 'phoenix': tasks(phoenix_lines)}}


def print_slowest(figures, playbook_name, count):
    print('  slowest tasks of {0} (seconds; items: how long after the task began each loop item finished)'.format(
        playbook_name))
    for secs, name, items in sorted(figures['tasks'][playbook_name], key=lambda task: -task[0])[:count]:
        spread = ' items {0}'.format(' '.join('{0:.1f}'.format(at) for at in items)) if items else ''
        print('  {0:7.1f}  {1}{2}'.format(secs, name[:110], spread))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--nodes', type=int, default=6)
    parser.add_argument('--sizes', type=int, nargs='*', default=[3, 12])
    parser.add_argument('--scale', type=float, default=1.0)
    parser.add_argument('--seed', default='')
    parser.add_argument('--baseline', action='store_true', help='also run the default (fast) profile')
    parser.add_argument('--top', type=int, default=12)
    args = parser.parse_args()
    real = {'CASTLE_LAB_TIMING': 'real', 'CASTLE_LAB_TIMING_SCALE': str(args.scale),
            'CASTLE_LAB_TIMING_SEED': args.seed}
    profile = timing.Timing(dict(real, CASTLE_LAB_TIMING_SEED=''))
    print('real profile, scale {0:g}{1}; load {2}'.format(args.scale, ', seed ' + args.seed if args.seed else '',
                                                          open('/proc/loadavg', encoding='ascii').read().strip()))
    main_run = one_size(args.nodes, real, 'real')
    chain = critical_path(main_run['rows'], profile)
    fast = one_size(args.nodes, {'CASTLE_LAB_TIMING': 'fast'}, 'fast') if args.baseline else None
    print('critical path ({0} nodes, from the profile): {1:.1f}s (control plane up after the bootstrap at {2:.1f}s, '
          'every node Ready at {3:.1f}s, then {4} image pulls: Flux, the foundation charts, the apps)'.format(
              args.nodes, chain.total, chain.bootstrap, chain.nodes_ready, len(timing.CLUSTER_STEPS)))
    for name in ('bootstrap', 'phoenix'):
        line = '{0:9s} wall {1:7.1f}s  critical {2:7.1f}s  ratio {3:.2f} (goal <= 1.25)'.format(
            name, main_run[name], chain.total, main_run[name] / chain.total)
        if fast:
            added = main_run[name] - fast[name]
            line += '; fast profile {0:.1f}s, added by the profile {1:.1f}s = {2:.2f} x critical'.format(
                fast[name], added, added / chain.total)
        print(line)
    print('phoenix stages (s): ' + ', '.join('{0} {1:.1f}'.format(name, secs) for name, secs in
                                            main_run['stages'].items()))
    if fast:
        print('phoenix stages, fast profile (s): ' + ', '.join('{0} {1:.1f}'.format(name, secs) for name, secs in
                                                              fast['stages'].items()))
    print_slowest(main_run, 'bootstrap', args.top)
    print_slowest(main_run, 'phoenix', args.top)
    walls = {}
    for size in args.sizes:
        walls[size] = main_run if size == args.nodes else one_size(size, real, 'real')
    if len(args.sizes) == 2:
        small, big = sorted(args.sizes)
        for name in ('bootstrap', 'phoenix'):
            print('{0} {1} vs {2} nodes: {3:.1f}s / {4:.1f}s = {5:.2f} (goal <= 1.3)'.format(
                name, big, small, walls[big][name], walls[small][name], walls[big][name] / walls[small][name]))
        print_slowest(walls[big], 'phoenix', args.top)
    print('load at the end: ' + open('/proc/loadavg', encoding='ascii').read().strip())


if __name__ == '__main__':
    main()
