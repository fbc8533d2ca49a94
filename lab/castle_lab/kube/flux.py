"""Flux's source-controller (GitRepository) and kustomize-controller (Kustomization), acting only while their
Deployment is Available in the cluster, as installed from Flux's manifest.

GitRepositories are fetched with the real `git` and stored as a directory per revision; Kustomizations are built
with the real `kubectl kustomize`, substituted, dry-run and server-side applied through the API's own rules."""

import asyncio
import base64
import copy
import hashlib
import logging
import os
import pathlib
import re
import shutil
import tempfile
import time

import yaml

from . import envsubst
from .api import now
from .errors import ApiError
from .flux_objects import (CURRENT, FAILED, apply_stages, describe, format_duration, generated_resources, group_of,
                           has_kustomization, ignored_files, inventory_entry, latest_matching, parse_duration,
                           parse_object_id, readiness, version_of, KUSTOMIZATION_FILES)
from .controllers import Controller
from .patch import APPLY_PATCH

log = logging.getLogger(__name__)

GIT_REPOSITORIES = ('source.toolkit.fluxcd.io', 'gitrepositories')
KUSTOMIZATIONS = ('kustomize.toolkit.fluxcd.io', 'kustomizations')
DEPLOYMENTS = ('apps', 'deployments')
CONFIG_SOURCES = {'ConfigMap': ('', 'configmaps'), 'Secret': ('', 'secrets')}
SOURCE_PLURALS = {'GitRepository': 'gitrepositories', 'OCIRepository': 'ocirepositories', 'Bucket': 'buckets'}
FINALIZER = 'finalizers.fluxcd.io'
REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt'
WATCH_LABEL = 'reconcile.fluxcd.io/watch'
PRUNE_ANNOTATION = 'kustomize.toolkit.fluxcd.io/prune'
SSA_ANNOTATION = 'kustomize.toolkit.fluxcd.io/ssa'
FORCE_ANNOTATION = 'kustomize.toolkit.fluxcd.io/force'
NAME_LABEL, NAMESPACE_LABEL = 'kustomize.toolkit.fluxcd.io/name', 'kustomize.toolkit.fluxcd.io/namespace'
ARTIFACT_SERVER = 'http://source-controller.flux-system.svc.cluster.local.'
# kustomize-controller's --requeue-dependency default.
DEPENDENCY_REQUEUE = 30.0
HEALTH_POLL = 0.2
COMMAND_TIMEOUT = 120.0


class Failure(Exception):
    """A reconcile that ends with Ready=False for `reason`."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason, self.message = reason, message


def controller_available(api, name):
    """Whether a Deployment called `name` is Available in some namespace."""
    for deployment in api.store.list(DEPLOYMENTS):
        if deployment['metadata']['name'] == name and any(
                c.get('type') == 'Available' and c.get('status') == 'True'
                for c in (deployment.get('status') or {}).get('conditions') or []):
            return True
    return False


def _annotation(obj, key):
    """An object's annotation, or its label, of this key (Flux reads its policies from either)."""
    meta = obj.get('metadata') or {}
    return (meta.get('annotations') or {}).get(key) or (meta.get('labels') or {}).get(key)


def flux_condition(kind, status, reason, message, generation):
    return {'type': kind, 'status': status, 'observedGeneration': generation, 'lastTransitionTime': now(),
            'reason': reason, 'message': message}


def merged_conditions(old, new):
    """New conditions keep the transition time of an old one of the same type and status."""
    previous = {c['type']: c for c in old or []}
    merged = []
    for cond in new:
        before = previous.get(cond['type'])
        if before and before['status'] == cond['status']:
            cond = dict(cond, lastTransitionTime=before['lastTransitionTime'])
        merged.append(cond)
    return merged



def replace_status(api, rtype, current, status, manager):
    """Writes `status` through the object's status subresource unless it is what the object has; the
    conditions keep their transition times (merged_conditions)."""
    old = current.get('status') or {}
    status['conditions'] = merged_conditions(old.get('conditions'), status.get('conditions') or [])
    if status == old:
        return
    body = api.served_as(rtype, current)
    body['status'] = status
    meta = current['metadata']
    api.replace(rtype, meta.get('namespace') or None, meta['name'], body, manager, subresource='status')

def is_ready(obj):
    """Ready=True at the object's current generation."""
    status = obj.get('status') or {}
    ready = next((c for c in status.get('conditions') or [] if c.get('type') == 'Ready'), None)
    return bool(ready and ready.get('status') == 'True'
                and status.get('observedGeneration') == obj['metadata'].get('generation'))


async def run_command(argv, env=None, cwd=None, timeout=COMMAND_TIMEOUT):
    """(exit code, stdout, stderr) of a subprocess, without blocking the event loop."""
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        return -1, '', 'timed out after {0}'.format(format_duration(timeout))
    return process.returncode, out.decode(errors='replace'), err.decode(errors='replace')


def error_text(stderr):
    """The meaningful lines of a command's error output, without `fatal:`/`error:` prefixes."""
    lines = [re.sub(r'^(fatal|error): ', '', line.strip()) for line in stderr.splitlines() if line.strip()]
    return '; '.join(line for line in lines if not line.startswith(('hint:', 'warning:'))) or 'exit status 1'


class ArtifactStorage:
    """Artifacts as directories: <root>/<kind>/<namespace>/<name>/<revision hash>/, only the latest kept."""

    def __init__(self, root):
        self.root = pathlib.Path(root)

    def owner_dir(self, kind, namespace, name):
        return self.root / kind / namespace / name

    def tree(self, artifact_path):
        """The directory an artifact's status path (`.../<sha>.tar.gz`) stands for."""
        relative = pathlib.PurePosixPath(artifact_path)
        return self.root / relative.parent / relative.name.split('.')[0]

    def remove(self, kind, namespace, name):
        shutil.rmtree(self.owner_dir(kind, namespace, name), ignore_errors=True)


def remove_ignored(tree, spec_ignore):
    for relative in ignored_files(str(tree), spec_ignore):
        (tree / relative).unlink()


def tree_digest(directory):
    """(sha256 digest, size in bytes) of a directory's files and their relative paths."""
    digest, size = hashlib.sha256(), 0
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, directory).encode() + b'\0')
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, 'rb') as handle:
                    data = handle.read()
                digest.update(data)
                size += len(data)
    return 'sha256:' + digest.hexdigest(), size


class FluxController(Controller):
    """A Flux controller: acts while its Deployment is Available; reconciles its own kind on creation, spec
    changes (generation), reconcile requests (annotation) and deletion, not on its own status writes."""

    deployment = ''
    kind_key = None
    manager = ''

    def __init__(self, api):
        super().__init__(api)
        self.seen = {}
        self.available = False
        self.watches = (self.kind_key,)

    def notify(self, key, event, obj):
        if key == DEPLOYMENTS:
            if obj['metadata']['name'] == self.deployment:
                available = controller_available(self.api, self.deployment)
                if available and not self.available:
                    for item in self.api.store.list(self.kind_key):
                        self.enqueue(self.kind_key, item['metadata']['namespace'], item['metadata']['name'])
                self.available = available
        elif key == self.kind_key:
            meta = obj['metadata']
            ident = (meta['namespace'], meta['name'])
            marker = None if event == 'DELETED' else (meta['uid'], meta.get('generation'), meta.get(
                'deletionTimestamp'), (meta.get('annotations') or {}).get(REQUESTED_AT))
            if self.seen.get(ident) != marker:
                self.seen[ident] = marker
                self.enqueue(key, *ident)
        else:
            self.related(key, event, obj)

    def related(self, key, event, obj):
        """Events of other kinds this controller reacts to."""

    async def reconcile(self, key, namespace, name):
        obj = self.current(namespace, name)
        if obj is None:
            self.forget(namespace, name)
            return None
        if not controller_available(self.api, self.deployment):
            return None
        if obj['metadata'].get('deletionTimestamp'):
            self.forget(namespace, name)
            self.finalize(obj)
            self.remove_finalizer(obj)
            return None
        if (obj.get('spec') or {}).get('suspend'):
            return None
        return await self.reconcile_object(self.ensure_finalizer(obj))

    def forget(self, namespace, name):
        """Drops what the controller keeps in memory about an object that is going away."""

    def finalize(self, obj):
        """Clean-up before the finalizer is removed from a deleted object."""

    async def reconcile_object(self, obj):
        raise NotImplementedError

    def rtype(self):
        return self.api.registry.get(self.kind_key[0], 'v1', self.kind_key[1])

    def current(self, namespace, name):
        return self.api.store.get(self.kind_key, namespace, name)

    def ensure_finalizer(self, obj):
        if FINALIZER in (obj['metadata'].get('finalizers') or []):
            return obj
        body = self.api.served_as(self.rtype(), obj)
        body['metadata'].setdefault('finalizers', []).append(FINALIZER)
        return self.api.replace(self.rtype(), obj['metadata']['namespace'], obj['metadata']['name'], body,
                                self.manager)

    def remove_finalizer(self, obj):
        if self.rtype() is None:
            return
        body = self.api.served_as(self.rtype(), obj)
        body['metadata']['finalizers'] = [f for f in body['metadata'].get('finalizers') or [] if f != FINALIZER]
        self.api.replace(self.rtype(), obj['metadata']['namespace'], obj['metadata']['name'], body, self.manager)

    def base_status(self, obj):
        """The object's status, with the reconcile request it answers."""
        status = copy.deepcopy(obj.get('status') or {})
        requested = (obj['metadata'].get('annotations') or {}).get(REQUESTED_AT)
        if requested:
            status['lastHandledReconcileAt'] = requested
        return status

    def write_status(self, namespace, name, status):
        """Writes status through the status subresource of the object as it is now (if it still exists)."""
        rtype, current = self.rtype(), self.current(namespace, name)
        if rtype is not None and current is not None:
            replace_status(self.api, rtype, current, status, self.manager)

    @staticmethod
    def with_conditions(obj, status, conditions, keep=()):
        """status whose conditions are `conditions` plus the old ones of the types in `keep`."""
        kept = [c for c in (obj.get('status') or {}).get('conditions') or [] if c['type'] in keep and c['type'] not in
                {n['type'] for n in conditions}]
        status['conditions'] = conditions + kept
        return status


class GitRepositoryController(FluxController):
    """source-controller: fetches spec.ref of spec.url with git and stores the tree as the artifact."""

    name = 'flux-source-controller'
    deployment = 'source-controller'
    kind_key = GIT_REPOSITORIES
    manager = 'source-controller'

    def __init__(self, api, storage):
        super().__init__(api)
        self.storage = storage

    def finalize(self, obj):
        self.storage.remove('gitrepository', obj['metadata']['namespace'], obj['metadata']['name'])

    async def reconcile_object(self, obj):
        spec, namespace, name = obj['spec'], obj['metadata']['namespace'], obj['metadata']['name']
        generation = obj['metadata'].get('generation')
        try:
            artifact = await self._fetch(obj)
        except Failure as failure:
            status = self.base_status(self.current(namespace, name) or obj)
            conditions = [flux_condition('Ready', 'False', failure.reason, failure.message, generation),
                          flux_condition('FetchFailed', 'True', failure.reason, failure.message, generation)]
            self.write_status(namespace, name, self.with_conditions(obj, status, conditions, ('ArtifactInStorage',)))
            return parse_duration(spec['interval'])
        message = "stored artifact for revision '{0}'".format(artifact['revision'])
        status = self.base_status(self.current(namespace, name) or obj)
        status.update(artifact=artifact, observedGeneration=generation)
        status.pop('observedIgnore', None)
        if spec.get('ignore') is not None:
            status['observedIgnore'] = spec['ignore']
        status['conditions'] = [flux_condition('Ready', 'True', 'Succeeded', message, generation),
                                flux_condition('ArtifactInStorage', 'True', 'Succeeded', message, generation)]
        self.write_status(namespace, name, status)
        return parse_duration(spec['interval'])

    def _credentials(self, obj):
        """What spec.secretRef gives git: an `http.extraHeader` with the credentials, a `ca.crt`."""
        ref = (obj['spec'].get('secretRef') or {}).get('name')
        if not ref:
            return {}
        namespace = obj['metadata']['namespace']
        secret = self.api.store.get(('', 'secrets'), namespace, ref)
        if secret is None:
            raise Failure('AuthenticationFailed', "failed to get secret '{0}/{1}': secrets \"{1}\" not found".format(
                namespace, ref))
        data = {k: base64.b64decode(v).decode(errors='replace') for k, v in (secret.get('data') or {}).items()}
        config = {}
        if data.get('username') or data.get('password'):
            basic = base64.b64encode('{0}:{1}'.format(data.get('username', ''), data.get('password', '')).encode())
            config['http.extraHeader'] = 'Authorization: Basic ' + basic.decode()
        elif data.get('bearerToken'):
            config['http.extraHeader'] = 'Authorization: Bearer ' + data['bearerToken']
        if data.get('ca.crt'):
            config['ca.crt'] = data['ca.crt']
        return config

    async def _fetch(self, obj):
        spec, meta = obj['spec'], obj['metadata']
        config = self._credentials(obj)
        owner = self.storage.owner_dir('gitrepository', meta['namespace'], meta['name'])
        owner.mkdir(parents=True, exist_ok=True)
        work = pathlib.Path(tempfile.mkdtemp(prefix='.fetch-', dir=owner))
        try:
            sha, label = await self._checkout(spec, config, work)
            revision = '{0}@sha1:{1}'.format(label, sha) if label else 'sha1:' + sha
            return await self._store(obj, work / 'tree', sha, revision)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _checkout(self, spec, config, work):
        """(commit sha, revision label) of spec.ref checked out into work/tree."""
        env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(work), 'GIT_TERMINAL_PROMPT': '0',
               'GIT_CONFIG_NOSYSTEM': '1', 'GIT_CONFIG_GLOBAL': os.devnull, 'GIT_ASKPASS': 'true'}
        settings = {'advice.detachedHead': 'false', 'init.defaultBranch': 'main'}
        if 'http.extraHeader' in config:
            settings['http.extraHeader'] = config['http.extraHeader']
        if 'ca.crt' in config:
            (work / 'ca.crt').write_text(config['ca.crt'])
            settings['http.sslCAInfo'] = str(work / 'ca.crt')
        env['GIT_CONFIG_COUNT'] = str(len(settings))
        for index, (key, value) in enumerate(settings.items()):
            env['GIT_CONFIG_KEY_{0}'.format(index)], env['GIT_CONFIG_VALUE_{0}'.format(index)] = key, value
        tree = work / 'tree'
        timeout = parse_duration(spec.get('timeout') or '60s')
        ref = spec.get('ref') or {'branch': 'master'}
        url = spec['url']

        async def git(*args):
            code, out, err = await run_command(['git', *args], env=env, cwd=tree, timeout=timeout)
            if code:
                raise Failure('GitOperationFailed', "failed to checkout and determine revision: unable to clone "
                              "'{0}': {1}".format(url, error_text(err)))
            return out.strip()

        tree.mkdir()
        await git('init', '--quiet')
        # Flux's precedence: name, then commit (on its branch if given), semver, tag, branch.
        commit = None if ref.get('name') else ref.get('commit')
        if ref.get('name'):
            label, refspec = ref['name'], ref['name']
        elif commit:
            label = ref.get('branch') or ''
            refspec = 'refs/heads/' + label if label else '+refs/heads/*:refs/remotes/origin/*'
        elif ref.get('semver'):
            label = await self._semver_tag(git, url, ref['semver'])
            refspec = 'refs/tags/' + label
        elif ref.get('tag'):
            label, refspec = ref['tag'], 'refs/tags/' + ref['tag']
        else:
            label = ref.get('branch') or 'master'
            refspec = 'refs/heads/' + label
        depth = [] if commit else ['--depth', '1']
        await git('fetch', '--quiet', '--no-tags', *depth, url, refspec)
        target = commit or 'FETCH_HEAD'
        await git('checkout', '--quiet', target)
        sha = await git('rev-parse', 'HEAD^{commit}')
        return sha, label

    @staticmethod
    async def _semver_tag(git, url, constraint):
        """The remote's latest tag that satisfies the semver constraint."""
        listing = await git('ls-remote', '--tags', '--refs', url)
        tags = [line.split('refs/tags/', 1)[1] for line in listing.splitlines() if 'refs/tags/' in line]
        try:
            tag = latest_matching(tags, constraint)
        except ValueError as exc:
            raise Failure('GitOperationFailed', 'failed to checkout and determine revision: {0}'.format(exc)) from None
        if tag is None:
            raise Failure('GitOperationFailed', "failed to checkout and determine revision: no match found for "
                          "semver: {0}".format(constraint))
        return tag

    async def _store(self, obj, tree, sha, revision):
        meta = obj['metadata']
        owner = self.storage.owner_dir('gitrepository', meta['namespace'], meta['name'])
        destination = owner / sha
        status = obj.get('status') or {}
        previous = status.get('artifact') or {}
        same_ignore = status.get('observedIgnore') == obj['spec'].get('ignore')
        if destination.is_dir() and not same_ignore:
            await asyncio.to_thread(shutil.rmtree, destination, True)
        if not destination.is_dir():
            await asyncio.to_thread(shutil.rmtree, tree / '.git', True)
            await asyncio.to_thread(remove_ignored, tree, obj['spec'].get('ignore'))
            tree.rename(destination)
        for stale in owner.iterdir():
            if stale.name != sha and not stale.name.startswith('.fetch-'):
                await asyncio.to_thread(shutil.rmtree, stale, True)
        if previous.get('revision') == revision and previous.get('digest') and same_ignore:
            return previous
        digest, size = await asyncio.to_thread(tree_digest, destination)
        path = 'gitrepository/{0}/{1}/{2}.tar.gz'.format(meta['namespace'], meta['name'], sha)
        return {'revision': revision, 'digest': digest, 'path': path, 'url': '{0}/{1}'.format(ARTIFACT_SERVER, path),
                'lastUpdateTime': now(), 'size': size}


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
            await asyncio.to_thread(shutil.copytree, artifact_dir, root, True)
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


def controllers(api, artifact_dir, kubectl):
    """source-controller's GitRepository and kustomize-controller's Kustomization, given where artifacts live."""
    if not artifact_dir:
        return []
    artifacts = ArtifactStorage(artifact_dir)
    return [GitRepositoryController(api, artifacts), KustomizationController(api, artifacts, kubectl)]
