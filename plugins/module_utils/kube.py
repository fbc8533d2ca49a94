# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Kubernetes layer's one client. PRIVATE to the collection: other collections must not import it.

A client from a kubeconfig (and context) or K8S_AUTH_* settings, discovery cached per API server,
server-side apply of many objects at once (CRDs and namespaces first, custom resources only once
their CRDs are established) with exact change detection through dry runs, and waits on a
monotonic clock.
"""

import collections
import copy
import hashlib
import json
import os
import tempfile
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline, wait_until
from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError, Layer

try:
    from kubernetes import client as k8s_client, config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ResourceNotFoundError
    import urllib3
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

FIELD_MANAGER = 'ephemeral.castle'
CRD_API = 'apiextensions.k8s.io/v1'
# What the server fills in or keeps moving; never part of a desired-state comparison.
SERVER_FIELDS = ('resourceVersion', 'managedFields', 'generation', 'uid', 'creationTimestamp', 'selfLink')
HIDDEN = '<hidden>'
# From this many objects of one kind in one namespace, one list request reads them all.
LIST_THRESHOLD = 5


def connection_argument_spec():
    """Connection options shared by every Kubernetes module (doc fragment ephemeral.castle.kube)."""
    return dict(
        kubeconfig=dict(type='path', fallback=(env_fallback, ['K8S_AUTH_KUBECONFIG', 'KUBECONFIG'])),
        context=dict(type='str', fallback=(env_fallback, ['K8S_AUTH_CONTEXT'])),
        host=dict(type='str', fallback=(env_fallback, ['K8S_AUTH_HOST'])),
        api_key=dict(type='str', no_log=True, fallback=(env_fallback, ['K8S_AUTH_API_KEY'])),
        ca_cert=dict(type='path', aliases=['ssl_ca_cert'], fallback=(env_fallback, ['K8S_AUTH_SSL_CA_CERT'])),
        validate_certs=dict(type='bool', default=True, aliases=['verify_ssl'],
                            fallback=(env_fallback, ['K8S_AUTH_VERIFY_SSL'])),
        request_timeout=dict(type='int', default=30),
    )


# What every Kubernetes and Flux module is built from: the connection options and the kubernetes library.
LAYER = Layer(connection_argument_spec(), requires=('kubernetes', HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR))


class KubeError(CastleError):
    """A call to the API failed or a wait ran out; the message names what and why."""


def object_ref(obj):
    """`Kind/namespace/name` (or `Kind/name` when cluster-scoped): how messages name an object."""
    meta = obj.get('metadata') or {}
    parts = [obj.get('kind', '?'), meta.get('namespace'), meta.get('name', '?')]
    return '/'.join(p for p in parts if p)


def comparable(obj):
    """The object without server-kept metadata and status, for desired-state comparison."""
    if obj is None:
        return None
    found = copy.deepcopy(obj)
    found.pop('status', None)
    meta = found.get('metadata') or {}
    for field in SERVER_FIELDS:
        meta.pop(field, None)
    annotations = meta.get('annotations') or {}
    annotations.pop('kubectl.kubernetes.io/last-applied-configuration', None)
    if not annotations:
        meta.pop('annotations', None)
    return found


def redacted(obj):
    """A copy safe to show in a diff: Secret values become a marker with a short digest, so a
    changed value still shows as changed without showing the value."""
    if obj is None or obj.get('kind') != 'Secret':
        return obj
    found = copy.deepcopy(obj)
    for field in ('data', 'stringData'):
        if isinstance(found.get(field), dict):
            found[field] = dict((key, '{0} {1}'.format(HIDDEN, hashlib.sha256(
                (key + str(value)).encode()).hexdigest()[:8])) for key, value in found[field].items())
    return found


def condition(obj, kind='Ready'):
    """The object's condition of this type, or None."""
    for cond in ((obj or {}).get('status') or {}).get('conditions') or []:
        if cond.get('type') == kind:
            return cond
    return None


def is_ready(obj):
    """Ready=True, observed at the object's current generation."""
    cond = condition(obj)
    status = (obj or {}).get('status') or {}
    generation = (obj or {}).get('metadata', {}).get('generation')
    observed = status.get('observedGeneration')
    current = generation is None or observed is None or observed >= generation
    return bool(cond and cond.get('status') == 'True' and current)


def is_available(deployment):
    """A Deployment whose current generation is rolled out and Available."""
    status = deployment.get('status') or {}
    spec = deployment.get('spec') or {}
    cond = condition(deployment, 'Available')
    return bool(cond and cond.get('status') == 'True'
                and status.get('observedGeneration', 0) >= deployment['metadata'].get('generation', 1)
                and status.get('updatedReplicas', 0) >= spec.get('replicas', 1))


def apply_order(obj):
    """CRDs first, then namespaces, then every other cluster-scoped kind the manifest knows, then the rest."""
    kind = obj.get('kind')
    if kind == 'CustomResourceDefinition':
        return 0
    if kind == 'Namespace':
        return 1
    return 2


def _api_message(exc):
    try:
        body = json.loads(exc.body)
        return body.get('message') or exc.reason
    except (TypeError, ValueError, AttributeError):
        return '{0} {1}'.format(exc.status, exc.reason)


class KubeClient:
    """One API server, reached with a module's connection options (params)."""

    def __init__(self, params, field_manager=FIELD_MANAGER):
        if not HAS_KUBERNETES:
            raise KubeError(missing_required_lib('kubernetes'))
        self.field_manager = field_manager
        self.timeout = params['request_timeout']
        try:
            api_client = self._api_client(params)
            host = api_client.configuration.host
            cache = os.path.join(tempfile.gettempdir(), 'castle-kube-discovery-{0}.json'.format(
                hashlib.sha256(host.encode()).hexdigest()[:16]))
            self.dynamic = DynamicClient(api_client, cache_file=cache)
        except (k8s_config.ConfigException, OSError, urllib3.exceptions.HTTPError) as exc:
            raise KubeError('cannot reach the Kubernetes API: {0}'.format(exc))
        except ApiException as exc:
            raise KubeError('cannot read the API discovery: {0}'.format(_api_message(exc)))

    @staticmethod
    def _api_client(params):
        if params['host']:
            configuration = k8s_client.Configuration()
            configuration.host = params['host']
            if params['api_key']:
                configuration.api_key = {'authorization': 'Bearer ' + params['api_key']}
        else:
            configuration = k8s_client.Configuration()
            k8s_config.load_kube_config(config_file=params['kubeconfig'], context=params['context'],
                                        client_configuration=configuration, persist_config=False)
        if params['ca_cert']:
            configuration.ssl_ca_cert = params['ca_cert']
        configuration.verify_ssl = params['validate_certs']
        return k8s_client.ApiClient(configuration)

    def resource(self, api_version, kind):
        """The API resource for a kind; discovery is read again once when the cache does not know it."""
        for attempt in (1, 2):
            try:
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                if attempt == 2:
                    raise KubeError('the cluster does not serve {0} in {1}'.format(kind, api_version))
                self.dynamic.resources.invalidate_cache()
            except ApiException as exc:
                raise KubeError('discovery of {0} failed: {1}'.format(api_version, _api_message(exc)))
        return None

    def _call(self, what, method, *args, **kwargs):
        kwargs.setdefault('_request_timeout', self.timeout)
        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            raise KubeError('{0}: {1}'.format(what, _api_message(exc)))
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise KubeError('{0}: {1}'.format(what, exc))

    def get(self, api_version, kind, name, namespace=None):
        """The object as a dict, or None when it does not exist."""
        resource = self.resource(api_version, kind)
        try:
            return self.dynamic.get(resource, name=name, namespace=namespace if resource.namespaced else None,
                                    _request_timeout=self.timeout).to_dict()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError('read {0} {1}: {2}'.format(kind, name, _api_message(exc)))
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise KubeError('read {0} {1}: {2}'.format(kind, name, exc))

    def list(self, api_version, kind, namespace=None, label_selector=None):
        resource = self.resource(api_version, kind)
        found = self._call('list {0}'.format(resource.name), self.dynamic.get, resource,
                           namespace=namespace if resource.namespaced else None, label_selector=label_selector)
        return found.to_dict().get('items') or []

    def server_side_apply(self, obj, dry_run=False, field_manager=None):
        resource = self.resource(obj['apiVersion'], obj['kind'])
        meta = obj['metadata']
        kwargs = dict(name=meta['name'], namespace=meta.get('namespace') if resource.namespaced else None,
                      field_manager=field_manager or self.field_manager, force_conflicts=True)
        if dry_run:
            kwargs['dry_run'] = 'All'
        return self._call('apply {0}'.format(object_ref(obj)), self.dynamic.server_side_apply, resource,
                          body=obj, **kwargs).to_dict()

    def delete(self, api_version, kind, name, namespace=None):
        resource = self.resource(api_version, kind)
        try:
            self.dynamic.delete(resource, name=name, namespace=namespace if resource.namespaced else None,
                                _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise KubeError('delete {0} {1}: {2}'.format(kind, name, _api_message(exc)))
            return False
        return True

    def apply_all(self, objects, check_mode=False, deadline=None):
        """Server-side apply every object, CRDs and namespaces first; custom resources of CRDs this call
        creates or changes wait for them to be established. Returns one change record per object, in the
        order applied: dict(ref, action created|updated|unchanged, before, after)."""
        deadline = deadline or Deadline(120)
        crd_of = dict(((o['spec']['group'], o['spec']['names']['kind']), o['metadata']['name'])
                      for o in objects if o.get('kind') == 'CustomResourceDefinition')
        pending = set()
        changes = []
        listed = {}
        group_sizes = collections.Counter((o['apiVersion'], o['kind'], o['metadata'].get('namespace')) for o in objects)
        for obj in sorted(objects, key=apply_order):
            needs = crd_of.get((obj['apiVersion'].rpartition('/')[0], obj['kind']))
            if needs in pending:
                if check_mode:
                    # Its CRD does not exist yet, so the server cannot dry-run it: it would be created.
                    changes.append(self._change(obj, None, obj))
                    continue
                self.wait_established(sorted(pending), deadline)
                pending.clear()
            try:
                before = self._current(obj, group_sizes, listed)
            except KubeError:
                if not check_mode:
                    raise
                before = None
            change = self._apply_one(obj, check_mode, before)
            if obj['kind'] == 'CustomResourceDefinition' and change['action'] != 'unchanged':
                pending.add(obj['metadata']['name'])
            changes.append(change)
        if pending and not check_mode:
            self.wait_established(sorted(pending), deadline)
        return changes

    def _current(self, obj, group_sizes, listed):
        """What the server holds for obj. Kinds with many objects in one namespace in this call are read
        with one list request; CRDs (large) and the rest one by one."""
        meta = obj['metadata']
        group = (obj['apiVersion'], obj['kind'], meta.get('namespace'))
        if group_sizes[group] < LIST_THRESHOLD or obj['kind'] == 'CustomResourceDefinition':
            return self.get(obj['apiVersion'], obj['kind'], meta['name'], meta.get('namespace'))
        if group not in listed:
            # List items may leave out apiVersion and kind; the request says what they are.
            listed[group] = dict((o['metadata']['name'], dict(o, apiVersion=group[0], kind=group[1]))
                                 for o in self.list(*group))
        return listed[group].get(meta['name'])

    def _apply_one(self, obj, check_mode, before):
        if before is None:
            if not check_mode:
                return self._change(obj, None, self.server_side_apply(obj))
            try:
                after = self.server_side_apply(obj, dry_run=True)
            except KubeError:
                # Its namespace or CRD is created by this same run; the real run would create it.
                after = obj
            return self._change(obj, None, after)
        after = self.server_side_apply(obj, dry_run=True)
        if comparable(after) == comparable(before):
            return self._change(obj, before, before)
        if not check_mode:
            after = self.server_side_apply(obj)
        return self._change(obj, before, after)

    @staticmethod
    def _change(obj, before, after):
        if before is None:
            action = 'created'
        elif comparable(before) == comparable(after):
            action = 'unchanged'
        else:
            action = 'updated'
        return dict(ref=object_ref(obj), action=action, before=comparable(before), after=comparable(after))

    def wait_established(self, crd_names, deadline):
        def missing():
            return [name for name in crd_names
                    if (condition(self.get(CRD_API, 'CustomResourceDefinition', name), 'Established') or {}).get(
                        'status') != 'True']

        wait_until(lambda: not missing(), deadline, lambda: timed_out(
            deadline, 'CRDs not established: {0}'.format(', '.join(missing()))))
        self.dynamic.resources.invalidate_cache()

    def wait_ready(self, refs, deadline, ready=is_ready):
        """Wait until every (api_version, kind, name, namespace) in refs is ready; the timeout names the
        first that is not, with its Ready condition's reason and message."""
        def not_ready():
            for api_version, kind, name, namespace in refs:
                obj = self.get(api_version, kind, name, namespace)
                if obj is None or not ready(obj):
                    return api_version, kind, name, namespace, obj
            return None

        def describe():
            found = not_ready()
            if found is None:
                return 'everything became ready at the last moment'
            return not_ready_message(found[4] or {'kind': found[1], 'metadata': {
                'name': found[2], 'namespace': found[3]}})

        wait_until(lambda: not_ready() is None, deadline, lambda: timed_out(deadline, describe()))


def timed_out(deadline, what):
    """The error of a wait that ran out, naming what is still missing."""
    return KubeError('timed out after {0}s: {1}'.format(deadline.seconds, what))


def not_ready_message(obj):
    """`Kind/ns/name is not Ready: Reason: message` from an object's Ready condition."""
    cond = condition(obj)
    if obj.get('status') is None and not (obj.get('metadata') or {}).get('uid'):
        return '{0} does not exist'.format(object_ref(obj))
    if cond is None:
        return '{0} is not Ready: no Ready condition yet'.format(object_ref(obj))
    return '{0} is not Ready: {1}: {2}'.format(object_ref(obj), cond.get('reason'), cond.get('message'))


def diff_of(changes):
    """Ansible diff dicts (before/after keyed by object) for the changes that are not unchanged."""
    before, after = {}, {}
    for change in changes:
        if change['action'] == 'unchanged':
            continue
        before[change['ref']] = redacted(change['before'])
        after[change['ref']] = redacted(change['after'])
    return dict(before=before, after=after)
