# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet's rules over a validated fleet: its invariants (fleet_check, each violation with a stable code),
the waves that drain a machine (fleet_drain_plan) and the gates (fleet_gate: may a workload count as
production, may a machine be wiped), each answer with every reason. Pure functions of the fleet (and, for the
gates, of the overlay files and the time given). PRIVATE to the collection."""

import datetime
import os
import re

from ansible_collections.ephemeral.castle.plugins.module_utils.fleet import (
    dependents, place_role, place_state, workloads)
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_mesh import UNIT_THRESHOLD, clashes, tunnel_units
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_schema import STAGES, FleetError, parse_date

# Stable codes of fleet_check, in the order they are checked.
CHECK_CODES = ('workload-no-target', 'workload-no-owner', 'critical-tunnel-on-workstation',
               'workload-targets-frozen', 'wave-before-dependent', 'dependency-cycle', 'tunnel-port-clash',
               'mesh-unit-threshold')
# Codes that warn without failing a check.
WARNING_CODES = ('mesh-unit-threshold',)


def cycles(fleet):
    """Each set of workloads caught in dependency cycles (a strongly connected component of more than one), once,
    as one cycle through it: a list of names starting at its least name, whose last depends on its first."""
    graph = {w['name']: list(w['depends_on']) for w in fleet['workloads']}
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            name, edges = work[-1]
            dep = next(edges, None)
            if dep is not None:
                if dep not in index:
                    index[dep] = low[dep] = len(index)
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(graph[dep])))
                elif dep in on_stack:
                    low[name] = min(low[name], index[dep])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[name])
            if low[name] == index[name]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == name:
                        break
                if len(group) > 1:
                    groups.append(set(group))
    return sorted((_cycle_through(graph, group) for group in groups), key=lambda loop: loop[0])


def _cycle_through(graph, group):
    """A cycle inside a strongly connected group, from its least name back to it (breadth-first, so shortest)."""
    start = min(group)
    came = {start: None}
    queue = [start]
    while queue:
        name = queue.pop(0)
        for dep in sorted(graph[name]):
            if dep == start:
                loop = [name]
                while came[loop[-1]] is not None:
                    loop.append(came[loop[-1]])
                return loop[::-1]
            if dep in group and dep not in came:
                came[dep] = name
                queue.append(dep)
    return sorted(group)


# fleet_check

def _violation(code, message, rows, severity=None):
    return {'code': code, 'message': message, 'rows': rows,
            'severity': severity or ('warning' if code in WARNING_CODES else 'error')}


def _workstation_tunnels(fleet, roles, byname):
    """Each critical tunnel with a workstation at one of its ends (or as the sshd it goes through): an error, or a
    warning while the workload it carries has not reached its target host yet (its wave is not done)."""
    found = []
    for t in fleet['tunnels']:
        ends = [key for key in ('from', 'to', 'via') if t.get(key) and roles.get(t[key]) == 'workstation']
        if not t['critical'] or not ends:
            continue
        carried = byname.get(t.get('workload'))
        pending = carried is not None and carried.get('current_host') != carried.get('target_host')
        if carried is None:
            after = ''
        elif pending:
            after = ' (allowed until workload {0} completes wave {1})'.format(carried['name'], carried['wave'])
        else:
            after = ' after workload {0} completed wave {1}'.format(carried['name'], carried['wave'])
        found.append(_violation(
            'critical-tunnel-on-workstation',
            'critical tunnel {0} {1} workstation {2}{3}; production must run with the workstation off'.format(
                t['name'], ' and '.join({'from': 'starts on', 'to': 'ends on', 'via': 'goes through'}[k] for k in ends),
                ', '.join(sorted({t[k] for k in ends})), after),
            [{'tunnel': t['name'], 'from': t['from'], 'to': t['to'], 'direction': t['direction'],
              'actor': t.get('actor'), 'workload': t.get('workload')}],
            'warning' if pending else 'error'))
    return found


def _mesh(fleet):
    """Tunnels listening on one port of one machine; machines running more tunnel units than a mesh of
    persistent ssh units should carry."""
    units = tunnel_units(fleet)
    found = []
    for one, other in clashes(units):
        where = one['listen']
        found.append(_violation(
            'tunnel-port-clash', 'tunnels {0} and {1} both listen on {2} port {3}'.format(
                one['name'], other['name'], where['machine'], where['port']),
            [{'tunnel': u['name'], 'machine': u['listen']['machine'], 'address': u['listen']['address'],
              'port': u['listen']['port']} for u in (one, other)]))
    per_machine = {}
    for unit in units:
        per_machine.setdefault(unit['from'], []).append(unit['name'])
    for machine, names in sorted(per_machine.items()):
        if len(names) > UNIT_THRESHOLD:
            found.append(_violation(
                'mesh-unit-threshold', 'machine {0} runs {1} tunnel units (more than {2}): consider a WireGuard '
                'mesh'.format(machine, len(names), UNIT_THRESHOLD), [{'machine': machine, 'tunnels': names}]))
    return found


def check(fleet):
    """Every violation of the fleet's invariants, in CHECK_CODES order, each with the rows at fault."""
    found = []
    roles = {m['name']: m['role'] for m in fleet['machines']}
    byname = workloads(fleet)
    for w in fleet['workloads']:
        if not w.get('target_host'):
            found.append(_violation('workload-no-target', 'workload {0} has no target host'.format(w['name']),
                                    [{'workload': w['name']}]))
    for w in fleet['workloads']:
        if not w.get('owner'):
            found.append(_violation('workload-no-owner', 'workload {0} has no owner'.format(w['name']),
                                    [{'workload': w['name']}]))
    found += _workstation_tunnels(fleet, roles, byname)
    for w in fleet['workloads']:
        if w.get('target_host') and roles.get(w['target_host']) == 'frozen':
            found.append(_violation('workload-targets-frozen', 'workload {0} targets frozen machine {1}'.format(
                w['name'], w['target_host']), [{'workload': w['name'], 'target_host': w['target_host']}]))
    for w in fleet['workloads']:
        for dep in w['depends_on']:
            if byname[dep]['wave'] <= w['wave']:
                found.append(_violation(
                    'wave-before-dependent',
                    'workload {0} (wave {1}) moves no later than {2} (wave {3}), which depends on it; a dependency '
                    'moves after every workload that depends on it'.format(dep, byname[dep]['wave'], w['name'],
                                                                           w['wave']),
                    [{'workload': dep, 'wave': byname[dep]['wave']}, {'workload': w['name'], 'wave': w['wave']}]))
    for loop in cycles(fleet):
        found.append(_violation('dependency-cycle', 'dependency cycle: {0}'.format(' -> '.join(loop + loop[:1])),
                                [{'workload': name, 'depends_on': byname[name]['depends_on']} for name in loop]))
    return found + _mesh(fleet)


# fleet_drain_plan

def drain_plan(fleet, machine):
    """The waves of workloads that must leave `machine`, in order, each with what still blocks it."""
    if place_role(fleet, machine) is None:
        raise FleetError('fleet', ['{0!r} is not a machine, cluster or cluster node of the fleet'.format(machine)])
    byname, deps = workloads(fleet), dependents(fleet)
    leaving = [w for w in fleet['workloads'] if w.get('current_host') == machine and w.get('target_host') != machine]
    staying = [w['name'] for w in fleet['workloads'] if w.get('current_host') == machine
               and w.get('target_host') == machine]
    in_cycle = {name for loop in cycles(fleet) for name in loop}
    waves = {}
    for w in leaving:
        waves.setdefault(w['wave'], []).append(w)
    plan = []
    for number in sorted(waves):
        members = sorted(waves[number], key=lambda w: w['name'])
        blocking = []
        for w in members:
            target = w.get('target_host')
            if not target:
                blocking.append({'workload': w['name'], 'reason': 'no target host'})
            elif place_role(fleet, target) in ('frozen', 'workstation'):
                blocking.append({'workload': w['name'], 'reason': 'target {0} is a {1} machine'.format(
                    target, place_role(fleet, target))})
            elif place_state(fleet, target) in ('draining', 'drained', 'wiped'):
                blocking.append({'workload': w['name'], 'reason': 'target {0} is {1}'.format(
                    target, place_state(fleet, target))})
            if w['name'] in in_cycle:
                blocking.append({'workload': w['name'], 'reason': 'in a dependency cycle'})
            for user in sorted(deps[w['name']]):
                other = byname[user]
                if other.get('current_host') != other.get('target_host'):
                    blocking.append({'workload': w['name'], 'reason': '{0} (wave {1}) depends on it and has not '
                                     'moved yet'.format(user, other['wave']), 'waits_for': user})
        plan.append({'wave': number, 'workloads': [w['name'] for w in members],
                     'targets': {w['name']: w.get('target_host') for w in members}, 'blocked_by': blocking})
    return {'machine': machine, 'waves': plan, 'staying': staying,
            'workloads': sum(len(wave['workloads']) for wave in plan)}


# fleet_gate

_DIGEST = re.compile(r'@sha256:[0-9a-f]{64}$')
_VERSION = re.compile(r'^v?[0-9]+(\.[0-9]+)*([-+_.][0-9A-Za-z][0-9A-Za-z.+_-]*)?$')


def image_pin(image):
    """('digest'|'version', None) for a pinned image reference, (None, why) otherwise."""
    if not image:
        return None, 'no image reference recorded'
    if _DIGEST.search(image):
        return 'digest', None
    if '@' in image:
        return None, 'image {0} has a malformed digest (expected @sha256: and 64 hex digits)'.format(image)
    last = image.rsplit('/', 1)[-1]
    if ':' not in last:
        return None, 'image {0} is untagged (means latest); pin it by digest or version'.format(image)
    tag = last.rsplit(':', 1)[1]
    if tag == 'latest':
        return None, 'image {0} uses the latest tag; pin it by digest or version'.format(image)
    if not _VERSION.match(tag):
        return None, 'image {0} has tag {1!r}, which is not a version; pin it by digest or version'.format(image, tag)
    return 'version', None


def _reason(code, message):
    return {'code': code, 'message': message}


def _stage_manifest(overlay, stage):
    names = ('{0}.yaml'.format(stage), '{0}.yml'.format(stage), os.path.join(stage, 'kustomization.yaml'),
             os.path.join(stage, 'kustomization.yml'))
    return any(os.path.isfile(os.path.join(overlay, name)) for name in names)


def gate_workload(fleet, name, base_dir):
    """Whether workload `name` may count as production on its target: (passed, reasons)."""
    w = workloads(fleet).get(name)
    if w is None:
        raise FleetError('fleet', ['{0!r} is not a workload of the fleet'.format(name)])
    reasons, promo = [], w['promotion']
    target = w.get('target_host')
    if not target:
        reasons.append(_reason('no-target', 'workload {0} has no target host'.format(name)))
    elif place_role(fleet, target) != 'production':
        reasons.append(_reason('target-not-production', 'target {0} is a {1} machine, not production'.format(
            target, place_role(fleet, target))))
    if not promo.get('overlay'):
        reasons.append(_reason('no-overlay', 'no overlay recorded (promotion.overlay)'))
    else:
        overlay = os.path.join(base_dir, promo['overlay'])
        if not os.path.isdir(overlay):
            reasons.append(_reason('overlay-missing', 'overlay {0} is not a directory'.format(overlay)))
        else:
            if not os.path.isfile(os.path.join(overlay, 'app.toml')):
                reasons.append(_reason('app-toml-missing', 'overlay {0} has no app.toml'.format(overlay)))
            for stage in STAGES:
                if not _stage_manifest(overlay, stage):
                    reasons.append(_reason('stage-manifest-missing', 'overlay {0} has no {1} manifest ({1}.yaml or '
                                           '{1}/kustomization.yaml)'.format(overlay, stage)))
    for stage in STAGES:
        if not promo.get('stages', {}).get(stage):
            reasons.append(_reason('stage-not-proven', 'stage {0} is not proven'.format(stage)))
    if w['stateful'] and not promo.get('backup_restore'):
        reasons.append(_reason('no-backup-restore', 'stateful workload without backup/restore evidence'))
    if not promo.get('canary'):
        reasons.append(_reason('no-canary', 'no canary evidence'))
    if not promo.get('approval'):
        reasons.append(_reason('no-approval', 'no approval recorded (promotion.approval by and at)'))
    pin, why = image_pin(promo.get('image'))
    if pin is None:
        reasons.append(_reason('image-not-pinned', why))
    return not reasons, reasons


def gate_machine(fleet, machine, now, max_age_days, backups=None, backup_max_age_hours=24):
    """Whether `machine` (or cluster) may be wiped: (passed, reasons). `now` is an aware datetime.

    `backups`, when given, are the backups just taken of the target (etcd and Vault snapshots, a backup per
    volume), each a mapping with name, kind, state, created, error and, for a volume, its claim. Every one must
    have completed within `backup_max_age_hours`, and every claim of a stateful workload of the target
    (`volumes`) must be among them; such a workload's recorded evidence is then an operator's record only."""
    if place_role(fleet, machine) is None:
        raise FleetError('fleet', ['{0!r} is not a machine, cluster or cluster node of the fleet'.format(machine)])
    reasons = []
    for w in fleet['workloads']:
        if w.get('current_host') == machine:
            reasons.append(_reason('not-drained', 'workload {0} still runs on {1}{2}'.format(
                w['name'], machine, '' if w.get('target_host') != machine else ' and targets it')))
    checked = set()
    if backups is not None:
        checked = _backup_reasons(fleet, machine, now, backups, backup_max_age_hours, reasons)
    oldest = now - datetime.timedelta(days=max_age_days)
    for w in fleet['workloads']:
        if not w['stateful'] or machine not in (w.get('current_host'), w.get('previous_host')) or w['name'] in checked:
            continue
        evidence = w['promotion'].get('backup_restore')
        if not evidence:
            reasons.append(_reason('no-backup-restore', 'stateful workload {0} has no backup/restore evidence'.format(
                w['name'])))
            continue
        when = parse_date(evidence['date'])
        if when > now:
            reasons.append(_reason('backup-restore-in-future', 'backup/restore evidence of {0} ({1}) is dated in '
                                   'the future'.format(w['name'], evidence['reference'])))
        elif when < oldest:
            reasons.append(_reason('backup-restore-stale', 'backup/restore evidence of {0} ({1}, {2}) is older '
                                   'than {3} days'.format(w['name'], evidence['reference'], evidence['date'],
                                                          max_age_days)))
    return not reasons, reasons


def _backup_reasons(fleet, machine, now, backups, max_age_hours, reasons):
    """Reasons from the backups just taken; returns the stateful workloads whose claims they cover."""
    oldest = now - datetime.timedelta(hours=max_age_hours)
    done = {}
    for backup in backups:
        of_claim = ' of claim {0}'.format(backup['claim']) if backup.get('claim') else ''
        what = '{0} backup {1}{2}'.format(backup.get('kind') or 'volume', backup.get('name'), of_claim)
        created = parse_date(backup.get('created'))
        if backup.get('state') != 'Completed':
            reasons.append(_reason('backup-failed', '{0} did not complete ({1}){2}'.format(
                what, backup.get('state') or 'no state', ': ' + backup['error'] if backup.get('error') else '')))
        elif created is None or created < oldest:
            reasons.append(_reason('backup-stale', '{0} was made {1}, more than {2} hours ago'.format(
                what, backup.get('created') or 'at an unknown time', max_age_hours)))
        elif backup.get('claim'):
            done[backup['claim']] = backup
    checked = set()
    for w in fleet['workloads']:
        if not (w['stateful'] and w.get('volumes')) or machine not in (
                w.get('current_host'), w.get('previous_host'), w.get('target_host')):
            continue
        checked.add(w['name'])
        for claim in w['volumes']:
            if claim not in done and not any(b.get('claim') == claim for b in backups):
                reasons.append(_reason('backup-missing', 'no backup of claim {0} of stateful workload {1} was '
                                       'taken: no Longhorn volume is bound to it'.format(claim, w['name'])))
    return checked


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)
