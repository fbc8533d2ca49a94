"""Server-side printing: list and watch answers as a meta.k8s.io Table, with the columns `kubectl get` shows for
built-ins and the printer columns of a CRD."""

import datetime
import json
import re


def table(rtype, items, resource_version):
    """The meta.k8s.io Table of these objects, as `kubectl get` asks for it (Accept: ...;as=Table)."""
    extra = [(c['name'], c.get('type', 'string'), c.get('priority', 0), _column_cell(c))
             for c in rtype.printer_columns]
    extra += BUILTIN_COLUMNS.get(rtype.kind, []) if not rtype.crd else []
    # A CRD's printer columns replace the default Age column (CRDs list their own).
    with_age = not (rtype.crd and rtype.printer_columns)
    columns = [{'name': 'Name', 'type': 'string', 'format': 'name', 'description': 'Name', 'priority': 0}]
    columns += [{'name': name, 'type': kind, 'format': '', 'description': name, 'priority': priority}
                for name, kind, priority, _cell in extra]
    if with_age:
        columns.append({'name': 'Age', 'type': 'string', 'format': '', 'description': 'Age', 'priority': 0})
    rows = []
    for obj in items:
        cells = [obj['metadata']['name']] + [cell(obj) for _name, _kind, _priority, cell in extra]
        if with_age:
            cells.append(_age(obj['metadata'].get('creationTimestamp')))
        rows.append({'cells': cells, 'object': {'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/v1',
                                                'metadata': obj['metadata']}})
    return {'kind': 'Table', 'apiVersion': 'meta.k8s.io/v1',
            'metadata': {'resourceVersion': resource_version},
            'columnDefinitions': columns, 'rows': rows}


def _status(obj, field, default=0):
    return (obj.get('status') or {}).get(field, default)


def _ports(obj):
    ports = ['{0}/{1}'.format(p.get('port'), p.get('protocol', 'TCP')) for p in (obj.get('spec') or {}).get('ports', [])]
    return ','.join(ports) or '<none>'


def _node_status(node):
    """kubectl's node STATUS: Ready or NotReady by the Ready condition, SchedulingDisabled when cordoned."""
    ready = any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in _status(node, 'conditions', []))
    cordoned = ',SchedulingDisabled' if (node.get('spec') or {}).get('unschedulable') else ''
    return ('Ready' if ready else 'NotReady') + cordoned


# Columns `kubectl get` shows for built-ins, after the name: (name, type, priority, cell of an object).
BUILTIN_COLUMNS = {
    'Namespace': [('Status', 'string', 0, lambda o: _status(o, 'phase', ''))],
    'ConfigMap': [('Data', 'integer', 0, lambda o: len(o.get('data') or {}) + len(o.get('binaryData') or {}))],
    'Secret': [('Type', 'string', 0, lambda o: o.get('type', '')),
               ('Data', 'integer', 0, lambda o: len(o.get('data') or {}))],
    'Service': [('Type', 'string', 0, lambda o: o['spec'].get('type', '')),
                ('Cluster-IP', 'string', 0, lambda o: o['spec'].get('clusterIP', '<none>')),
                ('External-IP', 'string', 0, lambda o: '<none>'),
                ('Port(s)', 'string', 0, _ports)],
    'Deployment': [('Ready', 'string', 0, lambda o: '{0}/{1}'.format(_status(o, 'readyReplicas'),
                                                                     o['spec'].get('replicas', 1))),
                   ('Up-to-date', 'integer', 0, lambda o: _status(o, 'updatedReplicas')),
                   ('Available', 'integer', 0, lambda o: _status(o, 'availableReplicas'))],
    'Pod': [('Ready', 'string', 0, lambda o: '{0}/{1}'.format(
                sum(1 for c in _status(o, 'containerStatuses', []) if c.get('ready')),
                len((o.get('spec') or {}).get('containers') or []))),
            ('Status', 'string', 0, lambda o: _status(o, 'phase', 'Pending')),
            ('Restarts', 'integer', 0, lambda o: sum(c.get('restartCount', 0) for c in _status(o, 'containerStatuses', [])))],
    'ReplicaSet': [('Desired', 'integer', 0, lambda o: o['spec'].get('replicas', 1)),
                   ('Current', 'integer', 0, lambda o: _status(o, 'replicas')),
                   ('Ready', 'integer', 0, lambda o: _status(o, 'readyReplicas'))],
    'Node': [('Status', 'string', 0, _node_status),
             ('Roles', 'string', 0, lambda o: ','.join(sorted(k.split('/', 1)[1] for k in o['metadata'].get(
                 'labels', {}) if k.startswith('node-role.kubernetes.io/'))) or '<none>'),
             ('Version', 'string', 0, lambda o: _status(o, 'nodeInfo', {}).get('kubeletVersion', ''))],
    'StatefulSet': [('Ready', 'string', 0, lambda o: '{0}/{1}'.format(_status(o, 'readyReplicas'),
                                                                      o['spec'].get('replicas', 1)))],
    'DaemonSet': [(name, 'integer', 0, lambda o, f=field: _status(o, f)) for name, field in (
        ('Desired', 'desiredNumberScheduled'), ('Current', 'currentNumberScheduled'), ('Ready', 'numberReady'),
        ('Up-to-date', 'updatedNumberScheduled'), ('Available', 'numberAvailable'))],
}


# Steps of the JSONPath printer columns use: `.field`, `[?(@.key=="value")]`, `[index]`, `[*]`.
JSON_PATH_STEP = re.compile(r'\.([^.\[\]]+)|\[\?\(@\.([\w-]+)\s*==\s*["\']([^"\']*)["\']\)\]|\[(\d+|\*)\]')


def json_path(obj, path):
    """A printer column's cell: the one value the path selects, or several joined by spaces."""
    nodes = [obj]
    for field, key, value, index in JSON_PATH_STEP.findall(path):
        if field:
            nodes = [n[field] for n in nodes if isinstance(n, dict) and n.get(field) is not None]
        elif key:
            nodes = [item for n in nodes if isinstance(n, list) for item in n
                     if isinstance(item, dict) and str(item.get(key)) == value]
        elif index == '*':
            nodes = [item for n in nodes if isinstance(n, list) for item in n]
        else:
            nodes = [n[int(index)] for n in nodes if isinstance(n, list) and len(n) > int(index)]
    values = [n if isinstance(n, (str, int, float, bool)) else json.dumps(n) for n in nodes]
    if len(values) == 1:
        return values[0]
    return ' '.join(str(v) for v in values)


def _column_cell(column):
    """The cell function of a CRD printer column; `date` columns read as an age, as the API server writes them."""
    path = column.get('jsonPath', '')
    if column.get('type') == 'date':
        return lambda obj: _age(json_path(obj, path) or None)
    return lambda obj: json_path(obj, path)


def _age(timestamp):
    if not timestamp:
        return '<unknown>'
    created = datetime.datetime.strptime(timestamp, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds())
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds >= size * 2 or (unit == 'm' and seconds >= 60):
            return '{0}{1}'.format(seconds // size, unit)
    return '{0}s'.format(max(seconds, 0))
