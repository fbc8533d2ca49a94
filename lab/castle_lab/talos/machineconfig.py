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


def strategic_merge(base, patch):
    """base with patch merged in (Talos's machine config merge); neither argument is changed."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value == DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = strategic_merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = out[key] + copy.deepcopy(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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
                   install_disk=DEFAULT_INSTALL_DISK, install_image=DEFAULT_INSTALL_IMAGE, dns_domain='cluster.local'):
    """The v1alpha1 document of a controlplane or worker node, Talos v1.11 defaults."""
    certs = bundle['certs']
    control_plane = machine_type == 'controlplane'

    def ca(name, with_key=control_plane):
        return {'crt': certs[name]['crt'], 'key': certs[name]['key'] if with_key else ''}
    images = _images(kubernetes_version)
    machine = {
        'type': machine_type, 'token': bundle['trustdinfo']['token'], 'ca': ca('os'), 'certSANs': [],
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
            'apiServer': {'image': images['kube-apiserver'], 'certSANs': [urlparse(endpoint).hostname or endpoint],
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
