# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Flux objects as data: the install manifest, the sync objects a bootstrap creates, and the
dependency order and readiness of Kustomizations and HelmReleases. No client here; see kube.py.
PRIVATE to the collection."""

import base64
import copy
import json

from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError

try:
    import yaml
    HAS_YAML = True
except ImportError:
    HAS_YAML = False

SOURCE_API = 'source.toolkit.fluxcd.io/v1'
KUSTOMIZE_API = 'kustomize.toolkit.fluxcd.io/v1'
HELM_API = 'helm.toolkit.fluxcd.io/v2'
VERSION_LABEL = 'app.kubernetes.io/version'
WATCH_LABEL = 'reconcile.fluxcd.io/watch'
REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt'
RESET_AT = 'reconcile.fluxcd.io/resetAt'
CONTROLLERS = ('source-controller', 'kustomize-controller', 'helm-controller')
KINDS = {'Kustomization': KUSTOMIZE_API, 'HelmRelease': HELM_API, 'GitRepository': SOURCE_API,
         'HelmRepository': SOURCE_API}
MANAGED = {'app.kubernetes.io/managed-by': 'ephemeral.castle'}


class FluxError(CastleError):
    """Bad input or a manifest that is not what it claims; the message says which."""


def load_manifest(text, source, version=None, namespace=None):
    """The objects of a Flux install manifest, checked against the pinned version and moved to
    `namespace` when it differs from the manifest's own. Returns (objects, manifest_version)."""
    if not HAS_YAML:
        raise FluxError('reading {0} needs PyYAML, which ansible-core itself requires'.format(source))
    try:
        objects = [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as exc:
        raise FluxError('{0} is not valid YAML: {1}'.format(source, exc))
    if not objects or not all(isinstance(o, dict) and o.get('kind') and o.get('apiVersion') for o in objects):
        raise FluxError('{0} is not a Kubernetes manifest (every document needs apiVersion and kind)'.format(source))
    namespaces = [o for o in objects if o['kind'] == 'Namespace']
    if len(namespaces) != 1:
        raise FluxError('{0} is not a Flux install manifest: it has {1} Namespace objects, not one'.format(
            source, len(namespaces)))
    labels = namespaces[0]['metadata'].get('labels') or {}
    found = labels.get(VERSION_LABEL)
    if version and found != version:
        raise FluxError('{0} installs Flux {1}, not the pinned version {2}'.format(
            source, found or '(unlabelled)', version))
    own = namespaces[0]['metadata']['name']
    if namespace and namespace != own:
        objects = [_moved(o, own, namespace) for o in objects]
    return objects, found


def _moved(obj, old, new):
    obj = copy.deepcopy(obj)
    meta = obj['metadata']
    if obj['kind'] == 'Namespace' and meta['name'] == old:
        meta['name'] = new
    if meta.get('namespace') == old:
        meta['namespace'] = new
    for subject in obj.get('subjects') or []:
        if subject.get('namespace') == old:
            subject['namespace'] = new
    return obj


def controller_deployments(objects):
    """(namespace, name) of the manifest's controller Deployments."""
    return [(o['metadata'].get('namespace'), o['metadata']['name']) for o in objects if o['kind'] == 'Deployment']


def as_string(value):
    """A cluster-vars value as Flux substitutes it: strings as they are, booleans lower-case, the rest JSON."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True)


def config_map(name, namespace, values):
    """cluster-vars: labelled so that Flux re-reconciles what substitutes from it when it changes."""
    return {'apiVersion': 'v1', 'kind': 'ConfigMap',
            'metadata': {'name': name, 'namespace': namespace, 'labels': dict(MANAGED, **{WATCH_LABEL: 'Enabled'})},
            'data': dict((str(k), as_string(v)) for k, v in sorted(values.items()))}


def secret(name, namespace, values, labels=None):
    encoded = dict((str(k), base64.b64encode(as_string(v).encode()).decode()) for k, v in sorted(values.items()))
    return {'apiVersion': 'v1', 'kind': 'Secret', 'type': 'Opaque',
            'metadata': {'name': name, 'namespace': namespace, 'labels': dict(MANAGED, **(labels or {}))},
            'data': encoded}


def decoded(secret_obj):
    """A Secret's data as text, {} when there is no Secret."""
    data = (secret_obj or {}).get('data') or {}
    return dict((k, base64.b64decode(v).decode()) for k, v in data.items())


def git_repository(name, namespace, url, branch, interval, secret_name=None):
    spec = {'interval': interval, 'url': url, 'ref': {'branch': branch}}
    if secret_name:
        spec['secretRef'] = {'name': secret_name}
    return {'apiVersion': SOURCE_API, 'kind': 'GitRepository',
            'metadata': {'name': name, 'namespace': namespace, 'labels': dict(MANAGED)}, 'spec': spec}


def root_kustomization(name, namespace, path, interval, vars_name, secrets_name):
    """The Kustomization that hands the cluster to Git; everything it builds substitutes cluster-vars."""
    substitute_from = [{'kind': 'ConfigMap', 'name': vars_name},
                       {'kind': 'Secret', 'name': secrets_name, 'optional': True}]
    return {'apiVersion': KUSTOMIZE_API, 'kind': 'Kustomization',
            'metadata': {'name': name, 'namespace': namespace, 'labels': dict(MANAGED)},
            'spec': {'interval': interval, 'path': path, 'prune': True, 'wait': False,
                     'sourceRef': {'kind': 'GitRepository', 'name': name},
                     'postBuild': {'substituteFrom': substitute_from}}}


def dependency_order(objects):
    """Objects ordered so that every one comes after what it dependsOn (same kind); ties by namespace and
    name. A cycle or a missing dependency does not stop the ordering: the rest follows in name order."""
    by_key = dict(((o['kind'], o['metadata']['namespace'], o['metadata']['name']), o) for o in objects)
    ordered, placed, visiting = [], set(), set()

    def place(key):
        if key in placed or key in visiting or key not in by_key:
            return
        visiting.add(key)
        for dep in dependencies(by_key[key]):
            place(dep)
        visiting.discard(key)
        placed.add(key)
        ordered.append(by_key[key])

    for key in sorted(by_key, key=lambda k: (list(KINDS).index(k[0]) if k[0] in KINDS else 9, k[1], k[2])):
        place(key)
    return ordered


def dependencies(obj):
    namespace = obj['metadata']['namespace']
    return [(obj['kind'], dep.get('namespace') or namespace, dep['name'])
            for dep in (obj.get('spec') or {}).get('dependsOn') or []]


def summary(obj, source_revision=None, requested=None):
    """What flux_wait reports for one object, and whether it is done: Ready at its generation, up to date
    with its source's artifact, and past the reconcile request when one was made."""
    meta, spec, status = obj['metadata'], obj.get('spec') or {}, obj.get('status') or {}
    ready_cond = next((c for c in status.get('conditions') or [] if c.get('type') == 'Ready'), {})
    observed = status.get('observedGeneration', -1) >= meta.get('generation', 0)
    ready = ready_cond.get('status') == 'True' and observed
    revision = status.get('lastAppliedRevision') or status.get('lastAttemptedRevision')
    waiting_for = None
    if not observed:
        waiting_for = 'generation {0} not observed yet'.format(meta.get('generation'))
    elif source_revision and obj['kind'] == 'Kustomization' and status.get('lastAppliedRevision') != source_revision:
        waiting_for = 'revision {0} not applied yet'.format(source_revision)
    elif requested and status.get('lastHandledReconcileAt') != requested:
        waiting_for = 'reconcile request not handled yet'
    reason, message = ready_cond.get('reason'), ready_cond.get('message')
    if waiting_for and (ready or not ready_cond):
        # Ready at an older generation, revision or request: what it waits for says more.
        reason, message = 'Progressing', waiting_for
    stalled = next((c for c in status.get('conditions') or [] if c.get('type') == 'Stalled'), {})
    return dict(kind=obj['kind'], namespace=meta['namespace'], name=meta['name'],
                ready=bool(ready and not waiting_for), suspended=bool(spec.get('suspend')),
                stalled=bool(observed and not waiting_for and not ready and stalled.get('status') == 'True'),
                reason=reason, message=message,
                revision=revision, depends_on=['{0}/{1}'.format(d[1], d[2]) for d in dependencies(obj)])


def describe(found):
    """The message for the first object that is not ready, with what keeps its workloads from being ready when
    that is known (`found['workloads']`)."""
    text = '{0} {1}/{2} is not Ready: {3}: {4}'.format(
        found['kind'], found['namespace'], found['name'], found['reason'] or 'NotReady',
        found['message'] or 'no status yet')
    if found.get('stalled'):
        text += ' (stalled: Flux retries no more until the object changes or is reset)'
    for problem in found.get('workloads') or []:
        text += '; ' + problem
    return text


# The workload kinds a HelmRelease's readiness waits for, and the labels helm-controller puts on what it installs.
WORKLOAD_KINDS = (('apps/v1', 'Deployment'), ('apps/v1', 'StatefulSet'), ('apps/v1', 'DaemonSet'), ('batch/v1', 'Job'))
ORIGIN_NAME, ORIGIN_NAMESPACE = 'helm.toolkit.fluxcd.io/name', 'helm.toolkit.fluxcd.io/namespace'


def origin_selector(release):
    """The label selector of what a HelmRelease (a summary or an object) installed."""
    meta = release.get('metadata') or release
    return '{0}={1},{2}={3}'.format(ORIGIN_NAME, meta['name'], ORIGIN_NAMESPACE, meta['namespace'])


def pod_selector(workload):
    """A workload's spec.selector.matchLabels as a label selector, '' when it has none."""
    labels = ((workload.get('spec') or {}).get('selector') or {}).get('matchLabels') or {}
    return ','.join('{0}={1}'.format(k, v) for k, v in sorted(labels.items()))


def _condition(obj, kind):
    return next((c for c in (obj.get('status') or {}).get('conditions') or [] if c.get('type') == kind), None)


def workload_problem(obj):
    """What keeps a Deployment, StatefulSet, DaemonSet or Job from being ready, or None when it is ready."""
    spec, status, kind = obj.get('spec') or {}, obj.get('status') or {}, obj['kind']
    if kind == 'Job':
        failed = _condition(obj, 'Failed')
        if failed and failed.get('status') == 'True':
            return 'failed: {0}: {1}'.format(failed.get('reason'), failed.get('message'))
        done = _condition(obj, 'Complete')
        if done and done.get('status') == 'True':
            return None
        return 'not complete ({0} succeeded, {1} failed)'.format(status.get('succeeded', 0), status.get('failed', 0))
    if kind == 'DaemonSet':
        wanted, ready = status.get('desiredNumberScheduled', 0), status.get('numberReady', 0)
        if ready >= wanted and status.get('updatedNumberScheduled', 0) >= wanted and 'desiredNumberScheduled' in status:
            return None
    else:
        wanted, ready = spec.get('replicas', 1), status.get('readyReplicas', 0)
        if ready >= wanted and status.get('updatedReplicas', 0) >= wanted and \
                status.get('observedGeneration', 0) >= obj['metadata'].get('generation', 0):
            return None
    text = '{0}/{1} ready'.format(ready, wanted)
    for kind_, bad in (('ReplicaFailure', 'True'), ('Progressing', 'False'), ('Available', 'False')):
        cond = _condition(obj, kind_)
        if cond and cond.get('status') == bad:
            text += ', {0} {1}: {2}: {3}'.format(kind_, bad, cond.get('reason'), cond.get('message'))
    return text


def pod_problem(pod):
    """Why a pod is not ready (a container's waiting or failed state, scheduling, the Ready condition), or None."""
    status = pod.get('status') or {}
    for entry in (status.get('initContainerStatuses') or []) + (status.get('containerStatuses') or []):
        state = entry.get('state') or {}
        if state.get('waiting', {}).get('reason') not in (None, 'ContainerCreating', 'PodInitializing'):
            return 'container {0} waiting: {1}: {2}'.format(entry['name'], state['waiting']['reason'],
                                                            state['waiting'].get('message') or '')
        if state.get('terminated', {}).get('exitCode', 0) != 0:
            return 'container {0} terminated: {1} (exit code {2})'.format(
                entry['name'], state['terminated'].get('reason'), state['terminated']['exitCode'])
    scheduled = _condition(pod, 'PodScheduled')
    if scheduled and scheduled.get('status') == 'False':
        return 'not scheduled: {0}: {1}'.format(scheduled.get('reason'), scheduled.get('message'))
    ready = _condition(pod, 'Ready')
    if status.get('phase') == 'Succeeded' or (ready and ready.get('status') == 'True'):
        return None
    if ready:
        return 'not Ready: {0}: {1}'.format(ready.get('reason') or status.get('phase'), ready.get('message') or '')
    return 'not Ready: {0}'.format(status.get('phase') or 'no status yet')


def source_of(obj):
    ref = (obj.get('spec') or {}).get('sourceRef') or {}
    if obj['kind'] != 'Kustomization' or ref.get('kind') != 'GitRepository':
        return None
    return ref.get('namespace') or obj['metadata']['namespace'], ref['name']


def request_reconcile(client, objects, token):
    """Annotate the objects and their Git sources, as `flux reconcile --with-source` does."""
    targets = dict(((o['kind'], o['metadata']['namespace'], o['metadata']['name']), KINDS[o['kind']])
                   for o in objects)
    for obj in objects:
        source = source_of(obj)
        if source:
            targets[('GitRepository',) + source] = SOURCE_API
    for (kind, namespace, name), api_version in sorted(targets.items()):
        annotations = {REQUESTED_AT: token}
        if kind == 'HelmRelease':
            # As `flux reconcile helmrelease --reset`: a release out of retries tries again.
            annotations[RESET_AT] = token
        client.server_side_apply({'apiVersion': api_version, 'kind': kind, 'metadata': {
            'name': name, 'namespace': namespace, 'annotations': annotations}},
            field_manager='ephemeral.castle-reconcile')
