# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet file's schema: what a fleet may hold, checked and normalised by `validate` (defaults filled in,
dates as ISO 8601 UTC), with every problem named by its key path, and the references between rows followed
(unique names, known hosts, one control plane per cluster, unique MACs). PRIVATE to the collection."""

import datetime
import re

from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_spec import MAC

ROLES = ('production', 'frozen', 'workstation', 'experimental')
STATES = ('active', 'draining', 'drained', 'wiped', 'planned')
DIRECTIONS = ('forward', 'reverse')
NODE_ROLES = ('controlplane', 'worker')
STAGES = ('deploy', 'observe', 'promote', 'rollback')
# A claim as <namespace>/<name> (DNS-1123 labels and subdomains); a Longhorn S3 backup target.
CLAIM = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$')
LOOPBACK = ('127.0.0.1', '::1')
# A tunnel actor: its SSH principal, and the system user `castle-<actor>` (at most 32 characters).
ACTOR = re.compile(r'^[a-z][-a-z0-9]{0,23}$')
BACKUP_TARGET = re.compile(r'^s3://[a-z0-9][-.a-z0-9]*[a-z0-9]@[-a-z0-9]+/[^\s]*$')


class FleetError(CastleError):
    """A fleet that does not validate; `errors` holds one line per problem, each naming its key path."""

    def __init__(self, source, errors):
        self.source = source
        self.errors = list(errors)
        lines = '\n  '.join(self.errors)
        super().__init__('{0}: {1} error(s) in the fleet:\n  {2}'.format(source, len(self.errors), lines))

    def details(self):
        return {'errors': self.errors}


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
# Where a cluster's data goes before a wipe: its Longhorn backup target (an S3 bucket, Longhorn's
# s3://<bucket>@<region>/<path> form), the endpoint and keys Longhorn reaches it with, how old a backup may be, and
# the directory (on the controller) that keeps the etcd and Vault raft snapshots.
BACKUP = ('map', {'target': _req('str'), 'endpoint': _opt('str'), 'access_key_id': _opt('str'),
                  'secret_access_key': _opt('secret'), 'ca_path': _opt('str'),
                  'credential_secret': _opt('str', 'longhorn-backup-credentials'), 'max_age_hours': _opt('int', 24),
                  'snapshot_dir': _opt('str'), 'vault_snapshot': _opt('bool', False), 'timeout': _opt('int', 600)})
FLUX = ('map', {'url': _req('str'), 'branch': _opt('str', 'main'), 'path': _req('str'), 'auth': _opt('str'),
                'username': _opt('str'), 'token': _opt('secret'), 'ca_path': _opt('str'), 'version': _opt('str'),
                'manifest_path': _opt('str')})
# A tunnel: who holds it open (actor) from which machine to which, and, once it has its ports, the unit the
# fleet_tunnels role runs for it: `ssh -L local:remote` (forward) or `-R remote:local` (reverse) through the sshd
# of `via` (default: `to`), for the workload it carries.
TUNNEL = ('map', {
    'name': _req('str'), 'from': _req('str'), 'to': _req('str'), 'direction': _req(('enum', DIRECTIONS)),
    'actor': _opt('str'), 'critical': _opt('bool', False), 'port': _opt('int'), 'workload': _opt('str'),
    'via': _opt('str'), 'local_port': _opt('int'), 'local_address': _opt('str', '127.0.0.1'),
    'remote_port': _opt('int'), 'remote_address': _opt('str', '127.0.0.1'), 'ssh_port': _opt('int', 22),
    'check_path': _opt('str', '/'), 'check_expect': _opt('str')})
SCHEMA = ('map', {
    'machines': _req(('list', ('map', {
        'name': _req('str'), 'address': _opt('str'), 'role': _req(('enum', ROLES)),
        'state': _opt(('enum', STATES), 'active'), 'successor': _opt('str'), 'connection': _opt('dict', {}),
        'labels': _opt('dict', {})}))),
    'workloads': _opt(('list', ('map', {
        'name': _req('str'), 'current_host': _opt('str'), 'target_host': _opt('str'), 'previous_host': _opt('str'),
        'owner': _opt('str'), 'wave': _req('int'), 'depends_on': _opt(STR_LIST, []), 'stateful': _opt('bool', False),
        'critical': _opt('bool', False), 'volumes': _opt(STR_LIST, []), 'promotion': _opt(('map', {
            'overlay': _opt('str'), 'stages': _opt(('map', {s: _opt('bool', False) for s in STAGES}), {}),
            'backup_restore': _opt(EVIDENCE), 'canary': _opt(EVIDENCE),
            'approval': _opt(('map', {'by': _req('str'), 'at': _req('date')})), 'image': _opt('str')}), {})})), []),
    'tunnels': _opt(('list', TUNNEL), []),
    'clusters': _opt(('list', ('map', {
        'name': _req('str'), 'role': _opt(('enum', ROLES), 'production'), 'proxmox': _opt(PROXMOX, {}),
        'talos': _opt(TALOS, {}), 'nodes': _req(('list', NODE)), 'flux': _opt(FLUX), 'cluster_vars': _opt('dict', {}),
        'services': _opt(STR_LIST, []), 'openclaw': _opt('str'), 'backup': _opt(BACKUP)})), []),
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


def parse_date(value):
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


# Whether a scalar is of its spec's kind; only the one check a value needs is run.
_GOOD = {'str': lambda v: isinstance(v, str), 'int': lambda v: isinstance(v, int) and not isinstance(v, bool),
         'bool': lambda v: isinstance(v, bool), 'dict': lambda v: isinstance(v, dict), 'any': lambda v: True,
         'date': lambda v: parse_date(v) is not None,
         'secret': lambda v: isinstance(v, str) and '{{' in v and '}}' in v}


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
    if not _GOOD[spec](value):
        shown = '{0!r}'.format(value) if isinstance(value, (str, int, float)) and spec != 'secret' else _kind(value)
        errors.append('{0}: expected {1}, got {2}'.format(path, _EXPECTED[spec], shown))
        return value
    if spec == 'date':
        return parse_date(value).isoformat()
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
        for j, claim in enumerate(w.get('volumes') or []):
            if isinstance(claim, str) and not CLAIM.match(claim):
                errors.append('fleet.workloads[{0}].volumes[{1}]: expected a PersistentVolumeClaim as '
                              '<namespace>/<name>, got {2!r}'.format(i, j, claim))
    for i, t in enumerate(tunnels):
        for key in ('from', 'to'):
            if isinstance(t[key], str) and t[key] not in places:
                errors.append('fleet.tunnels[{0}].{1}: expected {2}, got unknown {3!r}'.format(i, key, known, t[key]))
        _tunnel_unit(i, t, machine_names, names, errors)
    for i, c in enumerate(clusters):
        if isinstance(c.get('openclaw'), str) and c['openclaw'] not in machine_names:
            errors.append('fleet.clusters[{0}].openclaw: expected a machine of the fleet, got unknown {1!r}'.format(
                i, c['openclaw']))
        if not any(n['role'] == 'controlplane' for n in c['nodes']):
            errors.append('fleet.clusters[{0}].nodes: expected at least one node with role controlplane'.format(i))
        target = (c.get('backup') or {}).get('target')
        if isinstance(target, str) and not BACKUP_TARGET.match(target):
            errors.append('fleet.clusters[{0}].backup.target: expected a Longhorn S3 backup target as '
                          's3://<bucket>@<region>/[<path>], got {1!r}'.format(i, target))
        endpoint = c['talos'].get('endpoint')
        if isinstance(endpoint, str) and not re.match(r'^https://[^/\s]+$', endpoint):
            errors.append('fleet.clusters[{0}].talos.endpoint: expected the Kubernetes API as https://<host>:<port>, '
                          'got {1!r}'.format(i, endpoint))
    _macs(clusters, errors)
    _placement(clusters, errors)


def _tunnel_unit(i, t, machine_names, workload_names, errors):
    """A tunnel's unit settings: both ports or neither, ports in range, an sshd to end at (`via`, or `to` when it is
    a machine), a known workload, a principal-safe actor."""
    path = 'fleet.tunnels[{0}]'.format(i)
    if isinstance(t.get('workload'), str) and t['workload'] not in workload_names:
        errors.append('{0}.workload: expected a workload of the fleet, got unknown {1!r}'.format(path, t['workload']))
    if isinstance(t.get('via'), str) and t['via'] not in machine_names:
        errors.append('{0}.via: expected a machine of the fleet (whose sshd ends the tunnel), got unknown {1!r}'.format(
            path, t['via']))
    managed = t.get('local_port') is not None and t.get('remote_port') is not None
    if managed and isinstance(t.get('actor'), str) and not ACTOR.match(t['actor']):
        errors.append('{0}.actor: expected a name of lower-case letters, digits and dashes (at most 24), got {1!r}'.format(
            path, t['actor']))
    for key in ('local_port', 'remote_port', 'ssh_port'):
        value = t.get(key)
        if isinstance(value, int) and not 0 < value < 65536:
            errors.append('{0}.{1}: expected a TCP port (1-65535), got {2}'.format(path, key, value))
    ports = [key for key in ('local_port', 'remote_port') if t.get(key) is not None]
    if len(ports) == 1:
        errors.append('{0}.{1}: a tunnel with a unit needs both local_port and remote_port'.format(
            path, 'remote_port' if ports == ['local_port'] else 'local_port'))
    if managed and t['direction'] == 'reverse' and t.get('remote_address') not in LOOPBACK:
        # sshd binds a remote forward to loopback whatever was asked, unless its GatewayPorts says otherwise.
        errors.append('{0}.remote_address: a reverse tunnel listens on the far machine\'s loopback ({1}), got {2!r}'.format(
            path, ', '.join(LOOPBACK), t.get('remote_address')))
    if managed and t['from'] not in machine_names:
        errors.append('{0}.from: a tunnel with a unit starts on a machine of the fleet, got {1!r}'.format(path, t['from']))
    if managed and not t.get('via') and t['to'] not in machine_names:
        errors.append('{0}.via: {1!r} is not a machine, so it runs no sshd for the tunnel: name the machine that '
                      'does'.format(path, t['to']))


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
