# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet model: the fleet file's schema and loader, and the fleet's rules (invariants, drain
waves, promotion and wipe gates). Pure data, no client; read by the fleet inventory plugin and the
fleet_* modules. PRIVATE to the collection."""

import datetime
import os
import re

from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_spec import MAC

try:
    import yaml
    HAS_YAML = True
except ImportError:
    HAS_YAML = False

ROLES = ('production', 'frozen', 'workstation', 'experimental')
STATES = ('active', 'draining', 'drained', 'wiped', 'planned')
DIRECTIONS = ('forward', 'reverse')
NODE_ROLES = ('controlplane', 'worker')
STAGES = ('deploy', 'observe', 'promote', 'rollback')
# Stable codes of fleet_check, in the order they are checked.
CHECK_CODES = ('workload-no-target', 'workload-no-owner', 'critical-tunnel-on-workstation',
               'workload-targets-frozen', 'wave-before-dependent', 'dependency-cycle')


class FleetError(Exception):
    """A fleet that does not validate; `errors` holds one line per problem, each naming its key path."""

    def __init__(self, source, errors):
        self.source = source
        self.errors = list(errors)
        lines = '\n  '.join(self.errors)
        super().__init__('{0}: {1} error(s) in the fleet:\n  {2}'.format(source, len(self.errors), lines))


# The schema, as nested specs: ('map', {key: (spec, required, default)}), ('list', spec), ('enum', choices),
# and the scalars 'str', 'int', 'bool', 'date', 'dict' (free-form mapping), 'any'.
def _opt(spec, default=None):
    return (spec, False, default)


def _req(spec):
    return (spec, True, None)


STR_LIST = ('list', 'str')
EVIDENCE = ('map', {'date': _req('date'), 'reference': _req('str')})
PROXMOX = ('map', {'api_host': _opt('str'), 'api_port': _opt('int', 8006), 'api_token_id': _opt('str'),
                   'api_token_secret': _opt('secret'), 'ca_path': _opt('str'),
                   'validate_certs': _opt('bool', True), 'node': _opt('str'), 'nodes': _opt(STR_LIST),
                   'storage': _opt('str'), 'bridge': _opt('str'), 'iso': _opt('str'), 'template': _opt('str')})
TALOS = ('map', {'version': _opt('str'), 'endpoint': _opt('str'), 'vip': _opt('str'), 'install_disk': _opt('str'),
                 'patches': _opt(('list', 'any'), []), 'kubeconfig_path': _opt('str'),
                 'talosconfig_path': _opt('str'), 'extensions': _opt(STR_LIST), 'longhorn': _opt('bool', True),
                 'extra_kernel_args': _opt(STR_LIST, []), 'factory_url': _opt('str'),
                 'factory_ca_path': _opt('str')})
NODE = ('map', {'name': _req('str'), 'role': _req(('enum', NODE_ROLES)), 'vmid': _opt('int'), 'cores': _opt('int'),
                'memory': _opt('int'), 'disk': _opt('str'), 'address': _opt('str'), 'mac': _opt('str'),
                'patches': _opt(('list', 'any'), []), 'labels': _opt('dict', {}), 'proxmox_node': _opt('str')})
FLUX = ('map', {'url': _req('str'), 'branch': _opt('str', 'main'), 'path': _req('str'), 'auth': _opt('str'),
                'username': _opt('str'), 'token': _opt('secret'), 'ca_path': _opt('str'), 'version': _opt('str'),
                'manifest_path': _opt('str')})
SCHEMA = ('map', {
    'machines': _req(('list', ('map', {
        'name': _req('str'), 'address': _opt('str'), 'role': _req(('enum', ROLES)),
        'state': _opt(('enum', STATES), 'active'), 'successor': _opt('str'), 'connection': _opt('dict', {}),
        'labels': _opt('dict', {})}))),
    'workloads': _opt(('list', ('map', {
        'name': _req('str'), 'current_host': _opt('str'), 'target_host': _opt('str'), 'previous_host': _opt('str'),
        'owner': _opt('str'), 'wave': _req('int'), 'depends_on': _opt(STR_LIST, []), 'stateful': _opt('bool', False),
        'critical': _opt('bool', False), 'promotion': _opt(('map', {
            'overlay': _opt('str'), 'stages': _opt(('map', {s: _opt('bool', False) for s in STAGES}), {}),
            'backup_restore': _opt(EVIDENCE), 'canary': _opt(EVIDENCE),
            'approval': _opt(('map', {'by': _req('str'), 'at': _req('date')})), 'image': _opt('str')}), {})})), []),
    'tunnels': _opt(('list', ('map', {
        'name': _req('str'), 'from': _req('str'), 'to': _req('str'), 'direction': _req(('enum', DIRECTIONS)),
        'actor': _opt('str'), 'critical': _opt('bool', False), 'port': _opt('int')})), []),
    'clusters': _opt(('list', ('map', {
        'name': _req('str'), 'role': _opt(('enum', ROLES), 'production'), 'proxmox': _opt(PROXMOX, {}),
        'talos': _opt(TALOS, {}), 'nodes': _req(('list', NODE)), 'flux': _opt(FLUX), 'cluster_vars': _opt('dict', {}),
        'services': _opt(STR_LIST, []), 'openclaw': _opt('str')})), []),
})
_EXPECTED = {'str': 'a string', 'int': 'an integer', 'bool': 'a boolean (true/false)', 'dict': 'a mapping',
             'date': 'a date or time (ISO 8601, e.g. 2026-11-02 or 2026-11-02T10:00:00Z)',
             'secret': 'a template that looks the secret up (e.g. "{{ lookup(\'ansible.builtin.env\', \'X\') }}"),'
                       ' never the secret itself'}


def _kind(value):
    if value is None:
        return 'null'
    return {bool: 'a boolean', int: 'an integer', float: 'a number', str: 'a string', list: 'a list',
            dict: 'a mapping'}.get(type(value), type(value).__name__)


def _date(value):
    """An ISO date or time (string, date or datetime) as an aware UTC datetime, or None."""
    if isinstance(value, datetime.datetime):
        found = value
    elif isinstance(value, datetime.date):
        found = datetime.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip().replace('Z', '+00:00').replace(' ', 'T', 1)
        try:
            found = datetime.datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return found if found.tzinfo else found.replace(tzinfo=datetime.timezone.utc)


def _walk(spec, value, path, errors):
    """The value checked against spec, with defaults filled in; problems appended to errors."""
    if isinstance(spec, tuple) and spec[0] == 'map':
        if not isinstance(value, dict):
            errors.append('{0}: expected a mapping, got {1}'.format(path, _kind(value)))
            return value
        out = {}
        for key in value:
            if key not in spec[1]:
                errors.append('{0}.{1}: unknown key; expected one of {2}'.format(path, key, ', '.join(spec[1])))
        for key, (sub, required, default) in spec[1].items():
            if value.get(key) is None:
                if required:
                    errors.append('{0}.{1}: required key is missing'.format(path, key))
                elif default is not None:
                    out[key] = _walk(sub, dict(default), '{0}.{1}'.format(path, key), errors) \
                        if isinstance(default, dict) else list(default) if isinstance(default, list) else default
                continue
            out[key] = _walk(sub, value[key], '{0}.{1}'.format(path, key), errors)
        return out
    if isinstance(spec, tuple) and spec[0] == 'list':
        if not isinstance(value, list):
            errors.append('{0}: expected a list, got {1}'.format(path, _kind(value)))
            return value
        return [_walk(spec[1], item, '{0}[{1}]'.format(path, i), errors) for i, item in enumerate(value)]
    if isinstance(spec, tuple) and spec[0] == 'enum':
        if value not in spec[1]:
            errors.append('{0}: expected one of {1}, got {2!r}'.format(path, ', '.join(spec[1]), value))
        return value
    good = {'str': isinstance(value, str), 'int': isinstance(value, int) and not isinstance(value, bool),
            'bool': isinstance(value, bool), 'dict': isinstance(value, dict), 'any': True,
            'date': _date(value) is not None,
            'secret': isinstance(value, str) and '{{' in value and '}}' in value}[spec]
    if not good:
        shown = '{0!r}'.format(value) if isinstance(value, (str, int, float)) and spec != 'secret' else _kind(value)
        errors.append('{0}: expected {1}, got {2}'.format(path, _EXPECTED[spec], shown))
        return value
    if spec == 'date':
        return _date(value).isoformat()
    return value


def _unique(rows, path, what, errors, seen=None):
    seen = {} if seen is None else seen
    for i, row in enumerate(rows):
        name = row.get('name') if isinstance(row, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            errors.append('{0}[{1}].name: {2} {3!r} is already defined at {4}'.format(path, i, what, name, seen[name]))
        else:
            seen[name] = '{0}[{1}]'.format(path, i)
    return seen


def validate(data, source='fleet'):
    """The fleet (the mapping under `fleet:`) checked and normalised; raises FleetError naming every problem."""
    errors = []
    fleet = _walk(SCHEMA, data, 'fleet', errors)
    if not isinstance(fleet, dict):
        raise FleetError(source, errors)
    try:
        _references(fleet, errors)
    except (TypeError, KeyError, AttributeError):
        # Rows of the wrong shape, already reported by the schema; their references cannot be followed.
        if not errors:
            raise
    if errors:
        raise FleetError(source, errors)
    return fleet


def _references(fleet, errors):
    """Unique names, and every name a row refers to defined in the fleet."""
    machines, workloads = fleet.get('machines') or [], fleet.get('workloads') or []
    tunnels, clusters = fleet.get('tunnels') or [], fleet.get('clusters') or []
    hosts = _unique(machines, 'fleet.machines', 'machine', errors)
    for c, cluster in enumerate(clusters):
        _unique(cluster['nodes'], 'fleet.clusters[{0}].nodes'.format(c), 'host', errors, hosts)
    places = dict(hosts)
    _unique(clusters, 'fleet.clusters', 'host or cluster', errors, places)
    names = _unique(workloads, 'fleet.workloads', 'workload', errors)
    _unique(tunnels, 'fleet.tunnels', 'tunnel', errors)
    machine_names = [m['name'] for m in machines]
    known = 'a machine, cluster or cluster node of the fleet'
    for i, m in enumerate(machines):
        if isinstance(m.get('successor'), str) and m['successor'] not in machine_names:
            errors.append('fleet.machines[{0}].successor: expected a machine of the fleet, got {1!r}'.format(
                i, m['successor']))
    for i, w in enumerate(workloads):
        for key in ('current_host', 'target_host', 'previous_host'):
            if isinstance(w.get(key), str) and w[key] not in places:
                errors.append('fleet.workloads[{0}].{1}: expected {2}, got unknown {3!r}'.format(i, key, known, w[key]))
        for j, dep in enumerate(w['depends_on']):
            if not isinstance(dep, str):
                continue
            if dep not in names:
                errors.append('fleet.workloads[{0}].depends_on[{1}]: expected a workload of the fleet, got unknown '
                              '{2!r}'.format(i, j, dep))
            elif dep == w['name']:
                errors.append('fleet.workloads[{0}].depends_on[{1}]: a workload cannot depend on itself'.format(i, j))
    for i, t in enumerate(tunnels):
        for key in ('from', 'to'):
            if isinstance(t[key], str) and t[key] not in places:
                errors.append('fleet.tunnels[{0}].{1}: expected {2}, got unknown {3!r}'.format(i, key, known, t[key]))
    for i, c in enumerate(clusters):
        if isinstance(c.get('openclaw'), str) and c['openclaw'] not in machine_names:
            errors.append('fleet.clusters[{0}].openclaw: expected a machine of the fleet, got unknown {1!r}'.format(
                i, c['openclaw']))
        if not any(n['role'] == 'controlplane' for n in c['nodes']):
            errors.append('fleet.clusters[{0}].nodes: expected at least one node with role controlplane'.format(i))
        endpoint = c['talos'].get('endpoint')
        if isinstance(endpoint, str) and not re.match(r'^https://[^/\s]+$', endpoint):
            errors.append('fleet.clusters[{0}].talos.endpoint: expected the Kubernetes API as https://<host>:<port>, '
                          'got {1!r}'.format(i, endpoint))
    _macs(clusters, errors)
    _placement(clusters, errors)


def _placement(clusters, errors):
    """A node's `proxmox_node` is one of the cluster's Proxmox VE nodes (`proxmox.nodes`, or `proxmox.node`) when
    those are given."""
    for c, cluster in enumerate(clusters):
        proxmox = cluster.get('proxmox') or {}
        allowed = proxmox.get('nodes') or ([proxmox['node']] if proxmox.get('node') else [])
        for n, node in enumerate(cluster['nodes']):
            where = node.get('proxmox_node')
            if allowed and isinstance(where, str) and where not in allowed:
                errors.append('fleet.clusters[{0}].nodes[{1}].proxmox_node: expected one of the cluster\'s Proxmox VE '
                              'nodes ({2}), got {3!r}'.format(c, n, ', '.join(allowed), where))


def _macs(clusters, errors):
    """Node MAC addresses (DHCP reservations) well-formed and unique over the fleet."""
    seen = {}
    for c, cluster in enumerate(clusters):
        for n, node in enumerate(cluster['nodes']):
            mac, path = node.get('mac'), 'fleet.clusters[{0}].nodes[{1}].mac'.format(c, n)
            if not isinstance(mac, str):
                continue
            if not MAC.match(mac):
                errors.append('{0}: expected a MAC address such as BC:24:11:40:00:01, got {1!r}'.format(path, mac))
            elif mac.upper() in seen:
                errors.append('{0}: MAC {1} is already given at {2}'.format(path, mac, seen[mac.upper()]))
            else:
                seen[mac.upper()] = path


def load(text, source):
    """The validated fleet of a fleet file's text (YAML with the fleet under `fleet:`)."""
    if not HAS_YAML:
        raise FleetError(source, ['reading a fleet file needs PyYAML, which ansible-core itself requires'])
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FleetError(source, ['not valid YAML: {0}'.format(exc)])
    if not isinstance(doc, dict) or 'fleet' not in doc:
        raise FleetError(source, ['expected a mapping with the fleet under the key `fleet:`'])
    return validate(doc['fleet'], source)


def load_file(path):
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except OSError as exc:
        raise FleetError(path, ['cannot read the fleet file: {0}'.format(exc.strerror or exc)])
    return load(text, path)


# Lookups over a validated fleet.

def machines(fleet):
    return {m['name']: m for m in fleet['machines']}


def workloads(fleet):
    return {w['name']: w for w in fleet['workloads']}


def place_role(fleet, name):
    """The role of a place: a machine's own, a cluster's or its node's cluster role; None if unknown."""
    found = machines(fleet).get(name)
    if found:
        return found['role']
    for cluster in fleet['clusters']:
        if name == cluster['name'] or name in [n['name'] for n in cluster['nodes']]:
            return cluster['role']
    return None


def dependents(fleet):
    """{workload: [workloads that depend on it]}."""
    found = {w['name']: [] for w in fleet['workloads']}
    for w in fleet['workloads']:
        for dep in w['depends_on']:
            found[dep].append(w['name'])
    return found


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

def _violation(code, message, rows):
    return {'code': code, 'message': message, 'rows': rows}


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
    for t in fleet['tunnels']:
        ends = [key for key in ('from', 'to') if roles.get(t[key]) == 'workstation']
        if t['critical'] and ends:
            found.append(_violation(
                'critical-tunnel-on-workstation',
                'critical tunnel {0} {1} on workstation {2}; production must run with the workstation off'.format(
                    t['name'], ' and '.join({'from': 'starts', 'to': 'ends'}[k] for k in ends),
                    ', '.join(sorted({t[k] for k in ends}))),
                [{'tunnel': t['name'], 'from': t['from'], 'to': t['to'], 'direction': t['direction'],
                  'actor': t.get('actor')}]))
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
    return found


# fleet_drain_plan

def place_state(fleet, name):
    found = machines(fleet).get(name)
    return found['state'] if found else 'active'


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


def gate_machine(fleet, machine, now, max_age_days):
    """Whether `machine` (or cluster) may be wiped: (passed, reasons). `now` is an aware datetime."""
    if place_role(fleet, machine) is None:
        raise FleetError('fleet', ['{0!r} is not a machine, cluster or cluster node of the fleet'.format(machine)])
    reasons = []
    for w in fleet['workloads']:
        if w.get('current_host') == machine:
            reasons.append(_reason('not-drained', 'workload {0} still runs on {1}{2}'.format(
                w['name'], machine, '' if w.get('target_host') != machine else ' and targets it')))
    oldest = now - datetime.timedelta(days=max_age_days)
    for w in fleet['workloads']:
        if not w['stateful'] or machine not in (w.get('current_host'), w.get('previous_host')):
            continue
        evidence = w['promotion'].get('backup_restore')
        if not evidence:
            reasons.append(_reason('no-backup-restore', 'stateful workload {0} has no backup/restore evidence'.format(
                w['name'])))
            continue
        when = _date(evidence['date'])
        if when > now:
            reasons.append(_reason('backup-restore-in-future', 'backup/restore evidence of {0} ({1}) is dated in '
                                   'the future'.format(w['name'], evidence['reference'])))
        elif when < oldest:
            reasons.append(_reason('backup-restore-stale', 'backup/restore evidence of {0} ({1}, {2}) is older '
                                   'than {3} days'.format(w['name'], evidence['reference'], evidence['date'],
                                                          max_age_days)))
    return not reasons, reasons


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


# The fleet_* modules' shared options and entry point.

SOURCE_ARGUMENT_SPEC = {'fleet': {'type': 'dict'}, 'src': {'type': 'path'}}


def fleet_module(argument_spec):
    """An AnsibleModule taking the fleet as `fleet` or `src` (one of them), check mode supported."""
    from ansible.module_utils.basic import AnsibleModule
    spec = dict(SOURCE_ARGUMENT_SPEC)
    spec.update(argument_spec)
    return AnsibleModule(argument_spec=spec, supports_check_mode=True, mutually_exclusive=[('fleet', 'src')],
                         required_one_of=[('fleet', 'src')])


def module_fleet(module):
    """The validated fleet of the module's `fleet` or `src`; fails the module naming every error."""
    try:
        if module.params['src']:
            return load_file(module.params['src'])
        return validate(module.params['fleet'], 'the fleet option')
    except FleetError as exc:
        module.fail_json(msg=str(exc), errors=exc.errors)
