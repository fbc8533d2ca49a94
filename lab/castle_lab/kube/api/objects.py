"""What the API server does to objects: create, read, update, patch, apply and delete, with the server's
defaults, validation, resourceVersions, generations and managedFields."""

import base64
import binascii
import copy
import datetime
import itertools
import re
import uuid

from . import apply as ssa, errors, patch as patches, rbac, schema
from .errors import ApiError
from .registry import Registry
from .store import Store

DEFAULT_NAMESPACES = ('default', 'kube-system', 'kube-public', 'kube-node-lease')
# The one node the emulated workloads' pods run on.
NODE = 'castle-lab-node'
DNS_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
DNS_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
# Built-ins whose metadata.generation counts spec changes; every custom resource does too.
GENERATION_KINDS = ('Deployment', 'DaemonSet', 'StatefulSet', 'CustomResourceDefinition')
CRD_FINALIZER = 'customresourcecleanup.apiextensions.k8s.io'
ACCESS_MODES = ('ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOnce', 'ReadWriteOncePod')
SERVER_METADATA = ('uid', 'creationTimestamp', 'resourceVersion', 'generation', 'managedFields',
                   'deletionTimestamp', 'selfLink')


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _content(obj):
    """An object as far as a no-op write is concerned: field ownership counts, its timestamps do not."""
    stripped = copy.deepcopy(obj)
    meta = stripped.get('metadata', {})
    meta.pop('resourceVersion', None)
    entries = [dict(e, time=None) for e in meta.get('managedFields') or []]
    meta['managedFields'] = sorted(entries, key=lambda e: (e['manager'], e['operation'], e.get('subresource', '')))
    return stripped


def _keys(rtype):
    """How lists of this type merge: by the built-ins' merge keys; for custom resources by the keys of
    their `x-kubernetes-list-type: map` lists, all others atomic."""
    if not rtype.crd:
        return patches.merge_key
    return lambda field, parent: patches.object_meta_keys(field, parent) or rtype.list_keys.get((field, parent))


def _spec_part(obj):
    return {k: v for k, v in obj.items() if k not in ('metadata', 'status', 'apiVersion', 'kind')}


class KubeApi:
    """The API's objects and the rules every write follows. Callers run on one event loop."""

    def __init__(self, signer=None, ca_pem='', seed_node=True):
        self.ca_pem = ca_pem
        self.registry = Registry()
        self.store = Store()
        self.signer = signer
        self.cluster_ips = itertools.count(10)
        namespaces = self.registry.get('', 'v1', 'namespaces')
        for name in DEFAULT_NAMESPACES:
            self.create(namespaces, None, {'metadata': {'name': name}}, 'kube-apiserver')
        rbac.seed(self)
        if seed_node:  # a cluster whose nodes register themselves (Talos) starts without one
            self._seed_node()

    def _seed_node(self):
        nodes = self.registry.get('', 'v1', 'nodes')
        node = self.create(nodes, None, {'metadata': {'name': NODE, 'labels': {
            'kubernetes.io/hostname': NODE, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64',
            'node-role.kubernetes.io/control-plane': ''}}}, 'kubelet')
        started = now()
        node['status'] = {
            'addresses': [{'type': 'InternalIP', 'address': '10.0.0.1'}, {'type': 'Hostname', 'address': NODE}],
            'capacity': {'cpu': '4', 'memory': '8Gi', 'pods': '110'},
            'allocatable': {'cpu': '4', 'memory': '8Gi', 'pods': '110'},
            'conditions': [{'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady',
                            'message': 'kubelet is posting ready status', 'lastHeartbeatTime': started,
                            'lastTransitionTime': started}],
            'nodeInfo': {'kubeletVersion': 'v1.35.0', 'containerRuntimeVersion': 'containerd://2.1.0',
                         'operatingSystem': 'linux', 'architecture': 'amd64', 'osImage': 'castle-lab',
                         'kernelVersion': '', 'kubeProxyVersion': '', 'machineID': '', 'systemUUID': '',
                         'bootID': ''}}
        self.replace(nodes, None, NODE, node, 'kubelet', subresource='status')

    # reads

    def get(self, rtype, namespace, name):
        obj = self.store.get(rtype.key, namespace if rtype.namespaced else None, name)
        if obj is None:
            raise errors.not_found(rtype, name)
        return self.served_as(rtype, obj)

    @staticmethod
    def served_as(rtype, obj):
        obj = copy.deepcopy(obj)
        obj['apiVersion'], obj['kind'] = rtype.group_version, rtype.kind
        return obj

    def namespace_of(self, name):
        return self.store.get(('', 'namespaces'), None, name)

    # writes

    def create(self, rtype, namespace, body, manager, dry_run=False, strict=False):
        obj = copy.deepcopy(body)
        meta = obj.setdefault('metadata', {})
        if not meta.get('name') and meta.get('generateName'):
            meta['name'] = meta['generateName'] + uuid.uuid4().hex[:5]
        name = meta.get('name') or ''
        if not name:
            raise errors.invalid(rtype, '', [('metadata.name', 'Required value: name or generateName is required',
                                              'FieldValueRequired')])
        if rtype.namespaced:
            if meta.get('namespace') and namespace and meta['namespace'] != namespace:
                raise errors.bad_request('the namespace of the provided object does not match the namespace sent '
                                         'on the request')
            namespace = namespace or meta.get('namespace') or 'default'
            meta['namespace'] = namespace
            ns = self.namespace_of(namespace)
            if ns is None:
                raise errors.not_found(self.registry.get('', 'v1', 'namespaces'), namespace)
            if ns['metadata'].get('deletionTimestamp'):
                raise ApiError(403, 'Forbidden', '{0} "{1}" is forbidden: unable to create new content in namespace '
                               '{2} because it is being terminated'.format(rtype.plural, name, namespace),
                               {'name': name, 'kind': rtype.plural})
        else:
            meta.pop('namespace', None)
        if self.store.get(rtype.key, namespace if rtype.namespaced else None, name) is not None:
            raise errors.already_exists(rtype, name)
        for key in SERVER_METADATA:
            meta.pop(key, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        if rtype.has_status and rtype.kind != 'Namespace':
            obj.pop('status', None)
        self._prepare(rtype, obj, None, strict)
        if self._tracks_generation(rtype):
            meta['generation'] = 1
        ssa.record_update(None, obj, manager, rtype.group_version, now(), keys=_keys(rtype))
        if not obj['metadata']['managedFields']:
            obj['metadata'].pop('managedFields')
        return self._commit(rtype, obj, dry_run)

    def replace(self, rtype, namespace, name, body, manager, subresource='', dry_run=False, strict=False):
        old = self._existing(rtype, namespace, name)
        given_version = (body.get('metadata') or {}).get('resourceVersion')
        if given_version and given_version != old['metadata']['resourceVersion']:
            raise errors.conflict(rtype, name)
        if (body.get('metadata') or {}).get('name', name) != name:
            raise errors.bad_request('the name of the object ({0}) does not match the name on the URL ({1})'.format(
                body['metadata']['name'], name))
        return self._update(rtype, old, copy.deepcopy(body), manager, subresource, dry_run, strict)

    def patch(self, rtype, namespace, name, body, content_type, manager, subresource='', dry_run=False,
              force=False, strict=False):
        """Returns (object, created): an apply patch creates what is missing."""
        current = self.store.get(rtype.key, namespace if rtype.namespaced else None, name)
        if content_type == patches.APPLY_PATCH:
            if not manager:
                raise errors.bad_request('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                                         'is required for apply patch')
            if not isinstance(body, dict):
                raise errors.bad_request('apply patch must be an object')
            return self._apply(rtype, namespace, name, current, body, manager, subresource, dry_run, force, strict)
        if current is None:
            raise errors.not_found(rtype, name)
        old = self.served_as(rtype, current)
        try:
            if content_type == patches.JSON_PATCH:
                new = patches.json_patch(old, body)
            elif content_type == patches.MERGE_PATCH:
                new = patches.merge_patch(old, body)
            elif content_type == patches.STRATEGIC_PATCH:
                if rtype.crd:
                    raise ApiError(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - '
                                   'accepted media types include: application/json-patch+json, '
                                   'application/merge-patch+json, application/apply-patch+yaml')
                new = patches.strategic_merge(old, body)
            else:
                raise ApiError(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - '
                               'accepted media types include: application/json-patch+json, application/merge-patch+json, '
                               'application/apply-patch+yaml, application/strategic-merge-patch+json')
        except patches.PatchError as exc:
            raise ApiError(422, 'Invalid', str(exc)) from None
        if not isinstance(new, dict):
            raise errors.bad_request('the patch does not produce an object')
        given_version = (new.get('metadata') or {}).get('resourceVersion')
        if given_version and given_version != old['metadata']['resourceVersion']:
            raise errors.conflict(rtype, name)
        return self._update(rtype, old, new, manager, subresource, dry_run, strict), False

    def _apply(self, rtype, namespace, name, current, body, manager, subresource, dry_run, force, strict):
        meta = body.get('metadata') or {}
        if meta.get('name') and meta['name'] != name:
            raise errors.bad_request('the name of the object ({0}) does not match the name on the URL ({1})'.format(
                meta['name'], name))
        if (body.get('apiVersion'), body.get('kind')) != (rtype.group_version, rtype.kind):
            raise errors.bad_request('the API version in the data ({0}) does not match the expected API version '
                                     '({1})'.format(body.get('apiVersion'), rtype.group_version))
        old = self.served_as(rtype, current) if current is not None else None
        try:
            merged = ssa.server_side_apply(old, body, manager, rtype.group_version, now(), force, _keys(rtype))
        except ssa.ApplyConflict as exc:
            causes = [{'reason': 'FieldManagerConflict', 'message': 'conflict with "{0}": {1}'.format(m, path),
                       'field': path} for m, path in exc.conflicts]
            message = 'Apply failed with {0} conflict{1}: {2}'.format(
                len(causes), 's' if len(causes) > 1 else '', '\n'.join(c['message'] for c in causes))
            raise ApiError(409, 'Conflict', message, {'causes': causes}) from None
        if old is None:
            merged['metadata'].update(name=name, namespace=namespace)
            managed = merged['metadata'].pop('managedFields')
            created = self.create(rtype, namespace, merged, manager, dry_run=True, strict=strict)
            created['metadata']['managedFields'] = managed
            return self._commit(rtype, created, dry_run), True
        if meta.get('resourceVersion') and meta['resourceVersion'] != old['metadata']['resourceVersion']:
            raise errors.conflict(rtype, name)
        return self._update(rtype, old, merged, manager, subresource, dry_run, strict, applied=True), False

    def _existing(self, rtype, namespace, name):
        current = self.store.get(rtype.key, namespace if rtype.namespaced else None, name)
        if current is None:
            raise errors.not_found(rtype, name)
        return self.served_as(rtype, current)

    def _update(self, rtype, old, new, manager, subresource, dry_run, strict, applied=False):
        new['apiVersion'], new['kind'] = rtype.group_version, rtype.kind
        meta = new.setdefault('metadata', {})
        for key in ('name', 'namespace', 'uid', 'creationTimestamp', 'deletionTimestamp', 'generation'):
            if key in old['metadata']:
                meta[key] = old['metadata'][key]
            else:
                meta.pop(key, None)
        if not applied:
            meta['managedFields'] = old['metadata'].get('managedFields', [])
        if subresource == 'status':
            new = dict(copy.deepcopy(old), status=new.get('status'))
            if new['status'] is None:
                new.pop('status')
            meta = new['metadata']
        elif rtype.has_status and rtype.kind != 'Namespace':
            # The main endpoint ignores status; /status is where it changes.
            new.pop('status', None)
            if 'status' in old:
                new['status'] = copy.deepcopy(old['status'])
        self._prepare(rtype, new, old, strict)
        if self._tracks_generation(rtype) and _spec_part(new) != _spec_part(old):
            meta['generation'] = old['metadata'].get('generation', 1) + 1
        if _content(new) == _content(old):
            return old
        if not applied:
            ssa.record_update(old, new, manager, rtype.group_version, now(), subresource, _keys(rtype))
        if meta.get('deletionTimestamp') and not meta.get('finalizers') and rtype.kind != 'Namespace':
            if dry_run:
                return new
            self.store.delete(rtype.key, meta.get('namespace', ''), meta['name'])
            return new
        return self._commit(rtype, new, dry_run)

    def _commit(self, rtype, obj, dry_run):
        if not obj['metadata'].get('managedFields'):
            obj['metadata'].pop('managedFields', None)
        if dry_run:
            obj['metadata'].setdefault('resourceVersion', self.store.resource_version)
            return obj
        return self.served_as(rtype, self.store.put(rtype.key, self._stored(rtype, obj)))

    @staticmethod
    def _stored(rtype, obj):
        stored = copy.deepcopy(obj)
        stored['apiVersion'], stored['kind'] = rtype.group_version, rtype.kind
        return stored

    def delete(self, rtype, namespace, name, dry_run=False, preconditions=None):
        old = self._existing(rtype, namespace, name)
        preconditions = preconditions or {}
        if preconditions.get('uid') and preconditions['uid'] != old['metadata']['uid']:
            raise errors.conflict(rtype, name, 'Precondition failed: UID in precondition: {0}, UID in object meta: '
                                  '{1}'.format(preconditions['uid'], old['metadata']['uid']))
        if preconditions.get('resourceVersion') and preconditions['resourceVersion'] != old['metadata']['resourceVersion']:
            raise errors.conflict(rtype, name)
        if dry_run:
            return old, True
        if rtype.kind == 'Namespace' or old['metadata'].get('finalizers'):
            if old['metadata'].get('deletionTimestamp'):
                return old, False
            old['metadata']['deletionTimestamp'] = now()
            old['metadata']['deletionGracePeriodSeconds'] = 0
            if rtype.kind == 'Namespace':
                old['status'] = {'phase': 'Terminating'}
            return self.served_as(rtype, self.store.put(rtype.key, self._stored(rtype, old))), False
        self.store.delete(rtype.key, namespace if rtype.namespaced else None, name)
        return old, True

    # server-side rules per kind

    def _tracks_generation(self, rtype):
        return bool(rtype.crd) or rtype.kind in GENERATION_KINDS

    def _prepare(self, rtype, obj, old, strict):
        """Defaults and validation of one kind; raises ApiError 422 naming the field."""
        name = obj['metadata']['name']
        pattern = DNS_LABEL if rtype.kind in ('Namespace', 'Service') else DNS_SUBDOMAIN
        if rtype.group == 'rbac.authorization.k8s.io':
            # RBAC names only have to be valid path segments.
            if name in ('.', '..') or '/' in name or '%' in name:
                raise errors.invalid(rtype, name, [('metadata.name', 'Invalid value: "{0}": may not contain '
                                                    '\'/\' or \'%\''.format(name), 'FieldValueInvalid')])
        elif old is None and (len(name) > (63 if pattern is DNS_LABEL else 253) or not pattern.match(name)):
            raise errors.invalid(rtype, name, [('metadata.name', 'Invalid value: "{0}": a lowercase RFC 1123 {1} '
                                                'must consist of lower case alphanumeric characters, \'-\' or \'.\', '
                                                'and must start and end with an alphanumeric character'.format(
                                                    name, 'label' if pattern is DNS_LABEL else 'subdomain'),
                                                'FieldValueInvalid')])
        for field in ('labels', 'annotations'):
            values = obj['metadata'].get(field) or {}
            bad = [k for k, v in values.items() if not isinstance(v, str)]
            if bad:
                raise errors.invalid(rtype, name, [('metadata.{0}'.format(field), 'Invalid value: {0!r}: must be '
                                                    'a string'.format(bad[0]), 'FieldValueTypeInvalid')])
        prepare = getattr(self, '_prepare_' + rtype.kind.lower(), None)
        if rtype.crd:
            self._prepare_custom(rtype, obj, strict)
        elif prepare:
            prepare(rtype, obj, old)

    def _prepare_namespace(self, rtype, obj, old):
        obj.setdefault('spec', {})['finalizers'] = ['kubernetes']
        if old is None:
            obj['status'] = {'phase': 'Active'}
        else:
            obj['status'] = old.get('status', {'phase': 'Active'})
        obj['metadata'].setdefault('labels', {})['kubernetes.io/metadata.name'] = obj['metadata']['name']

    def _prepare_configmap(self, rtype, obj, old):
        for field in ('data', 'binaryData'):
            for key, value in (obj.get(field) or {}).items():
                if not isinstance(value, str):
                    raise errors.invalid(rtype, obj['metadata']['name'], [(
                        '{0}[{1}]'.format(field, key), 'Invalid value: must be a string', 'FieldValueTypeInvalid')])

    def _prepare_secret(self, rtype, obj, old):
        data = obj.get('data') or {}
        for key, value in data.items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise errors.bad_request('illegal base64 data in data[{0}]'.format(key)) from None
        for key, value in (obj.pop('stringData', None) or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        if data:
            obj['data'] = data
        obj.setdefault('type', 'Opaque')
        if old is not None and old.get('type') != obj['type']:
            raise errors.invalid(rtype, obj['metadata']['name'], [('type', 'Invalid value: "{0}": field is '
                                                                   'immutable'.format(obj['type']), 'FieldValueInvalid')])

    def _prepare_service(self, rtype, obj, old):
        spec = obj.setdefault('spec', {})
        spec.setdefault('type', 'ClusterIP')
        if old is not None and old.get('spec', {}).get('clusterIP'):
            spec.setdefault('clusterIP', old['spec']['clusterIP'])
        if not spec.get('clusterIP'):
            address = next(self.cluster_ips)
            spec['clusterIP'] = '10.96.{0}.{1}'.format(address // 250, address % 250 + 1)
        spec.setdefault('clusterIPs', [spec['clusterIP']])
        spec.setdefault('sessionAffinity', 'None')
        for port in spec.get('ports') or []:
            port.setdefault('protocol', 'TCP')
            port.setdefault('targetPort', port.get('port'))
        obj.setdefault('status', {'loadBalancer': {}})

    def _prepare_workload(self, rtype, obj):
        spec = obj.setdefault('spec', {})
        name = obj['metadata']['name']
        selector = (spec.get('selector') or {}).get('matchLabels')
        labels = ((spec.get('template') or {}).get('metadata') or {}).get('labels') or {}
        causes = []
        if not spec.get('selector'):
            causes.append(('spec.selector', 'Required value', 'FieldValueRequired'))
        elif selector and any(labels.get(k) != v for k, v in selector.items()):
            causes.append(('spec.template.metadata.labels', 'Invalid value: {0}: `selector` does not match template '
                           '`labels`'.format(labels), 'FieldValueInvalid'))
        containers = ((spec.get('template') or {}).get('spec') or {}).get('containers')
        if not containers:
            causes.append(('spec.template.spec.containers', 'Required value', 'FieldValueRequired'))
        for index, container in enumerate(containers or []):
            if not container.get('image'):
                causes.append(('spec.template.spec.containers[{0}].image'.format(index), 'Required value',
                               'FieldValueRequired'))
        if causes:
            raise errors.invalid(rtype, name, causes)
        spec.setdefault('revisionHistoryLimit', 10)

    def _prepare_deployment(self, rtype, obj, old):
        self._prepare_workload(rtype, obj)
        spec = obj['spec']
        spec.setdefault('replicas', 1)
        spec.setdefault('progressDeadlineSeconds', 600)
        spec.setdefault('strategy', {'type': 'RollingUpdate', 'rollingUpdate': {'maxSurge': '25%',
                                                                                 'maxUnavailable': '25%'}})

    def _prepare_statefulset(self, rtype, obj, old):
        self._prepare_workload(rtype, obj)
        obj['spec'].setdefault('replicas', 1)
        obj['spec'].setdefault('podManagementPolicy', 'OrderedReady')
        obj['spec'].setdefault('updateStrategy', {'type': 'RollingUpdate', 'rollingUpdate': {'partition': 0}})

    def _prepare_daemonset(self, rtype, obj, old):
        self._prepare_workload(rtype, obj)
        obj['spec'].setdefault('updateStrategy', {'type': 'RollingUpdate', 'rollingUpdate': {
            'maxUnavailable': 1, 'maxSurge': 0}})

    def _prepare_persistentvolumeclaim(self, rtype, obj, old):
        spec = obj.get('spec') or {}
        modes = spec.get('accessModes') or []
        storage = ((spec.get('resources') or {}).get('requests') or {}).get('storage')
        causes = []
        if not modes:
            causes.append(('spec.accessModes', 'Required value: at least 1 access mode is required',
                           'FieldValueRequired'))
        for mode in modes:
            if mode not in ACCESS_MODES:
                causes.append(('spec.accessModes', 'Unsupported value: "{0}": supported values: {1}'.format(
                    mode, ', '.join('"{0}"'.format(m) for m in ACCESS_MODES)), 'FieldValueNotSupported'))
        if storage is None:
            causes.append(('spec.resources[storage]', 'Required value', 'FieldValueRequired'))
        elif re.match(r'^\+?0*(\.0*)?([a-zA-Z]*)$', str(storage)):
            causes.append(('spec.resources[storage]', 'Invalid value: "{0}": must be greater than zero'.format(
                storage), 'FieldValueInvalid'))
        if causes:
            raise errors.invalid(rtype, obj['metadata']['name'], causes)

    def _prepare_customresourcedefinition(self, rtype, obj, old):
        spec = obj.get('spec') or {}
        names = spec.get('names') or {}
        name = obj['metadata']['name']
        causes = []
        for field in ('group', 'scope'):
            if not spec.get(field):
                causes.append(('spec.' + field, 'Required value', 'FieldValueRequired'))
        for field in ('plural', 'kind'):
            if not names.get(field):
                causes.append(('spec.names.' + field, 'Required value', 'FieldValueRequired'))
        if names.get('plural') and spec.get('group') and name != '{0}.{1}'.format(names['plural'], spec['group']):
            causes.append(('metadata.name', 'Invalid value: "{0}": must be spec.names.plural+"."+spec.group'.format(
                name), 'FieldValueInvalid'))
        versions = spec.get('versions') or []
        if not versions:
            causes.append(('spec.versions', 'Invalid value: null: must have exactly one version marked as storage '
                           'version', 'FieldValueInvalid'))
        elif sum(1 for v in versions if v.get('storage')) != 1:
            causes.append(('spec.versions', 'Invalid value: {0}: must have exactly one version marked as storage '
                           'version'.format(len(versions)), 'FieldValueInvalid'))
        if old is not None and old.get('spec', {}).get('group') != spec.get('group'):
            causes.append(('spec.group', 'Invalid value: "{0}": field is immutable'.format(spec.get('group')),
                           'FieldValueInvalid'))
        if causes:
            raise errors.invalid(rtype, name, causes)
        names.setdefault('singular', names['kind'].lower())
        names.setdefault('listKind', names['kind'] + 'List')
        spec.setdefault('conversion', {'strategy': 'None'})
        finalizers = obj['metadata'].setdefault('finalizers', [])
        if old is None and CRD_FINALIZER not in finalizers:
            finalizers.append(CRD_FINALIZER)
        if old is None:
            obj['status'] = {'conditions': [], 'acceptedNames': {'kind': '', 'plural': ''}, 'storedVersions': []}

    def _prepare_custom(self, rtype, obj, strict):
        name = obj['metadata']['name']
        dropped, problems = schema.validate(obj, rtype.schema)
        if strict and dropped:
            raise errors.bad_request('strict decoding error: ' + ', '.join(
                'unknown field "{0}"'.format(field) for field in dropped))
        if problems:
            raise errors.invalid(rtype, name, [_schema_cause(*problem) for problem in problems])


def _schema_cause(field, message, validator, instance):
    if validator == 'type':
        return (field, 'Invalid value: "{0}": {1} in body must be of type {2}'.format(
            _kind_of(instance), field, message.split(' is not of type ')[-1].strip("'")), 'FieldValueTypeInvalid')
    if validator == 'required':
        missing = message.split("'")[1] if "'" in message else message
        field = '{0}.{1}'.format(field, missing) if field != '<root>' else missing
        return (field, 'Required value', 'FieldValueRequired')
    if validator == 'enum':
        return (field, 'Unsupported value: {0!r}: {1}'.format(instance, message), 'FieldValueNotSupported')
    return (field, 'Invalid value: {0!r}: {1}'.format(instance, message), 'FieldValueInvalid')


def _kind_of(value):
    return {bool: 'boolean', int: 'integer', float: 'number', str: 'string', list: 'array', dict: 'object'}.get(
        type(value), 'null')
