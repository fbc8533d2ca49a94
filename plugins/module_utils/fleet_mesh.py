# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet's mesh: each tunnel that has its ports, as the supervised unit the fleet_tunnels role runs on its
source machine (`ssh -N -L` or `-R` through the sshd of the machine it ends at), and what each machine of the fleet
runs or trusts for it. Pure functions of a validated fleet. PRIVATE to the collection."""

UNIT_PREFIX = 'castle-tunnel-'
# Above this many persistent tunnel units on one machine, a WireGuard mesh is the better tool.
UNIT_THRESHOLD = 5
WILDCARDS = ('', '*', '0.0.0.0', '::')
# Machines in these states run nothing: they are not built yet, or gone.
IDLE_STATES = ('planned', 'wiped')


def _hostport(address, port):
    return '{0}:{1}'.format('[{0}]'.format(address) if ':' in address else address, port)


def actor_of(tunnel):
    return tunnel.get('actor') or tunnel['from']


def managed(tunnel):
    """Whether a tunnel has a unit: both its ports are given."""
    return tunnel.get('local_port') is not None and tunnel.get('remote_port') is not None


def tunnel_unit(tunnel, machines):
    """One tunnel as its unit: where it listens, where its traffic goes, the ssh forwarding argument and the
    key option that allows exactly that forwarding on the sshd it ends at."""
    end = tunnel.get('via') or tunnel['to']
    local = _hostport(tunnel['local_address'], tunnel['local_port'])
    remote = _hostport(tunnel['remote_address'], tunnel['remote_port'])
    if tunnel['direction'] == 'forward':
        listen = {'machine': tunnel['from'], 'address': tunnel['local_address'], 'port': tunnel['local_port']}
        target = {'machine': end, 'address': tunnel['remote_address'], 'port': tunnel['remote_port']}
        forward, permit = ['-L', '{0}:{1}'.format(local, remote)], 'permitopen="{0}"'.format(remote)
    else:
        listen = {'machine': end, 'address': tunnel['remote_address'], 'port': tunnel['remote_port']}
        target = {'machine': tunnel['from'], 'address': tunnel['local_address'], 'port': tunnel['local_port']}
        forward, permit = ['-R', '{0}:{1}'.format(remote, local)], 'permitlisten="{0}"'.format(remote)
    actor = actor_of(tunnel)
    return {'name': tunnel['name'], 'unit': UNIT_PREFIX + tunnel['name'] + '.service', 'from': tunnel['from'],
            'to': tunnel['to'], 'via': end, 'ssh_host': machines[end].get('address') or end,
            'ssh_port': tunnel['ssh_port'], 'direction': tunnel['direction'], 'actor': actor,
            'user': 'castle-' + actor, 'forward': forward, 'permit': permit, 'listen': listen, 'target': target,
            'critical': tunnel['critical'], 'workload': tunnel.get('workload'), 'check_path': tunnel['check_path'],
            'check_expect': tunnel.get('check_expect')}


def tunnel_units(fleet):
    """Every tunnel that has a unit, expanded, by name."""
    machines = {m['name']: m for m in fleet['machines']}
    return [tunnel_unit(t, machines) for t in sorted(fleet['tunnels'], key=lambda t: t['name']) if managed(t)]


def clashes(units):
    """Pairs of tunnels listening on the same port of the same machine (the same address, or either on all)."""
    found = []
    for i, one in enumerate(units):
        for other in units[i + 1:]:
            a, b = one['listen'], other['listen']
            if a['machine'] == b['machine'] and a['port'] == b['port'] and (
                    a['address'] == b['address'] or a['address'] in WILDCARDS or b['address'] in WILDCARDS):
                found.append((one, other))
    return found


def plan(fleet):
    """What each machine of the fleet runs for the mesh: its tunnel units and their actors (as a source), the
    principals its sshd accepts with the forwarding each may do (as a tunnel's end). Every machine that is not
    planned or wiped has an entry, so one whose tunnels are gone has its units removed."""
    units = tunnel_units(fleet)
    machines = {m['name']: {'tunnels': [], 'actors': [], 'principals': [], 'address': m.get('address'),
                            'role': m['role']}
                for m in fleet['machines'] if m['state'] not in IDLE_STATES}
    permits = {}
    for unit in units:
        source = machines.get(unit['from'])
        if source is not None:
            source['tunnels'].append(unit)
            if unit['actor'] not in source['actors']:
                source['actors'].append(unit['actor'])
        permits.setdefault(unit['via'], {}).setdefault(unit['actor'], []).append(unit['permit'])
    for name, actors in permits.items():
        if name in machines:
            # One line per principal, as in authorized_keys: nothing allowed but the forwarding its tunnels need.
            machines[name]['principals'] = ['restrict,port-forwarding,{0} {1}'.format(','.join(sorted(set(p))), actor)
                                            for actor, p in sorted(actors.items())]
    for entry in machines.values():
        entry['actors'].sort()
    return {'machines': machines, 'tunnels': units,
            'unmanaged': sorted(t['name'] for t in fleet['tunnels'] if not managed(t)),
            'sources': sorted(n for n, m in machines.items() if m['tunnels']),
            'targets': sorted(n for n, m in machines.items() if m['principals'])}
