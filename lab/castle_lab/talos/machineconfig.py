"""`talosctl gen config`: machine configs and a talosconfig from a secrets bundle, with config patches.

Patches are Talos's two kinds: a strategic merge patch (YAML documents merged into the config's
documents of the same apiVersion, kind and name: mappings merge, lists append except a few keyed or
replaced ones, unset values change nothing, `$patch: delete` removes a key, a list item or a document
first) or an RFC 6902 JSON patch (a list of operations, for a single-document config only). Either is
given inline or as `@file`.
"""

import copy
import json
from urllib.parse import urlparse

import jsonpatch
import yaml

from ..kube.api.admission import TALOS_DEFAULT as POD_SECURITY_DEFAULT
from . import KUBERNETES_VERSION, TALOS_VERSION, secrets

OUTPUT_TYPES = ('controlplane', 'worker', 'talosconfig')
DEFAULT_INSTALL_DISK = '/dev/sda'
# A release talosctl pins the installer to its own version (the CLI reference, built without a release tag,
# shows :latest).
DEFAULT_INSTALL_IMAGE = 'ghcr.io/siderolabs/installer:{0}'.format(TALOS_VERSION)


class PatchError(Exception):
    """A config patch that cannot be read or applied."""


def read_patch(argument):
    """The patch an argument names: inline YAML/JSON, or `@file`."""
    text = argument
    if argument.startswith('@'):
        try:
            with open(argument[1:], encoding='utf-8') as handle:
                text = handle.read()
        except OSError as exc:
            raise PatchError('failed to read patch {0}: {1}'.format(argument[1:], exc.strerror)) from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise PatchError('failed to load patch {0!r}: {1}'.format(argument, exc)) from None
    if len(documents) == 1 and isinstance(documents[0], list):
        return ('json6902', documents[0])
    if not documents or not all(isinstance(doc, dict) for doc in documents):
        raise PatchError('failed to load patch {0!r}: neither a strategic merge patch nor a JSON patch'.format(argument))
    return ('merge', documents)


# Fields a patch replaces instead of merging (tagged merge:"replace" in v1alpha1_types.go).
REPLACED_WHOLE = frozenset((
    ('cluster', 'network', 'podSubnets'), ('cluster', 'network', 'serviceSubnets'),
    ('cluster', 'apiServer', 'auditPolicy'),
))
INTERFACES = ('machine', 'network', 'interfaces')
# Lists whose items merge with the item of the same key (the types' Merge methods); '*' is any item.
ITEM_KEYS = {('machine', 'network', 'interfaces', '*', 'vlans'): 'vlanId',
             ('cluster', 'apiServer', 'admissionControl'): 'name'}


def _unset(value):
    """A value Talos's merge skips: null, '' or 0 (false is a value: the config's booleans are pointers)."""
    return value is None or (not isinstance(value, bool) and value in ('', 0))


def _same_device(have, device):
    """NetworkDeviceList.Merge: a named device matches on its name, else on an equal selector (a Go struct
    compare, where a set `physical` is a *bool compared by address, so it never matches)."""
    if not isinstance(have, dict):
        return False
    if device.get('interface'):
        return have.get('interface') == device['interface']
    selector = device.get('deviceSelector')
    return isinstance(selector, dict) and 'physical' not in selector and have.get('deviceSelector') == selector


def _merge_items(base, patch, path):
    out = copy.deepcopy(base)
    for item in patch:
        if not isinstance(item, dict):
            out.append(copy.deepcopy(item))
            continue
        if path == INTERFACES:
            index = next((i for i, have in enumerate(out) if _same_device(have, item)), None)
        else:
            key = ITEM_KEYS[path]
            index = next((i for i, have in enumerate(out)
                          if isinstance(have, dict) and (have.get(key) or None) == (item.get(key) or None)), None)
        if index is None:
            out.append(copy.deepcopy(item))
        else:
            out[index] = strategic_merge(out[index], item, path + ('*',))
    return out


def strategic_merge(base, patch, path=()):
    """base with patch merged in, as Talos merges a patch without delete markers; neither is changed.

    Mappings merge key by key, lists append except the keyed ones and REPLACED_WHOLE fields, scalars
    replace, and unset values (null, '', 0) leave the base as it is."""
    if _unset(patch):
        return copy.deepcopy(base)
    if base is None or path in REPLACED_WHOLE:
        return copy.deepcopy(patch)
    if isinstance(patch, dict) and isinstance(base, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if out.get(key) is not None:
                out[key] = strategic_merge(out[key], value, path + (key,))
            elif not _unset(value):
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(patch, list) and isinstance(base, list):
        if path == INTERFACES or path in ITEM_KEYS:
            return _merge_items(base, patch, path)
        return copy.deepcopy(base) + copy.deepcopy(patch)
    return copy.deepcopy(patch)


def _deletes(document):
    """Take the `$patch: delete` markers out of a patch document (in place), as Talos's decoder does.

    Returns the selectors, (path, key, value) each (key and value pick a list item; None deletes the path),
    and whether the whole document went (marked itself, or emptied by the markers taken out)."""
    found = []

    def walk(value, where, inside):
        if isinstance(value, dict):
            if value.get('$patch') == 'delete':
                if inside == 'list':
                    pair = next(((k, v) for k, v in value.items() if k != '$patch'), None)
                    if pair is None:
                        raise PatchError('no key:val found in sequence node for path {0}'.format('.'.join(where)))
                    found.append((where, pair[0], pair[1]))
                else:
                    if any(part.startswith('[') for part in where):
                        raise PatchError("cannot delete an inner key in '{0}'".format('.'.join(where)))
                    found.append((where, None, None))
                return True
            for key in list(value):
                if walk(value[key], where + (key,), 'mapping'):
                    del value[key]
                    if not value:
                        return True
        elif isinstance(value, list):
            i = 0
            while i < len(value):
                if walk(value[i], where + ('[{0}]'.format(i),), 'list'):
                    del value[i]
                    if not value:
                        return True
                else:
                    i += 1
        return False
    gone = walk(document, (), 'document')
    return found, gone


def _delete(document, path, key, value):
    """Apply one delete selector to a document in place; the reason it failed, or None."""
    target = document
    for part in path[:-1]:
        if isinstance(target, list):
            return 'searching for complex paths in slices is not supported'
        if not isinstance(target, dict) or target.get(part) is None:
            return 'lookup failed'
        target = target[part]
    if key is None:
        if not isinstance(target, dict):
            return 'lookup failed'
        target.pop(path[-1], None)
        return None
    if not isinstance(target, list):
        return 'lookup failed'
    # The item's field is compared as a Go string: only string fields can match.
    for i, item in enumerate(target):
        if isinstance(item, dict) and isinstance(item.get(key), str) and isinstance(value, str) and item[key] == value:
            del target[i]
            return None
    return 'lookup failed'


def _kind_key(document):
    """Document identity (the decoder's documentID): apiVersion, kind (v1alpha1 for the legacy document), name."""
    return (document.get('apiVersion') or '', document.get('kind') or 'v1alpha1', document.get('name') or '')


def _merge_document(documents, patch):
    original, patch = patch, copy.deepcopy(patch)
    selectors, gone = _deletes(patch)
    key = _kind_key(original)
    match = next((i for i, have in enumerate(documents) if _kind_key(have) == key), None)
    for path, item_key, item_value in selectors:
        if not path:
            for field in ('apiVersion', 'kind'):
                if field not in original:
                    raise PatchError('missing {0} in document for which $patch: delete is used'.format(field))
            if match is not None:
                del documents[match]
                match = None
            continue
        reason = 'lookup failed' if match is None else _delete(documents[match], path, item_key, item_value)
        if reason:
            where = '.'.join(path)
            failed = "failed to delete path '{0}': {1}".format(where, reason)
            if key[2]:
                raise PatchError('named patch delete: document {0}/{1}: {2}'.format(key[0], key[1], failed))
            raise PatchError("patch delete: path '{0}' in document '{1}/{2}': {3}".format(where, key[0], key[1], failed))
    rest = set(() if gone else patch)
    if rest <= {'version', 'kind', 'name'} or (selectors and rest <= {'version', 'kind', 'name', 'apiVersion'}):
        return
    if match is None:
        documents.append(patch)
    else:
        documents[match] = strategic_merge(documents[match], patch)


def apply_patches(documents, patches):
    """The config documents after each (kind, content) patch in order (configpatcher.Apply)."""
    documents = copy.deepcopy(documents)
    for kind, content in patches:
        if kind == 'json6902':
            if len(documents) != 1:
                raise PatchError('JSON6902 patches are not supported for multi-document machine configuration')
            try:
                documents = [jsonpatch.apply_patch(documents[0], content)]
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
                raise PatchError('failure applying rfc6902 patches to talos machine config: {0}'.format(exc)) from None
            continue
        for doc in content:
            _merge_document(documents, doc)
    return documents


def dump_documents(documents):
    return '---\n'.join(yaml.safe_dump(doc, sort_keys=False) for doc in documents)


def _images(version):
    return {name: 'registry.k8s.io/{0}:v{1}'.format(name, version)
            for name in ('kube-apiserver', 'kube-controller-manager', 'kube-proxy', 'kube-scheduler')}


def machine_config(bundle, machine_type, cluster_name, endpoint, kubernetes_version=KUBERNETES_VERSION,
                   install_disk=DEFAULT_INSTALL_DISK, install_image=DEFAULT_INSTALL_IMAGE, dns_domain='cluster.local',
                   additional_sans=()):
    """The v1alpha1 document of a controlplane or worker node, Talos v1.11 defaults."""
    certs = bundle['certs']
    control_plane = machine_type == 'controlplane'

    def ca(name, with_key=control_plane):
        return {'crt': certs[name]['crt'], 'key': certs[name]['key'] if with_key else ''}
    images = _images(kubernetes_version)
    machine = {
        'type': machine_type, 'token': bundle['trustdinfo']['token'], 'ca': ca('os'),
        'certSANs': list(additional_sans),
        'kubelet': {'image': 'ghcr.io/siderolabs/kubelet:v{0}'.format(kubernetes_version),
                    'defaultRuntimeSeccompProfileEnabled': True, 'disableManifestsDirectory': True},
        'network': {},
        'install': {'disk': install_disk, 'image': install_image, 'wipe': False},
        'features': {'rbac': True, 'stableHostname': True, 'apidCheckExtKeyUsage': True, 'diskQuotaSupport': True,
                     'kubePrism': {'enabled': True, 'port': 7445},
                     'hostDNS': {'enabled': True, 'forwardKubeDNSToHost': True}},
    }
    if control_plane:
        machine['nodeLabels'] = {'node.kubernetes.io/exclude-from-external-load-balancers': ''}
    cluster = {
        'id': bundle['cluster']['id'], 'secret': bundle['cluster']['secret'],
        'controlPlane': {'endpoint': endpoint}, 'clusterName': cluster_name,
        'network': {'dnsDomain': dns_domain, 'podSubnets': ['10.244.0.0/16'], 'serviceSubnets': ['10.96.0.0/12']},
        'token': bundle['secrets']['bootstraptoken'], 'ca': ca('k8s'),
        'discovery': {'enabled': True, 'registries': {'kubernetes': {'disabled': True}, 'service': {}}},
    }
    if control_plane:
        cluster.update({
            'secretboxEncryptionSecret': bundle['secrets']['secretboxencryptionsecret'],
            'aggregatorCA': ca('k8saggregator'), 'serviceAccount': {'key': certs['k8sserviceaccount']['key']},
            'apiServer': {'image': images['kube-apiserver'],
                          'certSANs': [endpoint_host(endpoint)] + [s for s in additional_sans if s != endpoint_host(endpoint)],
                          'disablePodSecurityPolicy': True,
                          'admissionControl': [{'name': 'PodSecurity', 'configuration': copy.deepcopy(
                              POD_SECURITY_DEFAULT)}]},
            'controllerManager': {'image': images['kube-controller-manager']},
            'proxy': {'image': images['kube-proxy']}, 'scheduler': {'image': images['kube-scheduler']},
            'etcd': {'ca': ca('etcd')}, 'extraManifests': [], 'inlineManifests': []})
    return {'version': 'v1alpha1', 'debug': False, 'machine': machine, 'cluster': cluster}


def talosconfig(bundle, cluster_name, endpoints):
    """A talosconfig with one context named after the cluster: endpoints, OS CA and an admin certificate."""
    crt, key = secrets.admin_client(bundle)
    return {'context': cluster_name,
            'contexts': {cluster_name: {'endpoints': list(endpoints), 'ca': bundle['certs']['os']['crt'],
                                        'crt': crt, 'key': key}}}


def endpoint_host(endpoint):
    return urlparse(endpoint).hostname or endpoint


def generate(bundle, cluster_name, endpoint, patches=(), patches_control_plane=(), patches_worker=(), **options):
    """{output type: text} for controlplane, worker and talosconfig."""
    out = {}
    for machine_type, specific in (('controlplane', patches_control_plane), ('worker', patches_worker)):
        documents = [machine_config(bundle, machine_type, cluster_name, endpoint, **options)]
        documents = apply_patches(documents, list(patches) + list(specific))
        out[machine_type] = dump_documents(documents)
    out['talosconfig'] = yaml.safe_dump(talosconfig(bundle, cluster_name, [endpoint_host(endpoint)]), sort_keys=False)
    return out


def config_json(text):
    """A config's documents as JSON-ready data (for `get machineconfig -o json`)."""
    return json.loads(json.dumps(list(yaml.safe_load_all(text))))
