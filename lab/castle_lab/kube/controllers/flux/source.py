"""Flux's source-controller for GitRepository: spec.ref of spec.url fetched with the real `git`, the tree stored
as a directory per revision."""

import asyncio
import base64
import os
import pathlib
import shutil
import tempfile

from ...api.objects import now
from .common import (ARTIFACT_SERVER, GIT_REPOSITORIES, Failure, FluxController, error_text, flux_condition,
                     remove_ignored, run_command, tree_digest)
from .objects import latest_matching, parse_duration

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

