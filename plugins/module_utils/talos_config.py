# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Machine config: patches merged as Talos merges them, and a node's own settings. PRIVATE to the collection.
Comparing configs for a diff is in talos_documents.

A patch is a strategic merge patch (one or more YAML documents) or a JSON 6902 list of operations, as
`talosctl --config-patch` takes them. Strategic merge follows Talos v1.11 (pkg/machinery/config/merge):
mappings merge key by key, lists append, zero values (empty string, 0, null) change nothing while false
does, a few lists are replaced or merged item by item on a key, and `$patch: delete` removes a key, a
list item or a document before the rest of the patch merges. Documents are told apart by apiVersion,
kind and name. JSON 6902 patches need a config of exactly one document.
"""

import copy

from ansible_collections.ephemeral.castle.plugins.module_utils.talos_documents import doc_identity
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_output import TalosError, parse_yaml_docs

# Lists a patch replaces instead of appending to (fields tagged merge:"replace" in v1alpha1_types.go).
REPLACED = frozenset([
    ('cluster', 'network', 'podSubnets'),
    ('cluster', 'network', 'serviceSubnets'),
    ('cluster', 'apiServer', 'auditPolicy'),
])
INTERFACES = ('machine', 'network', 'interfaces')
# Lists merged item by item: the field an item is matched on ('*' is any item of the list above).
KEYED = {
    ('machine', 'network', 'interfaces', '*', 'vlans'): 'vlanId',
    ('cluster', 'apiServer', 'admissionControl'): 'name',
}
IDENTITY_KEYS = frozenset(['version', 'kind', 'name'])
DELETE = '$patch'


# ------------------------------------------------------------------ strategic merge

def _is_zero(value):
    """What Talos's merge leaves alone: null, an empty string, a zero number (false is merged)."""
    if value is None or isinstance(value, bool):
        return value is None
    return value == '' or (isinstance(value, (int, float)) and value == 0)


def _device_match(devices, device):
    """Index of the interface a patch's device merges into: same `interface`, or else an equal
    `deviceSelector` (compared as Go compares the struct: a set `physical` is a pointer, never equal)."""
    if not isinstance(device, dict):
        return None
    name, selector = device.get('interface'), device.get('deviceSelector')
    for index, existing in enumerate(devices):
        if not isinstance(existing, dict):
            continue
        if name:
            if existing.get('interface') == name:
                return index
        elif selector is not None and isinstance(selector, dict) and 'physical' not in selector \
                and existing.get('deviceSelector') == selector:
            return index
    return None


def _keyed_match(items, item, key):
    if not isinstance(item, dict):
        return None
    wanted = item.get(key) or None
    for index, existing in enumerate(items):
        if isinstance(existing, dict) and (existing.get(key) or None) == wanted:
            return index
    return None


def _merge_list(base, patch, path):
    if path == INTERFACES or path in KEYED:
        merged = copy.deepcopy(base)
        for item in patch:
            index = _device_match(merged, item) if path == INTERFACES else _keyed_match(merged, item, KEYED[path])
            if index is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[index] = merge(merged[index], item, path + ('*',))
        return merged
    return copy.deepcopy(base) + copy.deepcopy(patch)


def merge(base, patch, path=()):
    """base with patch merged in, as Talos merges a patch into a config document; neither is changed."""
    if _is_zero(patch):
        return copy.deepcopy(base)
    if base is None:
        return copy.deepcopy(patch)
    if path in REPLACED:
        return copy.deepcopy(patch)
    if isinstance(patch, dict) and isinstance(base, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if merged.get(key) is None:
                if not _is_zero(value):
                    merged[key] = copy.deepcopy(value)
            else:
                merged[key] = merge(merged[key], value, path + (key,))
        return merged
    if isinstance(patch, list) and isinstance(base, list):
        return _merge_list(base, patch, path)
    return copy.deepcopy(patch)


# ------------------------------------------------------------------ $patch: delete

def _marked(value):
    return isinstance(value, dict) and value.get(DELETE) == 'delete'


def _path_text(path):
    return '.'.join(path)


def _take_deletes(node, path, in_list, found):
    """Remove the delete markers from a patch document, collecting what they delete: ('key', path) or
    ('item', path, key, value). True when the node itself goes (marked, or emptied by removals)."""
    if isinstance(node, dict):
        if _marked(node):
            if in_list:
                selector = next(((k, v) for k, v in node.items() if k != DELETE), None)
                if selector is None:
                    raise TalosError('no key:val found in sequence node for path {0}'.format(_path_text(path)))
                found.append(('item', path, selector[0], selector[1]))
            else:
                if any(part.startswith('[') for part in path):
                    raise TalosError("cannot delete an inner key in '{0}'".format(_path_text(path)))
                found.append(('key', path))
            return True
        for key in list(node):
            if _take_deletes(node[key], path + (key,), False, found):
                del node[key]
                if not node:
                    return True
    elif isinstance(node, list):
        index = 0
        while index < len(node):
            if _take_deletes(node[index], path + ('[{0}]'.format(index),), True, found):
                del node[index]
                if not node:
                    return True
                continue
            index += 1
    return False


def _apply_delete(doc, selector):
    """Delete what a selector names from doc (in place), as Talos applies a delete selector."""
    path = selector[1]
    target = doc
    for part in path[:-1]:
        if isinstance(target, list):
            return 'searching for complex paths in slices is not supported'
        if not isinstance(target, dict) or target.get(part) is None:
            return 'lookup failed'
        target = target[part]
    if selector[0] == 'key':
        if not isinstance(target, dict):
            return 'lookup failed'
        target.pop(path[-1], None)
        return None
    if not isinstance(target, list):
        return 'lookup failed'
    key, value = selector[2], selector[3]
    for index, item in enumerate(target):
        # Talos compares the item's field as a string; a field that is not a string never matches.
        if isinstance(item, dict) and isinstance(item.get(key), str) and isinstance(value, str) \
                and item[key] == value:
            del target[index]
            return None
    return 'lookup failed'


def _delete_from(docs, patch, selectors):
    """docs after a patch document's deletes; the whole document goes when the patch marks it."""
    identity = doc_identity(patch)
    where = next((i for i, doc in enumerate(docs) if doc_identity(doc) == identity), None)
    for selector in selectors:
        if not selector[1]:
            for key in ('apiVersion', 'kind'):
                if key not in patch:
                    raise TalosError('missing {0} in document for which $patch: delete is used'.format(key))
            if where is not None:
                del docs[where]
                where = None
            continue
        reason = _apply_delete(docs[where], selector) if where is not None else 'lookup failed'
        if reason:
            failed = "failed to delete path '{0}': {1}".format(_path_text(selector[1]), reason)
            if identity[2]:
                raise TalosError('named patch delete: document {0}/{1}: {2}'.format(identity[0], identity[1], failed))
            raise TalosError("patch delete: path '{0}' in document '{1}/{2}': {3}".format(
                _path_text(selector[1]), identity[0], identity[1], failed))
    return docs


def strategic_merge(docs, patch_docs):
    """Merge patch documents into config documents: each patch first deletes what it marks, then merges
    into the document with its identity; a document nobody has yet is added."""
    merged = [copy.deepcopy(d) for d in docs]
    for patch in patch_docs:
        if not isinstance(patch, dict):
            raise TalosError('a strategic merge patch must be a mapping, not {0}'.format(type(patch).__name__))
        original, patch, selectors = patch, copy.deepcopy(patch), []
        if _take_deletes(patch, (), False, selectors):
            patch = {}
        merged = _delete_from(merged, original, selectors)
        # A document left with nothing but its identity merges nothing.
        if set(patch) <= IDENTITY_KEYS or (selectors and set(patch) <= IDENTITY_KEYS | set(['apiVersion'])):
            continue
        identity = doc_identity(patch)
        for index, doc in enumerate(merged):
            if doc_identity(doc) == identity:
                merged[index] = merge(doc, patch)
                break
        else:
            merged.append(patch)
    return merged


# ------------------------------------------------------------------ JSON 6902

def _pointer(path):
    if path == '':
        return []
    if not path.startswith('/'):
        raise TalosError('JSON patch path {0!r} must start with /'.format(path))
    return [part.replace('~1', '/').replace('~0', '~') for part in path[1:].split('/')]


def _step(target, part, path):
    try:
        if isinstance(target, list):
            return target[int(part)]
        return target[part]
    except (KeyError, IndexError, ValueError, TypeError):
        raise TalosError('path {0} does not exist'.format(path))


def _parent(doc, parts, path):
    target = doc
    for part in parts[:-1]:
        target = _step(target, part, path)
    return target


def _get(doc, path):
    parts = _pointer(path)
    return _step(_parent(doc, parts, path), parts[-1], path) if parts else doc


def _remove(doc, path):
    parts = _pointer(path)
    if not parts:
        raise TalosError('cannot remove the whole document')
    target = _parent(doc, parts, path)
    try:
        if isinstance(target, list):
            return target.pop(int(parts[-1]))
        return target.pop(parts[-1])
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        raise TalosError('cannot remove {0}: it does not exist'.format(path))


def _add(doc, path, value):
    parts = _pointer(path)
    if not parts:
        raise TalosError('cannot replace the whole document')
    target = _parent(doc, parts, path)
    if isinstance(target, list):
        if parts[-1] == '-':
            target.append(value)
            return
        try:
            index = int(parts[-1])
        except ValueError:
            raise TalosError('path {0}: {1!r} is not a list index'.format(path, parts[-1]))
        if not 0 <= index <= len(target):
            raise TalosError('path {0}: index out of range'.format(path))
        target.insert(index, value)
    elif isinstance(target, dict):
        target[parts[-1]] = value
    else:
        raise TalosError('path {0} does not exist'.format(path))


def _operation(doc, number, op):
    if not isinstance(op, dict) or 'op' not in op or 'path' not in op:
        raise TalosError('operation {0} needs op and path: {1!r}'.format(number, op))
    kind, path = op['op'], op['path']
    if kind in ('add', 'replace', 'test') and 'value' not in op:
        raise TalosError('operation {0} ({1} {2}) needs a value'.format(number, kind, path))
    if kind == 'add':
        _add(doc, path, copy.deepcopy(op['value']))
    elif kind == 'remove':
        _remove(doc, path)
    elif kind == 'replace':
        _remove(doc, path)
        _add(doc, path, copy.deepcopy(op['value']))
    elif kind in ('move', 'copy'):
        if 'from' not in op:
            raise TalosError('operation {0} ({1} {2}) needs from'.format(number, kind, path))
        value = _remove(doc, op['from']) if kind == 'move' else copy.deepcopy(_get(doc, op['from']))
        _add(doc, path, value)
    elif kind == 'test':
        if _get(doc, path) != op['value']:
            raise TalosError('test failed at {0}'.format(path))
    else:
        raise TalosError('operation {0}: unknown op {1!r}'.format(number, kind))


def json_patch(docs, operations):
    """RFC 6902 operations on a copy of a single-document config, as Talos applies them."""
    if len(docs) != 1:
        raise TalosError('JSON6902 patches are not supported for multi-document machine configuration')
    doc = copy.deepcopy(docs[0])
    for number, op in enumerate(operations, 1):
        try:
            _operation(doc, number, op)
        except TalosError as exc:
            raise TalosError('failure applying rfc6902 patches to talos machine config: {0}'.format(exc))
    return [doc]


# ------------------------------------------------------------------ patches

def read_patch(patch):
    """A patch as Talos takes it: a mapping (strategic merge), a list of operations (JSON 6902), or
    text holding either, or @path of a file holding either. Returns ('strategic', docs) or ('json6902', ops)."""
    if isinstance(patch, str):
        text = patch
        if patch.startswith('@'):
            try:
                with open(patch[1:]) as handle:
                    text = handle.read()
            except (IOError, OSError) as exc:
                raise TalosError('patch file {0}: {1}'.format(patch[1:], exc))
        docs = parse_yaml_docs(text)
        if len(docs) == 1 and isinstance(docs[0], list):
            return 'json6902', docs[0]
        return 'strategic', docs
    if isinstance(patch, list):
        return 'json6902', patch
    if isinstance(patch, dict):
        return 'strategic', [patch]
    raise TalosError('a patch must be a mapping, a list of JSON patch operations or text, not {0}'.format(
        type(patch).__name__))


def apply_patches(docs, patches):
    """The config's documents after each patch in order; errors name the patch by its position."""
    for number, patch in enumerate(patches or [], 1):
        try:
            kind, body = read_patch(patch)
            docs = strategic_merge(docs, body) if kind == 'strategic' else json_patch(docs, body)
        except TalosError as exc:
            raise TalosError('patch {0}: {1}'.format(number, exc))
    return docs


# ------------------------------------------------------------------ a node's own settings

def node_patch(hostname=None, address=None, gateway=None, mac=None, interface=None, install_disk=None,
               install_image=None, vip=None, nameservers=None):
    """The strategic merge patch that makes a generic config one node's: hostname, a static address and
    default route on the node's network device (DHCP on it when the VIP comes without a static address),
    the shared control-plane VIP, nameservers, the install disk and image.

    The device is the one named `interface` when given, else the one with the node's MAC
    (`deviceSelector: {hardwareAddr: mac}`): Talos names links predictably (ens18 for a Proxmox VM's
    first virtio NIC), so a name like eth0 matches nothing unless the operator knows it."""
    machine, network = {}, {}
    if hostname:
        network['hostname'] = hostname
    device = {}
    if address:
        if '/' not in address:
            raise TalosError('address {0!r} needs a prefix length, for example 10.0.0.11/24'.format(address))
        device['addresses'] = [address]
    if gateway:
        device['routes'] = [{'network': '0.0.0.0/0', 'gateway': gateway}]
    if vip:
        device['vip'] = {'ip': vip}
        if not address:
            # A device named in the config takes DHCP only when asked to.
            device['dhcp'] = True
    if device:
        if interface:
            selected = [('interface', interface)]
        elif mac:
            selected = [('deviceSelector', {'hardwareAddr': mac.lower()})]
        else:
            raise TalosError('address, gateway and vip go on a network device: give the node its mac '
                             '(selected by deviceSelector.hardwareAddr) or name its interface')
        network['interfaces'] = [dict(selected + list(device.items()))]
    if nameservers:
        network['nameservers'] = list(nameservers)
    if network:
        machine['network'] = network
    install = {}
    if install_disk:
        install['disk'] = install_disk
    if install_image:
        install['image'] = install_image
    if install:
        machine['install'] = install
    return {'machine': machine} if machine else {}
