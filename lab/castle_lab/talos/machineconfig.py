"""`talosctl gen config`: machine configs and a talosconfig from a secrets bundle, with config patches.

Patches are Talos's two kinds: a strategic merge patch (a YAML/JSON mapping deep-merged into the
config: mappings merge, lists append, `$patch: delete` removes a key) or an RFC 6902 JSON patch (a
list of operations). Either is given inline or as `@file`.
"""

import copy
import json
from urllib.parse import urlparse

import jsonpatch
import yaml

from . import KUBERNETES_VERSION, secrets

OUTPUT_TYPES = ('controlplane', 'worker', 'talosconfig')
DEFAULT_INSTALL_DISK = '/dev/sda'
DEFAULT_INSTALL_IMAGE = 'ghcr.io/siderolabs/installer:latest'
DELETE = {'$patch': 'delete'}


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


# Lists Talos merges item by item, matched on the first of these keys an item has; '*' is any item.
MERGE_KEYS = {
    ('machine', 'network', 'interfaces'): ('interface', 'deviceSelector'),
    ('machine', 'network', 'interfaces', '*', 'vlans'): ('vlanId',),
    ('cluster', 'apiServer', 'admissionControl'): ('name',),
}
# Fields a patch replaces whole instead of merging.
REPLACED_WHOLE = frozenset((
    ('machine', 'network', 'nameservers'), ('cluster', 'network', 'podSubnets'),
    ('cluster', 'network', 'serviceSubnets'), ('cluster', 'apiServer', 'auditPolicy'),
))


def _without_markers(value):
    """A patch value as it lands in the config: without `$patch` keys or deleted items."""
    if isinstance(value, dict):
        return {k: _without_markers(v) for k, v in value.items() if k != '$patch' and v != DELETE}
    if isinstance(value, list):
        return [_without_markers(v) for v in value if v != DELETE]
    return copy.deepcopy(value)


def _matching_item(items, item, keys):
    """Index of the item of `items` with the same merge key as `item`, or None."""
    key = next((k for k in keys if isinstance(item, dict) and k in item), None)
    if key is None:
        return None
    return next((i for i, have in enumerate(items) if isinstance(have, dict) and have.get(key) == item[key]), None)


def _merge_list(base, patch, path):
    keys = MERGE_KEYS.get(path)
    if not keys:
        return copy.deepcopy(base) + _without_markers(patch)
    out = copy.deepcopy(base)
    for item in patch:
        index = _matching_item(out, item, keys)
        if index is None:
            out.append(_without_markers(item))
        elif isinstance(item, dict) and item.get('$patch') == 'delete':
            del out[index]
        else:
            out[index] = strategic_merge(out[index], item, path + ('*',))
    return out


def strategic_merge(base, patch, path=()):
    """base with patch merged in, as Talos merges machine config; neither argument is changed.

    Mappings merge key by key (`$patch: delete` removes a key or a keyed list item), lists append
    except the keyed ones (MERGE_KEYS), REPLACED_WHOLE fields and scalars are replaced."""
    if path in REPLACED_WHOLE:
        return _without_markers(patch)
    if isinstance(patch, dict) and isinstance(base, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if key == '$patch':
                continue
            if value == DELETE:
                out.pop(key, None)
            else:
                out[key] = strategic_merge(out.get(key), value, path + (key,))
        return out
    if isinstance(patch, list) and isinstance(base, list):
        return _merge_list(base, patch, path)
    return _without_markers(patch)


def _kind_key(document):
    return (document.get('apiVersion'), document.get('kind'), document.get('name'))


def apply_patches(documents, patches):
    """The config documents after each (kind, content) patch in order."""
    documents = copy.deepcopy(documents)
    for kind, content in patches:
        if kind == 'json6902':
            if len(documents) != 1:
                raise PatchError('JSON6902 patches are not supported for multi-document machine configuration')
            try:
                documents = [jsonpatch.apply_patch(documents[0], content)]
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
                raise PatchError('failed to apply JSON patch: {0}'.format(exc)) from None
            continue
        for doc in content:
            key = _kind_key(doc)
            match = next((i for i, have in enumerate(documents) if _kind_key(have) == key), None)
            if match is None:
                documents.append(copy.deepcopy(doc))
            else:
                documents[match] = strategic_merge(documents[match], doc)
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
                          'disablePodSecurityPolicy': True},
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
