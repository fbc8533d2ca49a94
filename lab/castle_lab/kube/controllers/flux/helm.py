"""Flux's Helm side as the lab stands in for it: source-controller's HelmRepository and HelmChart, and
helm-controller's HelmRelease, installing the charts of castle_lab.kube.controllers.charts.

Each acts only while its controller's Deployment (source-controller, helm-controller) is Available in
some namespace, as nothing reconciles Flux objects before Flux is installed. Statuses, reasons and
messages follow the upstream controllers.
"""

import base64
import copy
import gzip
import hashlib
import json
import re
import time

import yaml

from ...api.errors import ApiError
from ...api.objects import now
from .. import charts
from ..manager import Controller
from .common import (ARTIFACT_SERVER, DEPLOYMENTS, FINALIZER, REQUESTED_AT, controller_available, flux_condition,
                     is_ready, merged_conditions)
from .objects import format_duration, parse_duration

SOURCE_GROUP, HELM_GROUP = 'source.toolkit.fluxcd.io', 'helm.toolkit.fluxcd.io'
HELM_REPOSITORIES = (SOURCE_GROUP, 'helmrepositories')
HELM_CHARTS = (SOURCE_GROUP, 'helmcharts')
HELM_RELEASES = (HELM_GROUP, 'helmreleases')
EXACT_VERSION = re.compile(r'^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$')
MAX_HISTORY = 5
RESET_AT = 'reconcile.fluxcd.io/resetAt'


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def ready_condition(obj):
    return next((c for c in (obj.get('status') or {}).get('conditions') or [] if c['type'] == 'Ready'), None)


class HelmToolkitController(Controller):
    """Shared plumbing: the gate on the controller Deployment, finalizers, status writes."""

    deployment = ''
    manager = ''

    def notify(self, key, event, obj):
        if key == DEPLOYMENTS:
            if obj['metadata']['name'] == self.deployment:
                self.enqueue_all()
            return
        super().notify(key, event, obj)

    def enqueue_all(self, keys=None):
        for key in keys or self.watches:
            if key != DEPLOYMENTS:
                for obj in self.api.store.list(key):
                    self.enqueue(key, obj['metadata']['namespace'], obj['metadata']['name'])

    def rtype(self, key, version):
        return self.api.registry.get(key[0], version, key[1])

    def current(self, key, version, namespace, name):
        """(type, object) when the type is served and the object exists, else (type, None)."""
        rtype = self.rtype(key, version)
        if rtype is None:
            return None, None
        found = self.api.store.get(key, namespace, name)
        return rtype, (self.api.served_as(rtype, found) if found else None)

    def add_finalizer(self, rtype, obj):
        if FINALIZER in obj['metadata'].get('finalizers', []):
            return obj
        obj = copy.deepcopy(obj)
        obj['metadata'].setdefault('finalizers', []).append(FINALIZER)
        meta = obj['metadata']
        return self.api.replace(rtype, meta['namespace'], meta['name'], obj, self.manager)

    def remove_finalizer(self, rtype, obj):
        obj = copy.deepcopy(obj)
        obj['metadata']['finalizers'] = [f for f in obj['metadata'].get('finalizers', []) if f != FINALIZER]
        meta = obj['metadata']
        self.api.replace(rtype, meta['namespace'], meta['name'], obj, self.manager)

    def write_status(self, rtype, obj, status):
        status = dict(status, conditions=merged_conditions((obj.get('status') or {}).get('conditions'),
                                                          status.get('conditions') or []))
        handled = obj['metadata'].get('annotations', {}).get(REQUESTED_AT)
        if handled:
            status['lastHandledReconcileAt'] = handled
        if status == obj.get('status'):
            return obj
        body = dict(copy.deepcopy(obj), status=status)
        meta = obj['metadata']
        return self.api.replace(rtype, meta['namespace'], meta['name'], body, self.manager, subresource='status')

    def reconcile(self, key, namespace, name):
        if key == DEPLOYMENTS or not controller_available(self.api, self.deployment):
            return None
        return self.reconcile_object(key, namespace, name)

    def reconcile_object(self, key, namespace, name):
        raise NotImplementedError


def artifact(kind_path, namespace, name, file_name, revision, digest, old):
    """A source artifact record; its lastUpdateTime holds while the revision does."""
    path = '{0}/{1}/{2}/{3}'.format(kind_path, namespace, name, file_name)
    updated = old['lastUpdateTime'] if old and old.get('revision') == revision else now()
    return {'digest': 'sha256:' + digest, 'lastUpdateTime': updated, 'path': path, 'revision': revision,
            'size': 1024 + int(digest[:4], 16) % 4096, 'url': '{0}/{1}'.format(ARTIFACT_SERVER, path)}


def resolve_version(wanted, chart):
    """The chart version a version field selects: an exact version must be one the lab serves; any other
    constraint takes the newest (the lab does not evaluate semver ranges)."""
    wanted = (wanted or '*').strip()
    if EXACT_VERSION.match(wanted):
        return wanted.lstrip('v') if wanted.lstrip('v') in chart.versions else None
    return chart.versions[0]


class HelmSourceController(HelmToolkitController):
    """source-controller for HelmRepository and HelmChart objects."""

    name = 'flux-helm-source'
    deployment = 'source-controller'
    manager = 'source-controller'
    watches = (HELM_REPOSITORIES, HELM_CHARTS, DEPLOYMENTS)

    def notify(self, key, event, obj):
        super().notify(key, event, obj)
        if key == HELM_REPOSITORIES:
            self.enqueue_all([HELM_CHARTS])

    def reconcile_object(self, key, namespace, name):
        if key == HELM_REPOSITORIES:
            return self.reconcile_repository(namespace, name)
        return self.reconcile_chart(namespace, name)

    def reconcile_repository(self, namespace, name):
        rtype, repo = self.current(HELM_REPOSITORIES, 'v1', namespace, name)
        if repo is None or repo['spec'].get('type') == 'oci':
            # An OCI HelmRepository is a data container: no artifact, no status.
            return None
        if repo['metadata'].get('deletionTimestamp'):
            self.remove_finalizer(rtype, repo)
            return None
        repo = self.add_finalizer(rtype, repo)
        if repo['spec'].get('suspend'):
            return None
        generation = repo['metadata']['generation']
        url = repo['spec']['url']
        digest = sha256('index:' + url)
        revision = 'sha256:' + digest
        message = "stored artifact: revision '{0}'".format(revision)
        base = '{0}/helmrepository/{1}/{2}/'.format(ARTIFACT_SERVER, namespace, name)
        self.write_status(rtype, repo, {
            'artifact': artifact('helmrepository', namespace, name, 'index-{0}.yaml'.format(digest), revision, digest,
                                 (repo.get('status') or {}).get('artifact')),
            'conditions': [flux_condition('Ready', 'True', 'Succeeded', message, generation),
                           flux_condition('ArtifactInStorage', 'True', 'Succeeded', message, generation)],
            'observedGeneration': generation, 'url': base + 'index.yaml'})
        return None

    def reconcile_chart(self, namespace, name):
        rtype, chart_obj = self.current(HELM_CHARTS, 'v1', namespace, name)
        if chart_obj is None:
            return None
        if chart_obj['metadata'].get('deletionTimestamp'):
            self.remove_finalizer(rtype, chart_obj)
            return None
        chart_obj = self.add_finalizer(rtype, chart_obj)
        spec = chart_obj['spec']
        if spec.get('suspend'):
            return None
        generation = chart_obj['metadata']['generation']
        status = {'observedGeneration': generation}
        old = chart_obj.get('status') or {}
        failure = self._chart_failure(namespace, spec)
        if failure:
            reason, message = failure
            status['conditions'] = [
                flux_condition('Ready', 'False', reason, message, generation),
                flux_condition('FetchFailed', 'True', reason, message, generation)]
            for kept in ('artifact', 'url', 'observedChartName', 'observedSourceArtifactRevision'):
                if kept in old:
                    status[kept] = old[kept]
        else:
            chart = charts.CHARTS[spec['chart']]
            version = resolve_version(spec.get('version'), chart)
            file_name = '{0}-{1}.tgz'.format(chart.name, version)
            message = "pulled '{0}' chart with version '{1}'".format(chart.name, version)
            _, repo = self.current(HELM_REPOSITORIES, 'v1', namespace, spec['sourceRef']['name'])
            repo_artifact = (repo.get('status') or {}).get('artifact') or {}
            status.update({
                'artifact': artifact('helmchart', namespace, name, file_name, version,
                                     sha256('chart:{0}:{1}'.format(chart.name, version)), old.get('artifact')),
                'conditions': [flux_condition('Ready', 'True', 'ChartPullSucceeded', message, generation),
                               flux_condition('ArtifactInStorage', 'True', 'ChartPullSucceeded', message, generation)],
                'observedChartName': chart.name,
                'url': '{0}/helmchart/{1}/{2}/{3}'.format(ARTIFACT_SERVER, namespace, name, file_name)})
            if repo_artifact.get('revision'):
                status['observedSourceArtifactRevision'] = repo_artifact['revision']
        self.write_status(rtype, chart_obj, status)
        return None

    def _chart_failure(self, namespace, spec):
        """(reason, message) of why the chart cannot be pulled, or None."""
        ref = spec['sourceRef']
        if ref['kind'] != 'HelmRepository':
            return 'SourceUnavailable', 'failed to get source: unsupported source kind \'{0}\''.format(ref['kind'])
        _, repo = self.current(HELM_REPOSITORIES, 'v1', namespace, ref['name'])
        if repo is None:
            return 'SourceUnavailable', 'failed to get source: HelmRepository.source.toolkit.fluxcd.io "{0}" not ' \
                                        'found'.format(ref['name'])
        if repo['spec'].get('type') != 'oci' and not (repo.get('status') or {}).get('artifact'):
            return 'NoSourceArtifact', "no artifact available for HelmRepository source '{0}'".format(ref['name'])
        chart = charts.CHARTS.get(spec['chart'])
        if chart is None or resolve_version(spec.get('version'), chart) is None:
            return 'ChartPullError', "invalid chart reference: failed to get chart version for remote reference: " \
                                     "no '{0}' chart with version matching '{1}' found".format(
                                         spec['chart'], spec.get('version') or '*')
        return None


def crd_policy(release, action):
    """helm-controller's CRD policy of an action: Create on install, Skip on upgrade unless the spec says."""
    return (release['spec'].get(action) or {}).get('crds') or ('Create' if action == 'install' else 'Skip')


class ReleaseFailed(Exception):
    """A Helm action that failed, with Helm's error text."""


def inventory_id(obj):
    group = obj['apiVersion'].rpartition('/')[0]
    return '{0}_{1}_{2}_{3}'.format(obj['metadata'].get('namespace', ''), obj['metadata']['name'], group, obj['kind'])


def release_secret_name(release, version):
    return 'sh.helm.release.v1.{0}.v{1}'.format(release, version)


class HelmReleaseController(HelmToolkitController):
    """helm-controller: HelmReleases through their HelmChart to installed, upgraded and uninstalled releases."""

    name = 'flux-helm-release'
    deployment = 'helm-controller'
    manager = 'helm-controller'
    watches = (HELM_RELEASES, HELM_CHARTS, DEPLOYMENTS)

    def __init__(self, api, failures=None):
        super().__init__(api)
        self.seen = {}
        # (namespace, name) of a release whose action waits for its workloads -> what the wait is about
        self.waiting = {}
        self.clock = failures.clock if failures else time.time
        if failures:
            failures.listeners.append(lambda: self.enqueue_all([HELM_RELEASES]))

    def notify(self, key, event, obj):
        if key in (HELM_RELEASES, HELM_CHARTS):
            # Charts and dependencies changing their Ready condition move releases along; a status
            # write that changes neither the spec, the reconcile request nor that condition moves nothing
            # (as a generation-changed predicate would), so a failing release does not spin.
            meta = obj['metadata']
            marker = None if event == 'DELETED' else (
                meta['uid'], meta.get('generation'), meta.get('deletionTimestamp'),
                (meta.get('annotations') or {}).get(REQUESTED_AT), is_ready(obj),
                tuple(sorted((ready_condition(obj) or {}).items())))
            ident = (key, meta['namespace'], meta['name'])
            if ident in self.seen and self.seen[ident] == marker:
                return
            self.seen[ident] = marker
            if marker is None:
                del self.seen[ident]
            self.enqueue_all([HELM_RELEASES])
            return
        super().notify(key, event, obj)

    def reconcile_object(self, key, namespace, name):
        if key != HELM_RELEASES:
            return None
        rtype, release = self.current(HELM_RELEASES, 'v2', namespace, name)
        if release is None:
            return None
        if release['metadata'].get('deletionTimestamp'):
            self.finalize(rtype, release)
            return None
        release = self.add_finalizer(rtype, release)
        if release['spec'].get('suspend'):
            return None
        return self.reconcile_release(rtype, release)

    # the target of a release

    @staticmethod
    def target(release):
        """(release name, release namespace, storage namespace) as helm-controller derives them."""
        spec, meta = release['spec'], release['metadata']
        namespace = spec.get('targetNamespace') or meta['namespace']
        name = spec.get('releaseName') or (
            '{0}-{1}'.format(spec['targetNamespace'], meta['name']) if spec.get('targetNamespace') else meta['name'])
        if len(name) > 53:
            name = '{0}-{1}'.format(name[:40], sha256(name)[:12])
        return name, namespace, spec.get('storageNamespace') or meta['namespace']

    @staticmethod
    def chart_ref(release):
        """(namespace, name) of the HelmChart helm-controller keeps for the release."""
        meta = release['metadata']
        source = release['spec']['chart']['spec']['sourceRef']
        return source.get('namespace') or meta['namespace'], '{0}-{1}'.format(meta['namespace'], meta['name'])

    # reconcile

    def reconcile_release(self, rtype, release):
        generation = release['metadata']['generation']
        status = copy.deepcopy(release.get('status') or {})
        status['observedGeneration'] = generation
        if 'chart' not in release['spec']:
            return self.not_ready(rtype, release, status, 'InvalidChartReference',
                                  'the lab knows HelmReleases with spec.chart only')
        dependency = self.unready_dependency(release)
        if dependency:
            return self.not_ready(rtype, release, status, 'DependencyNotReady', dependency)
        chart_ns, chart_name = self.chart_ref(release)
        status['helmChart'] = '{0}/{1}'.format(chart_ns, chart_name)
        try:
            chart_obj = self.ensure_chart(release, chart_ns, chart_name)
        except ApiError as exc:
            return self.not_ready(rtype, release, status, 'ArtifactFailed',
                                  'could not get HelmChart object: {0}'.format(exc.message))
        if chart_obj is None:
            return None
        if not is_ready(chart_obj):
            cond = ready_condition(chart_obj)
            message = "HelmChart '{0}/{1}' is not ready".format(chart_ns, chart_name)
            if cond and cond.get('message'):
                message += ': ' + cond['message']
            return self.not_ready(rtype, release, status, 'HelmChartNotReady', message)
        chart = charts.CHARTS[chart_obj['status']['observedChartName']]
        return self.release(rtype, release, status, chart, chart_obj['status']['artifact']['revision'])

    def not_ready(self, rtype, release, status, reason, message):
        conditions = [c for c in status.get('conditions') or [] if c['type'] != 'Ready']
        status['conditions'] = [flux_condition('Ready', 'False', reason, message,
                                               release['metadata']['generation'])] + conditions
        self.write_status(rtype, release, status)
        return None

    def unready_dependency(self, release):
        """helm-controller's message for the first dependency that is missing or not ready, else ''."""
        for dependency in release['spec'].get('dependsOn') or []:
            namespace = dependency.get('namespace') or release['metadata']['namespace']
            _, found = self.current(HELM_RELEASES, 'v2', namespace, dependency['name'])
            if found is None:
                return "unable to get '{0}/{1}' dependency: helmreleases.helm.toolkit.fluxcd.io \"{1}\" not " \
                       "found".format(namespace, dependency['name'])
            if not is_ready(found):
                return "dependency '{0}/{1}' is not ready".format(namespace, dependency['name'])
        return ''

    def ensure_chart(self, release, namespace, name):
        """The release's HelmChart, created or brought in line with spec.chart.spec."""
        template = release['spec']['chart']['spec']
        rtype, existing = self.current(HELM_CHARTS, 'v1', namespace, name)
        if rtype is None:
            return None
        spec = {'chart': template['chart'], 'version': template.get('version') or '*',
                'sourceRef': {'kind': template['sourceRef']['kind'], 'name': template['sourceRef']['name']},
                'interval': template.get('interval') or release['spec']['interval'],
                'reconcileStrategy': template.get('reconcileStrategy') or 'ChartVersion'}
        labels = {'helm.toolkit.fluxcd.io/name': release['metadata']['name'],
                  'helm.toolkit.fluxcd.io/namespace': release['metadata']['namespace']}
        if existing is None:
            return self.api.create(rtype, namespace, {'apiVersion': rtype.group_version, 'kind': rtype.kind,
                                                      'metadata': {'name': name, 'labels': labels}, 'spec': spec},
                                   self.manager)
        if any(existing['spec'].get(k) != v for k, v in spec.items()):
            existing['spec'].update(spec)
            existing = self.api.replace(rtype, namespace, name, existing, self.manager)
        return existing

    # Helm actions

    def release(self, rtype, release, status, chart, chart_version):
        name, namespace, storage = self.target(release)
        values = release['spec'].get('values') or {}
        config_digest = 'sha256:' + sha256(json.dumps(values, sort_keys=True, separators=(',', ':')))
        history = status.get('history') or []
        current = history[0] if history else None
        generation = release['metadata']['generation']
        attempt = (generation, chart_version, config_digest)
        ident = (release['metadata']['namespace'], release['metadata']['name'])
        waiting = self.waiting.get(ident)
        if waiting and waiting['attempt'] == attempt and current and current['status'].startswith('pending-'):
            return self.wait_for_release(rtype, release, status, chart, waiting)
        self.waiting.pop(ident, None)
        annotations = release['metadata'].get('annotations') or {}
        reset = annotations.get(RESET_AT)
        if reset and reset == annotations.get(REQUESTED_AT) and reset != status.get('lastHandledResetAt'):
            # `flux reconcile helmrelease --reset`: with a reconcile request of the same token, the failure counts
            # start again.
            for counter in ('failures', 'installFailures', 'upgradeFailures'):
                status.pop(counter, None)
            status['lastHandledResetAt'] = reset
            status['conditions'] = [c for c in status.get('conditions') or [] if c['type'] != 'Stalled']
        elif (status.get('lastAttemptedGeneration'), status.get('lastAttemptedRevision'),
              status.get('lastAttemptedConfigDigest')) == attempt and \
                any(c['type'] == 'Stalled' and c['status'] == 'True' for c in status.get('conditions') or []):
            # No retries left for this attempt: nothing happens until the spec or a reset changes.
            self.write_status(rtype, release, status)
            return None
        if current and (current['name'], current['namespace']) != (name, namespace):
            # A new release target: helm-controller uninstalls the old release first.
            self.uninstall(status)
            current, history = None, []
            status.pop('inventory', None)
        elif current and (current['chartVersion'], current['configDigest']) == (chart_version, config_digest) \
                and status.get('lastAttemptedGeneration') == generation and is_ready(dict(release, status=status)):
            self.write_status(rtype, release, status)
            return None
        action = 'upgrade' if current else 'install'
        status.update(lastAttemptedGeneration=generation, lastAttemptedRevision=chart_version,
                      lastAttemptedConfigDigest=config_digest, lastAttemptedReleaseAction=action,
                      storageNamespace=storage)
        version = (current['version'] + 1) if current else 1
        try:
            objects = self.apply_chart(release, chart, chart_version, (name, namespace), values, action)
        except ReleaseFailed as exc:
            self.release_failed(rtype, release, status, action, name, namespace,
                                '{0}@{1}'.format(chart.name, chart_version), str(exc))
            return None
        inventory = [{'id': inventory_id(o), 'v': o['apiVersion'].rpartition('/')[2]} for o in objects]
        self.delete_entries([e for e in (status.get('inventory') or {}).get('entries') or [] if e not in inventory])
        waits = not (release['spec'].get(action) or {}).get('disableWait')
        record = self.store_release(chart, chart_version, (name, namespace, storage), version, values, objects,
                                    action, current, 'pending-' + action if waits else 'deployed')
        record['configDigest'] = config_digest
        status.update(history=([record] + history)[:MAX_HISTORY], inventory={'entries': inventory},
                      lastReleaseRevision=version)
        if not waits:
            self.released(rtype, release, status, chart)
            return None
        # Helm's wait: the release is deployed once its workloads are ready, failed when spec.timeout runs out.
        timeout = (release['spec'].get(action) or {}).get('timeout') or release['spec'].get('timeout') or '5m0s'
        waiting = {'attempt': attempt, 'action': action, 'deadline': self.clock() + parse_duration(timeout),
                   'objects': [(o['apiVersion'], o['kind'], o['metadata'].get('namespace'), o['metadata']['name'])
                               for o in objects]}
        self.waiting[ident] = waiting
        message = "Running '{0}' action with timeout of {1}".format(action, format_duration(parse_duration(timeout)))
        status['conditions'] = [flux_condition('Ready', 'Unknown', 'Progressing', message, generation),
                                flux_condition('Reconciling', 'True', 'Progressing', message, generation)] + [
            c for c in status.get('conditions') or [] if c['type'] not in ('Ready', 'Reconciling', 'Stalled')]
        release = self.write_status(rtype, release, status)
        return self.wait_for_release(rtype, release, copy.deepcopy(release['status']), chart, waiting)

    def released(self, rtype, release, status, chart):
        """The current release deployed: Ready and Released True."""
        record = status['history'][0]
        generation = release['metadata']['generation']
        reason = 'UpgradeSucceeded' if record['action'] == 'upgrade' else 'InstallSucceeded'
        message = 'Helm {0} succeeded for release {1}/{2}.v{3} with chart {4}@{5}'.format(
            record['action'], record['namespace'], record['name'], record['version'], chart.name,
            record['chartVersion'])
        status['conditions'] = [flux_condition('Ready', 'True', reason, message, generation),
                                flux_condition('Released', 'True', reason, message, generation)]
        self.write_status(rtype, release, status)

    def wait_for_release(self, rtype, release, status, chart, waiting):
        """Deployed once every workload of the release is ready; failed with Helm's `context deadline exceeded` once
        spec.timeout has passed; else look again shortly."""
        ident = (release['metadata']['namespace'], release['metadata']['name'])
        record = status['history'][0]
        if not any(self.workload_unready(ref) for ref in waiting['objects']):
            self.waiting.pop(ident, None)
            self.mark_release(status, 'deployed')
            self.released(rtype, release, status, chart)
            return None
        left = waiting['deadline'] - self.clock()
        if left > 0:
            return min(left, 1.0)
        self.waiting.pop(ident, None)
        self.mark_release(status, 'failed')
        self.release_failed(rtype, release, status, waiting['action'], record['name'], record['namespace'],
                            '{0}@{1}'.format(chart.name, record['chartVersion']), 'context deadline exceeded',
                            stalled=True)
        return None

    def workload_unready(self, ref):
        """Whether an object of the release is not ready as Helm's wait judges it (Deployments, DaemonSets,
        StatefulSets and Jobs; anything else is ready once it exists)."""
        api_version, kind, namespace, name = ref
        group = api_version.rpartition('/')[0]
        plural = {'Deployment': 'deployments', 'DaemonSet': 'daemonsets', 'StatefulSet': 'statefulsets',
                  'Job': 'jobs'}.get(kind)
        if plural is None:
            return False
        obj = self.api.store.get((group, plural), namespace, name)
        if obj is None:
            return True
        spec, state = obj.get('spec') or {}, obj.get('status') or {}
        if state.get('observedGeneration', 0) < obj['metadata'].get('generation', 1):
            return True
        if kind == 'Job':
            return not any(c['type'] == 'Complete' and c['status'] == 'True' for c in state.get('conditions') or [])
        if kind == 'DaemonSet':
            wanted = state.get('desiredNumberScheduled', 0)
            return state.get('numberReady', 0) < wanted or state.get('updatedNumberScheduled', 0) < wanted
        replicas = spec.get('replicas', 1)
        return state.get('readyReplicas', 0) < replicas or state.get('updatedReplicas', 0) < replicas or (
            kind == 'Deployment' and state.get('availableReplicas', 0) < replicas)

    def mark_release(self, status, state):
        """The current release record (history entry and Helm's Secret) moves to `state`."""
        record = status['history'][0]
        record['status'] = state
        secret_type = self.api.registry.get('', 'v1', 'secrets')
        storage = status.get('storageNamespace') or record['namespace']
        secret = self.api.store.get(secret_type.key, storage, release_secret_name(record['name'], record['version']))
        if secret is not None:
            secret = self.api.served_as(secret_type, secret)
            secret['metadata']['labels']['status'] = state
            self.api.replace(secret_type, storage, secret['metadata']['name'], secret, 'Helm')

    def release_failed(self, rtype, release, status, action, name, namespace, chart_ref, error, stalled=False):
        generation = release['metadata']['generation']
        reason = 'UpgradeFailed' if action == 'upgrade' else 'InstallFailed'
        counter = 'upgradeFailures' if action == 'upgrade' else 'installFailures'
        status[counter] = status.get(counter, 0) + 1
        status['failures'] = status.get('failures', 0) + 1
        message = 'Helm {0} failed for release {1}/{2} with chart {3}: {4}'.format(
            action, namespace, name, chart_ref, error)
        status['conditions'] = [flux_condition('Ready', 'False', reason, message, generation),
                                flux_condition('Released', 'False', reason, message, generation)]
        if stalled:
            # A failed release with no remediation retries left (install/upgrade.remediation.retries, 0 unless set).
            retries = ((release['spec'].get(action) or {}).get('remediation') or {}).get('retries', 0)
            status['conditions'].append(flux_condition('Stalled', 'True', 'NoRemainingRetries', 'Attempted {0} times '
                                                       'but failed'.format(retries), generation))
        self.write_status(rtype, release, status)

    def apply_chart(self, release, chart, chart_version, target, values, action):
        """Install or upgrade the chart's CRDs and objects; returns the templated objects."""
        name, namespace = target
        install = release['spec'].get('install') or {}
        if self.api.namespace_of(namespace) is None:
            if action == 'install' and install.get('createNamespace'):
                ns_type = self.api.registry.get('', 'v1', 'namespaces')
                self.api.create(ns_type, None, {'metadata': {'name': namespace}}, self.manager)
            else:
                raise ReleaseFailed('create: failed to create: namespaces "{0}" not found'.format(namespace))
        owner = (release['metadata']['namespace'], release['metadata']['name'])
        objects = charts.render(chart, chart_version, name, namespace, values, owner)
        for obj in objects:
            self.check_ownership(obj, name, namespace)
        self.apply_crds(charts.crds(chart, values), crd_policy(release, action))
        for obj in objects:
            self.put(obj)
        return objects

    def apply_crds(self, crds, policy):
        """CRDs as spec.install.crds / spec.upgrade.crds say: Skip, Create (missing ones) or CreateReplace."""
        crd_type = self.api.registry.get('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')
        for crd in crds if policy != 'Skip' else ():
            existing = self.api.store.get(crd_type.key, None, crd['metadata']['name'])
            if existing is None:
                self.api.create(crd_type, None, crd, self.manager)
            elif policy == 'CreateReplace':
                crd['metadata'] = dict(copy.deepcopy(existing['metadata']), **crd['metadata'])
                self.api.replace(crd_type, None, crd['metadata']['name'], crd, self.manager)

    def object_type(self, obj):
        group, _, version = obj['apiVersion'].rpartition('/')
        return self.api.registry.by_kind(group, version, obj['kind'])

    def check_ownership(self, obj, name, namespace):
        """Helm refuses to adopt an object another release, or no release, made."""
        rtype = self.object_type(obj)
        existing = self.api.store.get(rtype.key, obj['metadata'].get('namespace'), obj['metadata']['name'])
        if existing is None:
            return
        annotations = existing['metadata'].get('annotations') or {}
        problems = ['annotation validation error: {0} key "{1}": must be set to "{2}"'.format(
            'missing' if key not in annotations else 'key "{0}" has value "{1}"'.format(key, annotations[key]),
            key, wanted) for key, wanted in (('meta.helm.sh/release-name', name),
                                               ('meta.helm.sh/release-namespace', namespace))
            if annotations.get(key) != wanted]
        if problems:
            raise ReleaseFailed(
                'rendered manifests contain a resource that already exists. Unable to continue with install: {0} '
                '"{1}" in namespace "{2}" exists and cannot be imported into the current release: invalid ownership '
                'metadata; {3}'.format(obj['kind'], obj['metadata']['name'], obj['metadata'].get('namespace', ''),
                                       '; '.join(problems)))

    def put(self, obj):
        rtype = self.object_type(obj)
        meta = obj['metadata']
        namespace = meta.get('namespace') if rtype.namespaced else None
        existing = self.api.store.get(rtype.key, namespace, meta['name'])
        # Helm checks rendered manifests against the server's schemas: an unknown field fails the release.
        if existing is None:
            self.api.create(rtype, namespace, obj, self.manager, directive='Strict')
            return
        body = dict(copy.deepcopy(obj), metadata=dict(copy.deepcopy(existing['metadata']), **copy.deepcopy(meta)))
        self.api.replace(rtype, namespace, meta['name'], body, self.manager, directive='Strict')

    def store_release(self, chart, chart_version, target, version, values, objects, action, current, state):
        """Helm's release record: a Secret per revision in the storage namespace; returns the history entry."""
        name, namespace, storage = target
        app_version = charts.app_version(chart_version)
        secret_type = self.api.registry.get('', 'v1', 'secrets')
        if current:
            self.supersede(secret_type, storage, release_secret_name(name, current['version']))
        deployed = now()
        first = current['firstDeployed'] if current else deployed
        manifest = '---\n' + '---\n'.join(yaml.safe_dump(o, sort_keys=False) for o in objects)
        record = {'name': name, 'namespace': namespace, 'version': version,
                  'info': {'first_deployed': first, 'last_deployed': deployed, 'deleted': '', 'status': state,
                           'description': 'Upgrade complete' if current else 'Install complete'},
                  'chart': {'metadata': {'name': chart.name, 'version': chart_version, 'appVersion': app_version,
                                         'apiVersion': 'v2'}},
                  'config': values, 'manifest': manifest}
        encoded = base64.b64encode(gzip.compress(json.dumps(record).encode(), mtime=0)).decode()
        self.api.create(secret_type, storage, {
            'metadata': {'name': release_secret_name(name, version), 'labels': {
                'name': name, 'owner': 'helm', 'status': state, 'version': str(version),
                'modifiedAt': str(int(time.time()))}},
            'type': 'helm.sh/release.v1', 'data': {'release': base64.b64encode(encoded.encode()).decode()}},
            'Helm')
        return {'action': action, 'apiVersion': 'v2', 'appVersion': app_version, 'chartName': chart.name,
                'chartVersion': chart_version, 'digest': 'sha256:' + sha256(encoded), 'firstDeployed': first,
                'lastDeployed': deployed, 'name': name, 'namespace': namespace, 'status': state,
                'version': version}

    def supersede(self, secret_type, namespace, secret_name):
        secret = self.api.store.get(secret_type.key, namespace, secret_name)
        if secret is not None:
            secret = self.api.served_as(secret_type, secret)
            secret['metadata']['labels']['status'] = 'superseded'
            self.api.replace(secret_type, namespace, secret_name, secret, 'Helm')

    # uninstall

    def finalize(self, rtype, release):
        """On deletion: uninstall (unless suspended), remove the HelmChart, let the object go."""
        status = release.get('status') or {}
        if status.get('history') and not release['spec'].get('suspend'):
            self.uninstall(status)
        chart_type, chart_obj = self.current(HELM_CHARTS, 'v1', *self.chart_ref(release)) \
            if 'chart' in release['spec'] else (None, None)
        if chart_obj is not None and not chart_obj['metadata'].get('deletionTimestamp'):
            self.api.delete(chart_type, chart_obj['metadata']['namespace'], chart_obj['metadata']['name'])
        self.remove_finalizer(rtype, release)

    def delete_entries(self, entries):
        """Deletes the objects of these inventory entries that still exist."""
        for entry in entries:
            namespace, name, group, kind = entry['id'].split('_', 3)
            rtype = self.api.registry.by_kind(group, entry['v'], kind)
            if rtype and self.api.store.get(rtype.key, namespace or None, name) is not None:
                self.api.delete(rtype, namespace or None, name)

    def uninstall(self, status):
        """Removes what the release made, as its inventory lists it, and its release Secrets; CRDs stay."""
        self.delete_entries((status.get('inventory') or {}).get('entries') or [])
        current = status['history'][0]
        storage = status.get('storageNamespace') or current['namespace']
        secret_type = self.api.registry.get('', 'v1', 'secrets')
        for secret in self.api.store.list(secret_type.key, storage):
            labels = secret['metadata'].get('labels') or {}
            if labels.get('owner') == 'helm' and labels.get('name') == current['name']:
                self.api.store.delete(secret_type.key, storage, secret['metadata']['name'])


def controllers(api, failures=None):
    return [HelmSourceController(api), HelmReleaseController(api, failures)]
