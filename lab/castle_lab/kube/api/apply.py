"""Field ownership (managedFields in the fieldsV1 format) and server-side apply."""

import copy
import json

from .patch import merge_key, strategic_merge

MISSING = object()
# Metadata an applier can own; the rest (name, uid, resourceVersion...) is the server's.
OWNED_METADATA = ('labels', 'annotations', 'finalizers', 'ownerReferences')
IGNORED_TOP = ('apiVersion', 'kind')
LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration'
# The manager whose applies take over from kubectl's client-side apply (`kubectl apply --server-side`).
KUBECTL = 'kubectl'


class ApplyConflict(Exception):
    """Fields another manager owns would change. conflicts: [(manager, path text)]; message and causes as the API
    server words them."""

    def __init__(self, found):
        printed = [(_printed_manager(entry), path_text(path)) for entry, path in found]
        super().__init__(printed)
        self.conflicts = [(entry['manager'], path_text(path)) for entry, path in found]
        self.causes = [{'reason': 'FieldManagerConflict', 'message': 'conflict with ' + who, 'field': path}
                       for who, path in printed]
        if len(printed) == 1:
            self.message = 'Apply failed with 1 conflict: conflict with {0}: {1}'.format(*printed[0])
            return
        lines = []
        for entry in sorted({_identity(e): e for e, _p in found}.values(), key=_identity):
            lines.append('conflicts with {0}:'.format(_printed_manager(entry)))
            lines += ['- ' + path_text(p) for e, p in found if _identity(e) == _identity(entry)]
        self.message = 'Apply failed with {0} conflicts: {1}'.format(len(printed), '\n'.join(lines))


def _identity(entry):
    """What tells managers apart: name, operation, subresource, and for an Update the apiVersion."""
    return (entry['manager'], entry['operation'], entry.get('subresource', ''),
            entry.get('apiVersion', '') if entry['operation'] == 'Update' else '')


def _printed_manager(entry):
    printed = '"{0}"'.format(entry['manager'])
    if entry.get('subresource'):
        printed += ' with subresource "{0}"'.format(entry['subresource'])
    if entry['operation'] == 'Update':
        printed += ' using ' + entry.get('apiVersion', '')
    return printed


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
    """A field path as the API server prints it: `.spec.containers[name="app"].image`."""
    parts = []
    for segment in path:
        if segment.startswith('f:'):
            parts.append('.' + segment[2:])
        else:
            parts.append('[' + ','.join('{0}={1}'.format(k, json.dumps(v)) for k, v in sorted(
                json.loads(segment[2:]).items())) + ']')
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


def managed_base(given, live, subresource=''):
    """The managedFields an update starts from: those the request sends, when it sends valid ones to the main
    resource (`[]` or `[{}]` reset them), else the live object's."""
    if subresource:
        return live or []
    if given is not None and (given == [] or given == [{}]):
        return []
    if isinstance(given, list) and given and all(_valid_entry(e) for e in given):
        return [dict(e, manager=e.get('manager') or '') for e in given]
    return live or []


def _valid_entry(entry):
    if not isinstance(entry, dict) or not isinstance(entry.get('manager', ''), str):
        return False
    return entry.get('operation') in ('Apply', 'Update') and bool(entry.get('apiVersion')) and \
        entry.get('fieldsType') == 'FieldsV1' and _fields_tree(entry.get('fieldsV1', {}))


def _fields_tree(tree):
    return isinstance(tree, dict) and all(isinstance(k, str) and _fields_tree(v) for k, v in tree.items())


def record_update(old, new, manager, api_version, now, subresource='', keys=merge_key):
    """Give `manager` (operation Update) the fields a write changed; set new's managedFields. The ownership it
    starts from is new's managedFields (see managed_base)."""
    old = old or {}
    old_paths, new_paths = field_paths(old, keys=keys), field_paths(new, keys=keys)
    changed = {p for p in new_paths if value_at(old, p) != value_at(new, p)}
    result, mine = [], set()
    for entry, paths in _owned(_entries(new)):
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
        if _identity(entry) == (manager, 'Apply', '', ''):
            continue
        for path in sorted(paths & applied_paths):
            if value_at(current, path) != value_at(applied, path) and not path[-1].startswith('k:'):
                conflicts.append((entry, path))
    taken = {p for _e, p in conflicts}
    if conflicts and not force and not (manager == KUBECTL and taken <= _last_applied(current, keys)):
        raise ApplyConflict(conflicts)
    previous = set()
    others = set()
    kept = []
    for entry, paths in entries:
        if _identity(entry) == (manager, 'Apply', '', ''):
            previous = paths
            continue
        paths = paths - taken
        others |= paths
        if paths:
            kept.append(dict(entry, fieldsV1=encode(paths)))
    result = current
    # A field this manager no longer applies goes unless someone still owns it, or owns a field inside it (an
    # empty map applied by one manager keeps the keys another one set).
    kept_paths = others | applied_paths
    for path in sorted(previous - kept_paths, key=len, reverse=True):
        if not any(p[:len(path)] == path for p in kept_paths):
            remove_path(result, path)
    body = {k: v for k, v in applied.items() if k not in ('status',)}
    body['metadata'] = {k: v for k, v in applied.get('metadata', {}).items() if k in OWNED_METADATA}
    result = strategic_merge(result, body, keys=keys)
    if applied_paths:  # a manager left owning nothing is no longer listed
        kept.append(_entry(manager, 'Apply', api_version, applied_paths, now))
    result['metadata']['managedFields'] = kept
    annotations = result['metadata'].get('annotations') or {}
    if manager == KUBECTL and annotations.get(LAST_APPLIED):
        annotations[LAST_APPLIED] = _last_applied_text(applied)
    return result


def _last_applied(current, keys):
    """The fields of kubectl's client-side last-applied configuration that still hold in `current`: kubectl's
    server-side apply takes them over without conflict."""
    text = (current['metadata'].get('annotations') or {}).get(LAST_APPLIED)
    try:
        last = json.loads(text) if text else None
    except ValueError:
        last = None
    if not isinstance(last, dict) or not isinstance(last.get('metadata', {}), dict) or \
            last.get('apiVersion') != current.get('apiVersion'):
        return set()
    return {p for p in field_paths(last, keys=keys) if value_at(last, p) == value_at(current, p)}


def _last_applied_text(applied):
    """The last-applied annotation as the API server rewrites it: the applied configuration without it, as JSON
    with a final newline."""
    config = copy.deepcopy(applied)
    if isinstance((config.get('metadata') or {}).get('annotations'), dict):
        config['metadata']['annotations'].pop(LAST_APPLIED, None)
    text = json.dumps(config, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    return text.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026') + '\n'
