"""PATCH bodies: JSON patch (RFC 6902), merge patch (RFC 7386) and strategic merge patch for built-ins."""

import copy

import jsonpatch

JSON_PATCH = 'application/json-patch+json'
MERGE_PATCH = 'application/merge-patch+json'
STRATEGIC_PATCH = 'application/strategic-merge-patch+json'
APPLY_PATCH = 'application/apply-patch+yaml'

# Lists of built-in kinds merged item by item, by the field that names an item; other lists are replaced.
MERGE_KEYS = {'containers': 'name', 'initContainers': 'name', 'ephemeralContainers': 'name', 'volumes': 'name',
              'env': 'name', 'volumeMounts': 'mountPath', 'imagePullSecrets': 'name', 'conditions': 'type',
              'hostAliases': 'ip', 'volumeDevices': 'devicePath', 'ownerReferences': 'uid', 'subsets': None}
# `ports` is keyed by containerPort inside a container, by port elsewhere (a Service).
CONTAINER_LISTS = ('containers', 'initContainers', 'ephemeralContainers')
# Lists of scalars merged as sets.
SET_LISTS = ('finalizers',)


class PatchError(ValueError):
    """A patch the server cannot apply (422 Invalid, or 400 for a malformed one)."""


def json_patch(obj, operations):
    if not isinstance(operations, list):
        raise PatchError('a JSON patch is a list of operations')
    try:
        return jsonpatch.apply_patch(obj, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise PatchError(str(exc)) from None


def merge_patch(target, patch):
    """RFC 7386: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_key(field, parent):
    if field == 'ports':
        return 'containerPort' if parent in CONTAINER_LISTS else 'port'
    return MERGE_KEYS.get(field)


def object_meta_keys(field, parent):
    """Merge keys of a custom resource: its own lists are atomic, only its metadata has keyed lists."""
    return merge_key(field, parent) if parent == 'metadata' else None


def strategic_merge(target, patch, parent=None, keys=merge_key):
    """Strategic merge patch of a built-in object: like a merge patch, but lists with a merge key merge
    item by item (`$patch: delete` in an item removes it, `$patch: replace` replaces the whole list)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get('$patch') == 'replace':
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != '$patch'}
    if patch.get('$patch') == 'delete':
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith('$'):
            continue
        if key.startswith('$setElementOrder/') or key.startswith('$deleteFromPrimitiveList/'):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, key, parent, keys)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, key, keys)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    for key, values in patch.items():
        if key.startswith('$deleteFromPrimitiveList/'):
            name = key.split('/', 1)[1]
            result[name] = [v for v in result.get(name, []) if v not in values]
    return result


def _merge_list(current, patch, field, parent, keys):
    key = keys(field, parent)
    current = current if isinstance(current, list) else []
    if field in SET_LISTS and parent == 'metadata':
        return current + [v for v in patch if v not in current]
    if not key or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    if any(item.get('$patch') == 'replace' for item in patch):
        return [copy.deepcopy(item) for item in patch if item.get('$patch') != 'replace']
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if key not in item:
            raise PatchError('map: {0} does not contain declared merge key: {1}'.format(item, key))
        index = next((i for i, old in enumerate(merged) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get('$patch') == 'delete':
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(strategic_merge({}, item, field, keys))
        else:
            merged[index] = strategic_merge(merged[index], item, field, keys)
    return merged
