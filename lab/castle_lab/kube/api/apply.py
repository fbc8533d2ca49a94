"""Field ownership (managedFields in the fieldsV1 format) and server-side apply."""

import copy
import json

from .patch import merge_key, strategic_merge

MISSING = object()
# Metadata an applier can own; the rest (name, uid, resourceVersion...) is the server's.
OWNED_METADATA = ('labels', 'annotations', 'finalizers', 'ownerReferences')
IGNORED_TOP = ('apiVersion', 'kind')


class ApplyConflict(Exception):
    """Fields another manager owns would change: [(manager, path text)]."""

    def __init__(self, conflicts):
        super().__init__(conflicts)
        self.conflicts = conflicts


def field_paths(obj, status=True, keys=merge_key):
    """Every field path an object sets: tuples of 'f:<key>' and 'k:<merge key json>' segments."""
    paths = set()
    for key, value in obj.items():
        if key in IGNORED_TOP or (key == 'status' and not status):
            continue
        if key == 'metadata':
            for meta in OWNED_METADATA:
                if meta in value:
                    _collect(value[meta], ('f:metadata', 'f:' + meta), meta, 'metadata', paths, keys)
            continue
        _collect(value, ('f:' + key,), key, None, paths, keys)
    return paths


def _collect(value, prefix, field, parent, paths, keys):
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _collect(child, prefix + ('f:' + key,), key, field, paths, keys)
        return
    key = keys(field, parent)
    if isinstance(value, list) and key and value and all(isinstance(i, dict) and key in i for i in value):
        for item in value:
            item_path = prefix + ('k:' + json.dumps({key: item[key]}, separators=(',', ':')),)
            paths.add(item_path)
            for child_key, child in item.items():
                _collect(child, item_path + ('f:' + child_key,), child_key, field, paths, keys)
        return
    paths.add(prefix)


def value_at(obj, path):
    node = obj
    for segment in path:
        kind, name = segment[:1], segment[2:]
        if kind == 'f':
            if not isinstance(node, dict) or name not in node:
                return MISSING
            node = node[name]
        else:
            wanted = json.loads(name)
            if not isinstance(node, list):
                return MISSING
            node = next((i for i in node if isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items())),
                        MISSING)
            if node is MISSING:
                return MISSING
    return node


def remove_path(obj, path):
    parent = value_at(obj, path[:-1])
    kind, name = path[-1][:1], path[-1][2:]
    if kind == 'f' and isinstance(parent, dict):
        parent.pop(name, None)
    elif kind == 'k' and isinstance(parent, list):
        wanted = json.loads(name)
        parent[:] = [i for i in parent if not (isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items()))]


def encode(paths):
    """A set of paths as a fieldsV1 tree."""
    tree = {}
    for path in sorted(paths):
        node = tree
        for segment in path:
            node = node.setdefault(segment, {})
        if path[-1].startswith('k:'):
            node['.'] = {}
    return tree


def decode(tree, prefix=()):
    paths = set()
    for segment, child in (tree or {}).items():
        if segment == '.':
            paths.add(prefix)
            continue
        path = prefix + (segment,)
        if child:
            paths |= decode(child, path)
        else:
            paths.add(path)
    return paths


def path_text(path):
    parts = []
    for segment in path:
        parts.append('.' + segment[2:] if segment.startswith('f:') else '[' + segment[2:].strip('{}') + ']')
    return ''.join(parts)


def _entries(obj):
    return obj.get('metadata', {}).get('managedFields') or []


def _entry(manager, operation, api_version, paths, now, subresource=''):
    entry = {'manager': manager, 'operation': operation, 'apiVersion': api_version, 'time': now,
             'fieldsType': 'FieldsV1', 'fieldsV1': encode(paths)}
    if subresource:
        entry['subresource'] = subresource
    return entry


def _owned(entries):
    return [(e, decode(e.get('fieldsV1'))) for e in entries]


def record_update(old, new, manager, api_version, now, subresource='', keys=merge_key):
    """Give `manager` (operation Update) the fields a write changed; set new's managedFields."""
    old = old or {}
    old_paths, new_paths = field_paths(old, keys=keys), field_paths(new, keys=keys)
    changed = {p for p in new_paths if value_at(old, p) != value_at(new, p)}
    result, mine = [], set()
    for entry, paths in _owned(_entries(old)):
        paths = (paths & new_paths) - changed
        if (entry['manager'], entry['operation'], entry.get('subresource', '')) == (manager, 'Update', subresource):
            mine = paths
            continue
        if paths:
            result.append(dict(entry, fieldsV1=encode(paths)))
    mine |= changed
    if mine:
        result.append(_entry(manager, 'Update', api_version, mine, now, subresource))
    new.setdefault('metadata', {})['managedFields'] = result
    return old_paths != new_paths or changed


def server_side_apply(current, applied, manager, api_version, now, force, keys=merge_key):
    """The object after `manager` applies `applied` to `current` (None when missing).

    Raises ApplyConflict when a field another manager owns would change and force is false."""
    applied_paths = field_paths(applied, status=False, keys=keys)
    current = copy.deepcopy(current) if current else {'metadata': {}}
    entries = _owned(_entries(current))
    conflicts = []
    for entry, paths in entries:
        if entry['manager'] == manager:
            continue
        for path in sorted(paths & applied_paths):
            if value_at(current, path) != value_at(applied, path) and not path[-1].startswith('k:'):
                conflicts.append((entry['manager'], path))
    if conflicts and not force:
        raise ApplyConflict([(m, path_text(p)) for m, p in conflicts])
    taken = {p for _m, p in conflicts}
    previous = set()
    others = set()
    kept = []
    for entry, paths in entries:
        if entry['manager'] == manager and entry['operation'] == 'Apply':
            previous = paths
            continue
        paths = paths - taken
        others |= paths
        if paths:
            kept.append(dict(entry, fieldsV1=encode(paths)))
    result = current
    for path in sorted(previous - applied_paths - others, key=len, reverse=True):
        remove_path(result, path)
    body = {k: v for k, v in applied.items() if k not in ('status',)}
    body['metadata'] = {k: v for k, v in applied.get('metadata', {}).items() if k in OWNED_METADATA}
    result = strategic_merge(result, body, keys=keys)
    kept.append(_entry(manager, 'Apply', api_version, applied_paths, now))
    result['metadata']['managedFields'] = kept
    return result
