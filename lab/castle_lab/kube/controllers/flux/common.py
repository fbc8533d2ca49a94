"""What Flux's toolkit controllers share: their conditions and Ready rules, artifact storage, and the reconcile
loop of one Flux kind (finalizer, status), acting only while the controller's Deployment is Available in the
cluster, as installed from Flux's manifest."""

import asyncio
import copy
import hashlib
import os
import pathlib
import re
import shutil

from ...api.objects import now
from ..manager import Controller
from .objects import format_duration, ignored_files

GIT_REPOSITORIES = ('source.toolkit.fluxcd.io', 'gitrepositories')
DEPLOYMENTS = ('apps', 'deployments')
FINALIZER = 'finalizers.fluxcd.io'
REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt'
ARTIFACT_SERVER = 'http://source-controller.flux-system.svc.cluster.local.'
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
