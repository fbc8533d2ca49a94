"""What the API server does to objects: create, read, update, patch, apply and delete, with the server's
defaults, validation, resourceVersions, generations and managedFields."""

import base64
import copy
import datetime
import itertools
import re
import uuid

from . import admission, apply as ssa, builtin, cel, defaults, errors, patch as patches, rbac, schema, validation
from .errors import ApiError
from .registry import Registry
from .store import Store

DEFAULT_NAMESPACES = ('default', 'kube-system', 'kube-public', 'kube-node-lease')
# The one node the emulated workloads' pods run on.
NODE = 'castle-lab-node'
# Built-ins whose metadata.generation counts spec changes; every custom resource does too.
GENERATION_KINDS = ('Deployment', 'DaemonSet', 'StatefulSet', 'CustomResourceDefinition')
CRD_FINALIZER = 'customresourcecleanup.apiextensions.k8s.io'
# The garbage collector's finalizers: orphan the dependents, or delete them before the owner (foreground).
ORPHAN_FINALIZER = 'orphan'
FOREGROUND_FINALIZER = 'foregroundDeletion'
# Kinds whose REST strategy orphans dependents when a delete names no policy (kept for old clients).
ORPHAN_BY_DEFAULT = (('batch/v1', 'Job'), ('v1', 'ReplicationController'))
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


def _check_preconditions(rtype, meta, preconditions):
    """A delete's preconditions, checked as the API server does before it deletes anything."""
    for field, label, why in (('uid', 'UID', 'deleted and then recreated'), ('resourceVersion', 'ResourceVersion',
                                                                             'modified')):
        wanted = preconditions.get(field)
        if wanted and wanted != meta.get(field):
            raise ApiError(409, 'Conflict', 'Operation cannot be fulfilled on {0} "{1}": the {2} in the precondition '
                           '({3}) does not match the {2} in record ({4}). The object might have been {5}'.format(
                               rtype.kind + '.' + rtype.group if rtype.group else rtype.kind, meta['name'], label,
                               wanted, meta.get(field), why),
                           dict({'name': meta['name'], 'kind': rtype.kind}, **({'group': rtype.group} if rtype.group
                                                                               else {})))


def _deletion_finalizers(rtype, finalizers, propagation, orphan_dependents):
    """The finalizers an object keeps when deleted: its own, plus the garbage collector's `orphan` or
    `foregroundDeletion` as the request's policy says, else as the object already says, else as its kind's default."""
    if orphan_dependents is not None:
        policy = 'Orphan' if orphan_dependents else 'Background'
    elif propagation:
        policy = propagation
    else:
        marked = [f for f in finalizers if f in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
        if marked:
            policy = 'Orphan' if marked[0] == ORPHAN_FINALIZER else 'Foreground'
        else:
            policy = 'Orphan' if (rtype.group_version, rtype.kind) in ORPHAN_BY_DEFAULT else 'Background'
    wanted = [f for f in finalizers if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    wanted += {'Orphan': [ORPHAN_FINALIZER], 'Foreground': [FOREGROUND_FINALIZER]}.get(policy, [])
    return finalizers if set(wanted) == set(finalizers) else wanted


def _check_no_new_finalizers(rtype, old, new):
    """An object being deleted may lose finalizers but gain none."""
    if not old['metadata'].get('deletionTimestamp'):
        return
    added = sorted(set(new['metadata'].get('finalizers') or []) - set(old['metadata'].get('finalizers') or []))
    if added:
        raise errors.invalid(rtype, old['metadata']['name'], [(
            'metadata.finalizers', 'Forbidden: no new finalizers can be added if the object is being deleted, found '
            'new finalizers []string{{{0}}}'.format(', '.join('"{0}"'.format(f) for f in added)),
            'FieldValueForbidden')])


class KubeApi:
    """The API's objects and the rules every write follows. Callers run on one event loop."""

    def __init__(self, signer=None, ca_pem='', seed_node=True, pod_security=None):
        self.ca_pem = ca_pem
        # The PodSecurity admission plugin's configuration; None is the one Talos generates.
        self.pod_security = admission.PodSecurity(pod_security)
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
        if rtype.crd:
            schema.default(obj, rtype.schema)  # defaults also apply to what storage holds
        return obj

    def namespace_of(self, name):
        return self.store.get(('', 'namespaces'), None, name)

    # writes

    def create(self, rtype, namespace, body, manager, dry_run=False, strict=False, warnings=None, directive=None,
               how='create'):
        """warnings: a list that gets the admission warnings of the request (the response's Warning headers).
        directive: the request's fieldValidation (Strict, Warn, Ignore); None, as for the lab's own writes, ignores
        unknown fields of built-in kinds silently."""
        obj = copy.deepcopy(body)
        meta = obj.setdefault('metadata', {})
        # Admission names an object by its generateName: the name is not generated yet when it runs.
        admitted_as = meta.get('name') or meta.get('generateName') or ''
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
        self._prepare(rtype, obj, None, strict, warnings, directive, how)
        if rtype.namespaced and not rtype.crd:
            self.pod_security.admit(rtype.kind, admitted_as, ns, obj, warnings)
        if self._tracks_generation(rtype):
            meta['generation'] = 1
        ssa.record_update(None, obj, manager, rtype.group_version, now(), keys=_keys(rtype))
        if not obj['metadata']['managedFields']:
            obj['metadata'].pop('managedFields')
        return self._commit(rtype, obj, dry_run)

    def replace(self, rtype, namespace, name, body, manager, subresource='', dry_run=False, strict=False,
                warnings=None, directive=None):
        old = self._existing(rtype, namespace, name)
        given_version = (body.get('metadata') or {}).get('resourceVersion')
        if given_version and given_version != old['metadata']['resourceVersion']:
            raise errors.conflict(rtype, name)
        if (body.get('metadata') or {}).get('name', name) != name:
            raise errors.bad_request('the name of the object ({0}) does not match the name on the URL ({1})'.format(
                body['metadata']['name'], name))
        return self._update(rtype, old, copy.deepcopy(body), manager, subresource, dry_run, strict,
                            checks=(warnings, directive, 'update', None))

    def patch(self, rtype, namespace, name, body, content_type, manager, subresource='', dry_run=False,
              force=False, strict=False, warnings=None, directive=None):
        """Returns (object, created): an apply patch creates what is missing."""
        current = self.store.get(rtype.key, namespace if rtype.namespaced else None, name)
        if content_type == patches.APPLY_PATCH:
            if not manager:
                raise errors.bad_request('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                                         'is required for apply patch')
            if not isinstance(body, dict):
                raise errors.bad_request('apply patch must be an object')
            if not rtype.crd:
                builtin.check_applied(rtype, namespace, name, body)
            return self._apply(rtype, namespace, name, current, body, manager, subresource, dry_run, force, strict,
                               warnings)
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
        return self._update(rtype, old, new, manager, subresource, dry_run, strict,
                            checks=(warnings, directive, 'strategic' if content_type == patches.STRATEGIC_PATCH
                                    else 'patch', body)), False

    def _apply(self, rtype, namespace, name, current, body, manager, subresource, dry_run, force, strict,
               warnings=None):
        meta = body.get('metadata') or {}
        if meta.get('managedFields') is not None:
            raise errors.bad_request('metadata.managedFields must be nil')
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
            raise ApiError(409, 'Conflict', exc.message, {'causes': exc.causes}) from None
        if old is None:
            merged['metadata'].update(name=name, namespace=namespace)
            managed = merged['metadata'].pop('managedFields')
            created = self.create(rtype, namespace, merged, manager, dry_run=True, strict=strict, warnings=warnings)
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

    def _update(self, rtype, old, new, manager, subresource, dry_run, strict, applied=False,
                checks=(None, None, '', None)):
        """checks: (warnings, fieldValidation directive, 'update', 'patch' or 'strategic', the patch) of the request."""
        new['apiVersion'], new['kind'] = rtype.group_version, rtype.kind
        meta = new.setdefault('metadata', {})
        for key in ('name', 'namespace', 'uid', 'creationTimestamp', 'deletionTimestamp', 'generation'):
            if key in old['metadata']:
                meta[key] = old['metadata'][key]
            else:
                meta.pop(key, None)
        if not applied:
            meta['managedFields'] = ssa.managed_base(meta.get('managedFields'), old['metadata'].get(
                'managedFields'), subresource)
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
        self._prepare(rtype, new, old, strict, *checks)
        _check_no_new_finalizers(rtype, old, new)
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

    def delete(self, rtype, namespace, name, dry_run=False, preconditions=None, propagation=None,
               orphan_dependents=None):
        """Returns (object, gone). An object with finalizers left (the garbage collector's `orphan` or
        `foregroundDeletion` by the propagation policy among them) is marked as being deleted and stays."""
        old = self._existing(rtype, namespace, name)
        meta = old['metadata']
        _check_preconditions(rtype, meta, preconditions or {})
        finalizers = list(meta.get('finalizers') or [])
        if rtype.kind != 'Namespace':
            finalizers = _deletion_finalizers(rtype, finalizers, propagation, orphan_dependents)
        if not finalizers and rtype.kind != 'Namespace':
            if not dry_run:
                self.store.delete(rtype.key, namespace if rtype.namespaced else None, name)
            return old, True
        marked = copy.deepcopy(old)
        if finalizers:
            marked['metadata']['finalizers'] = finalizers
        if not meta.get('deletionTimestamp'):
            marked['metadata'].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0)
            if meta.get('generation'):
                marked['metadata']['generation'] = meta['generation'] + 1
            if rtype.kind == 'Namespace':
                marked['status'] = {'phase': 'Terminating'}
        if marked == old or dry_run:
            return marked, False
        return self.served_as(rtype, self.store.put(rtype.key, self._stored(rtype, marked))), False

    # server-side rules per kind

    def _tracks_generation(self, rtype):
        return bool(rtype.crd) or rtype.kind in GENERATION_KINDS

    def _prepare(self, rtype, obj, old, strict, warnings=None, directive=None, how='create', patch=None):
        """Decoding, defaults and validation of one kind in the API server's order: a built-in object that does
        not decode into its type is refused (400) and loses unknown fields (refused under fieldValidation Strict,
        warned about under Warn); then its kind's defaults apply; then validation refuses it (422 naming the
        fields)."""
        if not rtype.crd:
            builtin.check_decoded(rtype, obj, strict or directive == 'Strict',
                                  warnings if directive == 'Warn' else None, how, patch)
        name = obj['metadata']['name']
        causes = []
        if rtype.group == 'rbac.authorization.k8s.io':
            # RBAC names only have to be valid path segments.
            if name in ('.', '..') or '/' in name or '%' in name:
                causes.append(('metadata.name', 'Invalid value: "{0}": may not contain \'/\' or \'%\''.format(name),
                               'FieldValueInvalid'))
        elif old is None:
            causes += validation.object_name(rtype.kind, name)
        if rtype.crd:
            for field in ('labels', 'annotations'):
                values = obj['metadata'].get(field) or {}
                bad = [k for k, v in values.items() if not isinstance(v, str)]
                if bad:
                    causes.append(('metadata.{0}'.format(field), 'Invalid value: {0!r}: must be a string'.format(
                        bad[0]), 'FieldValueTypeInvalid'))
        causes += validation.object_meta(obj['metadata'])
        if causes:
            raise errors.invalid(rtype, name, causes)
        prepare = getattr(self, '_prepare_' + rtype.kind.lower(), None)
        if rtype.crd:
            self._prepare_custom(rtype, obj, old, strict, warnings)
        elif prepare:
            prepare(rtype, obj, old)

    def _prepare_namespace(self, rtype, obj, old):
        obj.setdefault('spec', {})['finalizers'] = ['kubernetes']
        if old is None:
            obj['status'] = {'phase': 'Active'}
        else:
            obj['status'] = old.get('status', {'phase': 'Active'})
        obj['metadata'].setdefault('labels', {})['kubernetes.io/metadata.name'] = obj['metadata']['name']
        self.pod_security.check_namespace(rtype, obj, old)

    def _prepare_configmap(self, rtype, obj, old):
        causes = validation.config_data(obj)
        if old is not None:
            causes += validation.immutable_data(obj, old)
        if causes:
            raise errors.invalid(rtype, obj['metadata']['name'], causes)

    def _prepare_secret(self, rtype, obj, old):
        causes = [validation.invalid('stringData[{0}]'.format(key), key, msg)
                  for key in obj.get('stringData') or {} for msg in validation.config_key(key)]
        data = obj.get('data') or {}
        for key, value in (obj.pop('stringData', None) or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        if data:
            obj['data'] = data
        obj.setdefault('type', 'Opaque')
        causes += validation.config_data(obj)
        if old is not None:
            if old.get('type') != obj['type']:
                causes.append(validation.invalid('type', obj['type'], validation.IMMUTABLE))
            causes += validation.immutable_data(obj, old)
        if causes:
            raise errors.invalid(rtype, obj['metadata']['name'], causes)

    def _prepare_service(self, rtype, obj, old):
        spec = obj.setdefault('spec', {})
        defaults.service(spec)
        before = (old or {}).get('spec') or {}
        # An update that leaves out the allocated address keeps it.
        for field in ('clusterIP', 'clusterIPs', 'ipFamilies', 'ipFamilyPolicy'):
            if before.get(field) and not spec.get(field):
                spec[field] = copy.deepcopy(before[field])
        causes = validation.service(spec)
        if old is not None:
            causes += validation.immutable_service(obj, old)
        if causes:
            raise errors.invalid(rtype, obj['metadata']['name'], causes)
        if spec['type'] != 'ExternalName':
            if not spec.get('clusterIP'):
                address = next(self.cluster_ips)
                spec['clusterIP'] = '10.96.{0}.{1}'.format(address // 250, address % 250 + 1)
            spec.setdefault('clusterIPs', [spec['clusterIP']])
            spec.setdefault('ipFamilies', ['IPv4'])
            spec.setdefault('ipFamilyPolicy', 'SingleStack')
        obj.setdefault('status', {'loadBalancer': {}})

    def _prepare_workload(self, rtype, obj, old, default):
        """What Deployments, ReplicaSets, DaemonSets and StatefulSets share: defaults, a selector that matches the
        template's labels, containers; the selector may not change."""
        spec = obj.setdefault('spec', {})
        default(spec)
        name = obj['metadata']['name']
        selector = spec.get('selector') or {}
        labels = ((spec.get('template') or {}).get('metadata') or {}).get('labels') or {}
        causes = validation.selector_labels('spec.selector.matchLabels', selector.get('matchLabels'))
        if not spec.get('selector'):
            causes.append(('spec.selector', 'Required value', 'FieldValueRequired'))
        elif any(labels.get(k) != v for k, v in (selector.get('matchLabels') or {}).items()):
            causes.append(('spec.template.metadata.labels', 'Invalid value: {0}: `selector` does not match template '
                           '`labels`'.format(validation.go_map(labels)), 'FieldValueInvalid'))
        causes += validation.object_meta(((spec.get('template') or {}).get('metadata') or {}))
        causes = [(f.replace('metadata.', 'spec.template.metadata.', 1) if f.startswith('metadata.') else f, m, r)
                  for f, m, r in causes]
        pod_spec = (spec.get('template') or {}).get('spec') or {}
        if not pod_spec.get('containers'):
            causes.append(('spec.template.spec.containers', 'Required value', 'FieldValueRequired'))
        causes += validation.containers('spec.template.spec', pod_spec)
        if old is not None:
            causes += (validation.immutable_statefulset(obj, old) if rtype.kind == 'StatefulSet'
                       else validation.immutable_selector(obj, old))
        if causes:
            raise errors.invalid(rtype, name, causes)

    def _prepare_deployment(self, rtype, obj, old):
        self._prepare_workload(rtype, obj, old, defaults.deployment)

    def _prepare_replicaset(self, rtype, obj, old):
        self._prepare_workload(rtype, obj, old, defaults.replicaset)

    def _prepare_statefulset(self, rtype, obj, old):
        self._prepare_workload(rtype, obj, old, defaults.statefulset)

    def _prepare_daemonset(self, rtype, obj, old):
        self._prepare_workload(rtype, obj, old, defaults.daemonset)

    def _prepare_job(self, rtype, obj, old):
        spec = obj.setdefault('spec', {})
        meta = obj['metadata']
        causes = []
        if old is None and not spec.get('manualSelector'):
            if spec.get('selector'):
                causes.append(('spec.selector', 'Invalid value: {0}: `selector` not auto-generated'.format(
                    validation.label_selector_string(spec['selector'])), 'FieldValueInvalid'))
            else:
                # The selector and labels the API server generates for a Job's pods.
                template = spec.setdefault('template', {})
                labels = template.setdefault('metadata', {}).setdefault('labels', {})
                for key in ('batch.kubernetes.io/controller-uid', 'controller-uid'):
                    labels[key] = meta['uid']
                for key in ('batch.kubernetes.io/job-name', 'job-name'):
                    labels[key] = meta['name']
                spec['selector'] = {'matchLabels': {'batch.kubernetes.io/controller-uid': meta['uid']}}
        defaults.job(spec)
        pod_spec = (spec.get('template') or {}).get('spec') or {}
        if not pod_spec.get('containers'):
            causes.append(('spec.template.spec.containers', 'Required value', 'FieldValueRequired'))
        causes += validation.containers('spec.template.spec', pod_spec)
        if pod_spec.get('restartPolicy') not in ('OnFailure', 'Never'):
            causes.append(validation.unsupported('spec.template.spec.restartPolicy', pod_spec.get('restartPolicy'),
                                                 ('OnFailure', 'Never')))
        if old is not None:
            causes += validation.immutable_job(obj, old)
        if causes:
            raise errors.invalid(rtype, meta['name'], causes)

    def _prepare_cronjob(self, rtype, obj, old):
        defaults.cronjob(obj.setdefault('spec', {}))

    def _prepare_pod(self, rtype, obj, old):
        defaults.pod(obj)
        causes = validation.containers('spec', obj['spec'])
        if not obj['spec'].get('containers'):
            causes.append(('spec.containers', 'Required value', 'FieldValueRequired'))
        if causes:
            raise errors.invalid(rtype, obj['metadata']['name'], causes)

    def _prepare_persistentvolumeclaim(self, rtype, obj, old):
        spec = obj.setdefault('spec', {})
        defaults.persistentvolumeclaim(spec)
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
        if old is not None:
            causes += validation.immutable_pvc(obj, old)
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
        for index, version in enumerate(versions):
            found = (version.get('schema') or {}).get('openAPIV3Schema')
            where = 'spec.versions[{0}].schema.openAPIV3Schema'.format(index)
            causes += cel.rule_errors(found, where)
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

    def _prepare_custom(self, rtype, obj, old, strict, warnings=None):
        name = obj['metadata']['name']
        dropped, problems = schema.validate(obj, rtype.schema)
        if strict and dropped:
            raise errors.bad_request('strict decoding error: ' + ', '.join(
                'unknown field "{0}"'.format(field) for field in dropped))
        causes = [_schema_cause(*problem) for problem in problems]
        causes += cel.validate(rtype.schema, obj, old, [reason for _f, _m, reason in causes], warnings)
        if causes:
            raise errors.invalid(rtype, name, causes)


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
