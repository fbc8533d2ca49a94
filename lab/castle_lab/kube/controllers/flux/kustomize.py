"""Flux's kustomize-controller for Kustomization: built with the real `kubectl kustomize`, substituted, dry-run and
server-side applied through the API's own rules in stages, pruned, and health-checked."""

import asyncio
import base64
import copy
import logging
import pathlib
import re
import shutil
import tempfile
import time

import yaml

from ...api.errors import ApiError
from ...api.patch import APPLY_PATCH
from . import envsubst
from .common import GIT_REPOSITORIES, Failure, FluxController, error_text, flux_condition, is_ready, run_command
from .objects import (CURRENT, FAILED, KUSTOMIZATION_FILES, apply_stages, describe, format_duration,
                      generated_resources, group_of, has_kustomization, inventory_entry, parse_duration,
                      parse_object_id, readiness, version_of)

log = logging.getLogger(__name__)

KUSTOMIZATIONS = ('kustomize.toolkit.fluxcd.io', 'kustomizations')
CONFIG_SOURCES = {'ConfigMap': ('', 'configmaps'), 'Secret': ('', 'secrets')}
SOURCE_PLURALS = {'GitRepository': 'gitrepositories', 'OCIRepository': 'ocirepositories', 'Bucket': 'buckets'}
WATCH_LABEL = 'reconcile.fluxcd.io/watch'
PRUNE_ANNOTATION = 'kustomize.toolkit.fluxcd.io/prune'
SSA_ANNOTATION = 'kustomize.toolkit.fluxcd.io/ssa'
FORCE_ANNOTATION = 'kustomize.toolkit.fluxcd.io/force'
NAME_LABEL, NAMESPACE_LABEL = 'kustomize.toolkit.fluxcd.io/name', 'kustomize.toolkit.fluxcd.io/namespace'
# kustomize-controller's --requeue-dependency default.
DEPENDENCY_REQUEUE = 30.0
HEALTH_POLL = 0.2


def _annotation(obj, key):
    """An object's annotation, or its label, of this key (Flux reads its policies from either)."""
    meta = obj.get('metadata') or {}
    return (meta.get('annotations') or {}).get(key) or (meta.get('labels') or {}).get(key)


class KustomizationController(FluxController):
    """kustomize-controller: builds the source's path, substitutes, applies in stages, prunes, waits for health."""

    name = 'flux-kustomize-controller'
    deployment = 'kustomize-controller'
    kind_key = KUSTOMIZATIONS
    manager = 'kustomize-controller'

    def __init__(self, api, storage, kubectl):
        super().__init__(api)
        self.storage, self.kubectl = storage, kubectl
        # Kustomizations whose applied objects are being health-checked: (namespace, name) -> progress.
        self.waiting = {}

    # what else starts a reconcile

    def notify(self, key, event, obj):
        super().notify(key, event, obj)
        if key == self.kind_key and event != 'DELETED' and is_ready(obj):
            self._enqueue_dependents(obj)

    def related(self, key, event, obj):
        if key == GIT_REPOSITORIES:
            revision = ((obj.get('status') or {}).get('artifact') or {}).get('revision')
            for kustomization in self._using_source('GitRepository', obj):
                if (kustomization.get('status') or {}).get('lastAttemptedRevision') != revision:
                    self._enqueue_object(kustomization)
        elif key in CONFIG_SOURCES.values() and (obj['metadata'].get('labels') or {}).get(WATCH_LABEL) == 'Enabled':
            kind = 'ConfigMap' if key == CONFIG_SOURCES['ConfigMap'] else 'Secret'
            for kustomization in self.api.store.list(self.kind_key, obj['metadata']['namespace']):
                refs = ((kustomization.get('spec') or {}).get('postBuild') or {}).get('substituteFrom') or []
                if any(r.get('kind') == kind and r.get('name') == obj['metadata']['name'] for r in refs):
                    self.waiting.pop((obj['metadata']['namespace'], kustomization['metadata']['name']), None)
                    self._enqueue_object(kustomization)

    def _using_source(self, kind, source):
        meta = source['metadata']
        for kustomization in self.api.store.list(self.kind_key):
            ref = (kustomization.get('spec') or {}).get('sourceRef') or {}
            if ref.get('kind') == kind and ref.get('name') == meta['name'] and (
                    ref.get('namespace') or kustomization['metadata']['namespace']) == meta['namespace']:
                yield kustomization

    def _enqueue_dependents(self, dependency):
        meta = dependency['metadata']
        for kustomization in self.api.store.list(self.kind_key):
            for dep in (kustomization.get('spec') or {}).get('dependsOn') or []:
                if dep.get('name') == meta['name'] and (
                        dep.get('namespace') or kustomization['metadata']['namespace']) == meta['namespace']:
                    if not is_ready(kustomization):
                        self._enqueue_object(kustomization)

    def _enqueue_object(self, obj):
        self.enqueue(self.kind_key, obj['metadata']['namespace'], obj['metadata']['name'])

    # reconcile

    def forget(self, namespace, name):
        self.waiting.pop((namespace, name), None)

    async def reconcile_object(self, obj):
        spec, namespace, name = obj['spec'], obj['metadata']['namespace'], obj['metadata']['name']
        retry = parse_duration(spec.get('retryInterval') or spec['interval'])
        revision = None
        try:
            revision, artifact_dir = self._source(obj)
            self._check_dependencies(obj, revision)
            waiting = self.waiting.get((namespace, name))
            if waiting and waiting['signature'] == (obj['metadata'].get('generation'), revision):
                return self._check_health(obj, waiting)
            objects = await self._build(obj, artifact_dir)
            applied = await self._apply(obj, objects)
        except Failure as failure:
            self.waiting.pop((namespace, name), None)
            self._fail(obj, failure, revision)
            return DEPENDENCY_REQUEUE if failure.reason == 'DependencyNotReady' else retry
        entries = [inventory_entry(o) for o in applied]
        old_entries = ((obj.get('status') or {}).get('inventory') or {}).get('entries') or []
        obj = self.current(namespace, name) or obj
        if spec.get('prune'):
            self._prune(obj, [e for e in old_entries if e['id'] not in {n['id'] for n in entries}])
        targets = self._health_targets(obj, applied)
        progress = {'signature': (obj['metadata'].get('generation'), revision), 'revision': revision,
                    'entries': entries, 'targets': targets, 'started': time.monotonic()}
        if not targets:
            self._succeed(obj, progress)
            return parse_duration(spec['interval'])
        self.waiting[(namespace, name)] = progress
        self._progressing(obj, progress)
        return self._check_health(obj, progress)

    def _source(self, obj):
        """(revision, artifact directory) of the source's artifact."""
        ref, namespace = obj['spec']['sourceRef'], obj['metadata']['namespace']
        source_namespace = ref.get('namespace') or namespace
        label = "Source '{0}/{1}/{2}'".format(ref['kind'], source_namespace, ref['name'])
        plural = SOURCE_PLURALS.get(ref['kind'], '')
        source = self.api.store.get(('source.toolkit.fluxcd.io', plural), source_namespace, ref['name'])
        if source is None:
            raise Failure('ArtifactFailed', label + ' not found')
        artifact = (source.get('status') or {}).get('artifact')
        if not artifact:
            raise Failure('ArtifactFailed', 'Source is not ready, artifact not found')
        directory = self.storage.tree(artifact['path'])
        if not directory.is_dir():
            raise Failure('ArtifactFailed', 'failed to download artifact from {0}: 404 Not Found'.format(
                artifact.get('url', '')))
        return artifact['revision'], directory

    def _check_dependencies(self, obj, revision):
        namespace = obj['metadata']['namespace']
        source_ref = obj['spec']['sourceRef']
        for dep in obj['spec'].get('dependsOn') or []:
            dep_namespace = dep.get('namespace') or namespace
            label = '{0}/{1}'.format(dep_namespace, dep['name'])
            found = self.api.store.get(self.kind_key, dep_namespace, dep['name'])
            if found is None:
                raise Failure('DependencyNotReady', "unable to get '{0}' dependency: kustomizations.kustomize."
                              "toolkit.fluxcd.io \"{1}\" not found".format(label, dep['name']))
            if not is_ready(found):
                raise Failure('DependencyNotReady', "dependency '{0}' is not ready".format(label))
            dep_ref = found['spec'].get('sourceRef') or {}
            same_source = (dep_ref.get('kind'), dep_ref.get('name'), dep_ref.get('namespace') or dep_namespace) == (
                source_ref['kind'], source_ref['name'], source_ref.get('namespace') or namespace)
            if same_source and found['status'].get('lastAppliedRevision') != revision:
                raise Failure('DependencyNotReady', "dependency '{0}' revision is not up to date".format(label))

    # build

    async def _build(self, obj, artifact_dir):
        """The objects of spec.path, built by kubectl kustomize and substituted."""
        work = pathlib.Path(tempfile.mkdtemp(prefix='kustomization-'))
        try:
            root = (work / 'source').resolve()
            try:
                await asyncio.to_thread(shutil.copytree, artifact_dir, root, True)
            except (OSError, shutil.Error) as exc:
                # The source controller replaced the artifact meanwhile: as a fetch of a gone artifact, retried.
                raise Failure('ArtifactFailed', 'failed to download artifact: {0}'.format(exc)) from None
            directory = (root / (obj['spec'].get('path') or '.').lstrip('/')).resolve()
            if not directory.is_dir() or not directory.is_relative_to(root):
                raise Failure('ArtifactFailed', 'kustomization path not found: stat {0}: no such file or '
                              'directory'.format(directory))
            self._prepare_kustomization(obj, directory)
            # Flux builds without kustomize's load restrictions; the copy holds nothing but the artifact.
            code, out, err = await run_command([self.kubectl, 'kustomize', '--load-restrictor=LoadRestrictionsNone',
                                                str(directory)])
            if code:
                raise Failure('BuildFailed', 'kustomize build failed: ' + error_text(err))
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
        return self._substituted(obj, [d for d in re.split(r'^---[ \t]*$', out, flags=re.M) if d.strip()])

    @staticmethod
    def _prepare_kustomization(obj, directory):
        """Writes the kustomization.yaml Flux generates for plain manifests, and the spec fields Flux adds to it."""
        if not has_kustomization(str(directory)):
            (directory / 'kustomization.yaml').write_text(yaml.safe_dump({
                'apiVersion': 'kustomize.config.k8s.io/v1beta1', 'kind': 'Kustomization',
                'resources': generated_resources(str(directory))}))
        spec = obj['spec']
        added = {field: spec[field] for field in ('namePrefix', 'nameSuffix', 'patches', 'images', 'components')
                 if spec.get(field)}
        if spec.get('ignoreMissingComponents') and added.get('components'):
            added['components'] = [c for c in added['components'] if (directory / c).exists()]
        if spec.get('targetNamespace'):
            added['namespace'] = spec['targetNamespace']
        if added:
            path = next(directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file())
            config = yaml.safe_load(path.read_text()) or {}
            for field, value in added.items():
                config[field] = config.get(field, []) + value if field in ('patches', 'images', 'components') \
                    else value
            path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _substituted(self, obj, documents):
        variables = self._variables(obj)
        objects = []
        for text in documents:
            doc = yaml.safe_load(text)
            if not isinstance(doc, dict):
                continue
            if variables is not None and not envsubst.substitution_disabled(doc):
                doc = self._substitute(doc, text, variables)
            objects.append(doc)
        return objects

    @staticmethod
    def _substitute(doc, text, variables):
        """The document `text` (of `doc`) with the variables substituted, as an object."""
        failed = "post build failed for '{0}': ".format((doc.get('metadata') or {}).get('name', ''))
        try:
            envsubst.check_names(variables)
        except envsubst.SubstitutionError as exc:
            raise Failure('BuildFailed', failed + str(exc)) from None
        try:
            return yaml.safe_load(envsubst.substitute(text, variables))
        except (envsubst.SubstitutionError, yaml.YAMLError) as exc:
            raise Failure('BuildFailed', failed + 'variable substitution failed: ' + str(exc).splitlines()[0]) from None

    def _variables(self, obj):
        """The postBuild variables, or None when the Kustomization substitutes nothing."""
        post = obj['spec'].get('postBuild') or {}
        if not post.get('substitute') and not post.get('substituteFrom'):
            return None
        sources = []
        for ref in post.get('substituteFrom') or []:
            key = CONFIG_SOURCES.get(ref.get('kind'))
            found = self.api.store.get(key, obj['metadata']['namespace'], ref['name']) if key else None
            if found is None:
                if ref.get('optional'):
                    continue
                raise Failure('BuildFailed', "substitute from '{0}/{1}' error: {2} \"{1}\" not found".format(
                    ref.get('kind'), ref['name'], key[1] if key else ref.get('kind', '').lower() + 's'))
            data = dict(found.get('data') or {})
            if ref['kind'] == 'Secret':
                data = {k: base64.b64decode(v).decode(errors='replace') for k, v in data.items()}
            sources.append(data)
        return envsubst.merged_variables(post.get('substitute'), sources)

    # apply

    async def _apply(self, obj, objects):
        """Dry-runs, then applies, each stage in turn; new CRDs are served before the next stage."""
        labelled = [self._labelled(obj, o) for o in objects]
        timeout = parse_duration(obj['spec'].get('timeout') or obj['spec']['interval'])
        applied = []
        for stage in apply_stages(labelled):
            plan = []
            for item in stage:
                rtype = self._type_of(item)
                policy = _annotation(item, SSA_ANNOTATION) or 'Override'
                live = self.api.store.get(rtype.key, item['metadata'].get('namespace'), item['metadata']['name'])
                if policy in ('Ignore', 'IfNotPresent') and live is not None:
                    applied.append(self.api.served_as(rtype, live))
                elif policy != 'Ignore':
                    plan.append((rtype, item, self._dry_run(obj, rtype, item)))
            for rtype, item, recreate in plan:
                if recreate:
                    self.api.delete(rtype, item['metadata'].get('namespace'), item['metadata']['name'])
                applied.append(self._server_side_apply(rtype, item, dry_run=False))
            await self._wait_for_crds([o for o in applied if o['kind'] == 'CustomResourceDefinition'], timeout)
        return applied

    def _dry_run(self, kustomization, rtype, obj):
        """Whether obj has to be recreated: a dry run that only fails on an immutable field, with force enabled."""
        try:
            self._server_side_apply(rtype, obj, dry_run=True)
        except Failure as failure:
            forced = kustomization['spec'].get('force') or (_annotation(obj, FORCE_ANNOTATION) or '').lower() == \
                'enabled'
            if forced and 'field is immutable' in failure.message:
                return True
            raise
        return False

    @staticmethod
    def _labelled(kustomization, obj):
        """obj with spec.commonMetadata and the labels naming the Kustomization."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault('metadata', {})
        common = kustomization['spec'].get('commonMetadata') or {}
        if common.get('annotations'):
            meta.setdefault('annotations', {}).update(common['annotations'])
        meta.setdefault('labels', {}).update(common.get('labels') or {})
        meta['labels'].update({NAME_LABEL: kustomization['metadata']['name'],
                               NAMESPACE_LABEL: kustomization['metadata']['namespace']})
        return obj

    def _type_of(self, obj):
        api_version, kind = obj.get('apiVersion', ''), obj.get('kind', '')
        rtype = self.api.registry.by_kind(group_of(api_version), version_of(api_version), kind)
        if rtype is None:
            raise Failure('ReconciliationFailed', '{0} dry-run failed: no matches for kind "{1}" in version '
                          '"{2}"'.format(describe(obj), kind, api_version))
        meta = obj['metadata']
        if not rtype.namespaced:
            meta.pop('namespace', None)
        elif not meta.get('namespace'):
            raise Failure('ReconciliationFailed', '{0} namespace not specified'.format(describe(obj)))
        return rtype

    def _server_side_apply(self, rtype, obj, dry_run):
        meta = obj['metadata']
        try:
            return self.api.patch(rtype, meta.get('namespace'), meta['name'], obj, APPLY_PATCH, self.manager,
                                  dry_run=dry_run, force=True)[0]
        except ApiError as exc:
            action = 'dry-run failed' if dry_run else 'apply failed'
            raise Failure('ReconciliationFailed', '{0} {1}: {2}'.format(describe(obj), action, exc.message)) from None

    async def _wait_for_crds(self, crds, timeout):
        deadline = time.monotonic() + timeout
        for crd in crds:
            name = crd['metadata']['name']
            while not self._served(name):
                if time.monotonic() > deadline:
                    raise Failure('ReconciliationFailed', "timeout waiting for: [{0} status: 'InProgress']".format(
                        describe(crd)))
                await asyncio.sleep(0.05)

    def _served(self, crd_name):
        crd = self.api.store.get(('apiextensions.k8s.io', 'customresourcedefinitions'), None, crd_name)
        return crd is not None and readiness(crd) == CURRENT and any(
            t.crd == crd_name for t in self.api.registry.types.values())

    # prune and deletion

    def _prune(self, obj, entries):
        """Deletes the objects of these inventory entries this Kustomization applied, latest first."""
        meta = obj['metadata']
        for entry in reversed(entries):
            namespace, name, group, kind = parse_object_id(entry['id'])
            rtype = self.api.registry.by_kind(group, entry['v'], kind)
            live = rtype and self.api.store.get(rtype.key, namespace or None, name)
            if not live:
                continue
            labels = live['metadata'].get('labels') or {}
            if (_annotation(live, PRUNE_ANNOTATION) or '').lower() == 'disabled':
                continue
            if (labels.get(NAME_LABEL), labels.get(NAMESPACE_LABEL)) != (meta['name'], meta['namespace']):
                continue
            try:
                self.api.delete(rtype, namespace or None, name)
            except ApiError as exc:
                log.info('prune %s: %s', entry['id'], exc.message)

    def finalize(self, obj):
        """Deletes the inventory's objects when the deletion policy (by default: spec.prune) says so."""
        spec = obj.get('spec') or {}
        policy = spec.get('deletionPolicy') or 'MirrorPrune'
        if not spec.get('suspend') and (policy == 'Delete' or (policy in ('MirrorPrune', 'WaitForTermination')
                                                               and spec.get('prune'))):
            self._prune(obj, ((obj.get('status') or {}).get('inventory') or {}).get('entries') or [])

    # health

    def _health_targets(self, obj, applied):
        """(apiVersion, kind, namespace, name) to wait for: every applied object with spec.wait, else healthChecks."""
        if obj['spec'].get('wait'):
            return [(o['apiVersion'], o['kind'], o['metadata'].get('namespace', ''), o['metadata']['name'])
                    for o in applied]
        targets = []
        for check in obj['spec'].get('healthChecks') or []:
            api_version = check.get('apiVersion', '')
            rtype = self.api.registry.by_kind(group_of(api_version), version_of(api_version), check['kind'])
            namespace = check.get('namespace') or (obj['metadata']['namespace'] if rtype is None or rtype.namespaced
                                                   else '')
            targets.append((api_version, check['kind'], namespace, check['name']))
        return targets

    def _target_states(self, targets):
        states = []
        for api_version, kind, namespace, name in targets:
            rtype = self.api.registry.by_kind(group_of(api_version), version_of(api_version), kind)
            live = rtype and self.api.store.get(rtype.key, namespace or None, name)
            label = '{0}/{1}/{2}'.format(kind, namespace, name) if namespace else '{0}/{1}'.format(kind, name)
            states.append((label, readiness(live or None)))
        return states

    def _check_health(self, obj, progress):
        namespace, name = obj['metadata']['namespace'], obj['metadata']['name']
        states = self._target_states(progress['targets'])
        elapsed = time.monotonic() - progress['started']
        pending = ["{0} status: '{1}'".format(label, state) for label, state in states if state != CURRENT]
        failed = ["{0} status: '{1}'".format(label, state) for label, state in states if state == FAILED]
        timeout = parse_duration(obj['spec'].get('timeout') or obj['spec']['interval'])
        if not pending:
            self.waiting.pop((namespace, name), None)
            self._succeed(obj, progress, elapsed)
            return parse_duration(obj['spec']['interval'])
        if failed or elapsed >= timeout:
            self.waiting.pop((namespace, name), None)
            why = 'failed early due to stalled resources: [{0}]'.format(', '.join(failed)) if failed else \
                'timeout waiting for: [{0}]'.format(', '.join(pending))
            message = 'health check failed after {0}: {1}'.format(format_duration(elapsed), why)
            self._fail(obj, Failure('HealthCheckFailed', message), progress['revision'], progress['entries'])
            return parse_duration(obj['spec'].get('retryInterval') or obj['spec']['interval'])
        return HEALTH_POLL

    # status

    def _progressing(self, obj, progress):
        generation = obj['metadata'].get('generation')
        timeout = format_duration(parse_duration(obj['spec'].get('timeout') or obj['spec']['interval']))
        message = 'Running health checks for revision {0} with a timeout of {1}'.format(progress['revision'], timeout)
        status = self.base_status(obj)
        status.update(inventory={'entries': progress['entries']}, lastAttemptedRevision=progress['revision'])
        conditions = [flux_condition('Ready', 'Unknown', 'Progressing', 'Reconciliation in progress', generation),
                      flux_condition('Healthy', 'Unknown', 'Progressing', message, generation)]
        self.write_status(obj['metadata']['namespace'], obj['metadata']['name'],
                          self.with_conditions(obj, status, conditions))

    def _succeed(self, obj, progress, elapsed=None):
        obj = self.current(obj['metadata']['namespace'], obj['metadata']['name']) or obj
        generation = obj['metadata'].get('generation')
        status = self.base_status(obj)
        status.update(inventory={'entries': progress['entries']}, lastAppliedRevision=progress['revision'],
                      lastAttemptedRevision=progress['revision'], observedGeneration=generation)
        conditions = [flux_condition('Ready', 'True', 'ReconciliationSucceeded',
                                     'Applied revision: {0}'.format(progress['revision']), generation)]
        if progress['targets']:
            conditions.append(flux_condition('Healthy', 'True', 'Succeeded', 'Health check passed in {0}'.format(
                format_duration(elapsed or 0.0)), generation))
        self.write_status(obj['metadata']['namespace'], obj['metadata']['name'],
                          self.with_conditions(obj, status, conditions))

    def _fail(self, obj, failure, revision=None, entries=None):
        """Ready=False; the last applied revision and inventory stay as they were unless objects were applied."""
        obj = self.current(obj['metadata']['namespace'], obj['metadata']['name']) or obj
        generation = obj['metadata'].get('generation')
        status = self.base_status(obj)
        if revision and failure.reason not in ('ArtifactFailed', 'DependencyNotReady'):
            status['lastAttemptedRevision'] = revision
        if entries is not None:
            status['inventory'] = {'entries': entries}
        conditions = [flux_condition('Ready', 'False', failure.reason, failure.message, generation)]
        if failure.reason == 'HealthCheckFailed':
            conditions.append(flux_condition('Healthy', 'False', 'HealthCheckFailed', failure.message, generation))
        self.write_status(obj['metadata']['namespace'], obj['metadata']['name'],
                          self.with_conditions(obj, status, conditions, ('Healthy',)))

