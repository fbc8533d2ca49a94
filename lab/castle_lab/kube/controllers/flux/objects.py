"""What kustomize-controller knows about the objects it applies: Go durations, inventory ids, apply stages,
readiness as kstatus computes it, and the kustomization.yaml Flux generates for plain manifests."""

import os
import re

import pathspec

DURATION_PART = re.compile(r'(\d+(?:\.\d+)?)(ms|s|m|h)')
UNIT_SECONDS = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600}
KUSTOMIZATION_FILES = ('kustomization.yaml', 'kustomization.yml', 'Kustomization')
CURRENT, IN_PROGRESS, FAILED, NOT_FOUND = 'Current', 'InProgress', 'Failed', 'NotFound'


def parse_duration(text):
    """Seconds of a Go duration such as `1m30s` or `500ms` (the forms Flux's CRDs accept)."""
    text = str(text)
    parts = DURATION_PART.findall(text)
    if not parts or ''.join(n + u for n, u in parts) != text:
        raise ValueError('invalid duration {0!r}'.format(text))
    return sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)


def format_duration(seconds):
    """A Go time.Duration's String(): `1m0s`, `30s`, `1.5s`, `250ms`."""
    if seconds < 1:
        return '{0:g}ms'.format(round(seconds * 1000, 6)) if seconds else '0s'
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = '{0:.9f}'.format(secs).rstrip('0').rstrip('.') + 's'
    if hours:
        return '{0}h{1}m{2}'.format(int(hours), int(minutes), text)
    if minutes:
        return '{0}m{1}'.format(int(minutes), text)
    return text


def group_of(api_version):
    return api_version.rpartition('/')[0] if '/' in api_version else ''


def version_of(api_version):
    return api_version.rpartition('/')[2]


def object_id(namespace, name, group, kind):
    """The inventory id Flux records: `<namespace>_<name>_<group>_<kind>` (':' in names written as '__')."""
    return '{0}_{1}_{2}_{3}'.format(namespace or '', name.replace(':', '__'), group, kind)


def parse_object_id(entry_id):
    """(namespace, name, group, kind) of an inventory id."""
    namespace, rest = entry_id.split('_', 1)
    rest, kind = rest.rsplit('_', 1)
    name, group = rest.rsplit('_', 1)
    return namespace, name.replace('__', ':'), group, kind


def inventory_entry(obj):
    meta = obj['metadata']
    return {'id': object_id(meta.get('namespace', ''), meta['name'], group_of(obj['apiVersion']), obj['kind']),
            'v': version_of(obj['apiVersion'])}


def describe(obj):
    """`Kind/namespace/name` (or `Kind/name` when cluster-scoped), as Flux names objects in its messages."""
    meta = obj['metadata']
    if meta.get('namespace'):
        return '{0}/{1}/{2}'.format(obj['kind'], meta['namespace'], meta['name'])
    return '{0}/{1}'.format(obj['kind'], meta['name'])


def apply_stages(objects):
    """Flux's staged apply: cluster definitions (CRDs, Namespaces), then class definitions, then the rest."""
    def stage(obj):
        group, kind = group_of(obj['apiVersion']), obj['kind']
        if (group, kind) in (('apiextensions.k8s.io', 'CustomResourceDefinition'), ('', 'Namespace')):
            return 0
        if kind.endswith('Class') and group in ('storage.k8s.io', 'networking.k8s.io', 'node.k8s.io',
                                                 'scheduling.k8s.io'):
            return 1
        return 2
    stages = [[], [], []]
    for obj in objects:
        stages[stage(obj)].append(obj)
    return [s for s in stages if s]


def readiness(obj):
    """kstatus of a live object: Current, InProgress or Failed."""
    if obj is None:
        return NOT_FOUND
    meta, status = obj['metadata'], obj.get('status') or {}
    if meta.get('deletionTimestamp'):
        return IN_PROGRESS
    generation = meta.get('generation')
    observed = status.get('observedGeneration')
    if generation is not None and observed is not None and observed < generation:
        return IN_PROGRESS
    check = _KIND_CHECKS.get((group_of(obj['apiVersion']), obj['kind']), _conditions_status)
    return check(obj, status)


def _condition(status, kind):
    return next((c for c in status.get('conditions') or [] if c.get('type') == kind), None)


def _replicas_status(obj, status):
    spec = obj.get('spec') or {}
    wanted = spec.get('replicas', 1)
    if 'observedGeneration' not in status:
        return IN_PROGRESS
    counts = [status.get(field, 0) for field in ('updatedReplicas', 'readyReplicas', 'availableReplicas')]
    if obj['kind'] == 'StatefulSet':
        counts = [status.get('readyReplicas', 0), status.get('currentReplicas', 0)]
        if status.get('currentRevision') != status.get('updateRevision'):
            return IN_PROGRESS
    return CURRENT if status.get('replicas', 0) == wanted and all(c >= wanted for c in counts) else IN_PROGRESS


def _daemonset_status(obj, status):
    if 'observedGeneration' not in status:
        return IN_PROGRESS
    wanted = status.get('desiredNumberScheduled', 0)
    counts = [status.get(field, 0) for field in ('currentNumberScheduled', 'updatedNumberScheduled',
                                                 'numberAvailable', 'numberReady')]
    return CURRENT if all(c >= wanted for c in counts) else IN_PROGRESS


def _crd_status(obj, status):
    established = _condition(status, 'Established')
    return CURRENT if established and established.get('status') == 'True' else IN_PROGRESS


def _pvc_status(obj, status):
    return CURRENT if status.get('phase') == 'Bound' else IN_PROGRESS


def _namespace_status(obj, status):
    return CURRENT if status.get('phase', 'Active') == 'Active' else IN_PROGRESS


def _pod_status(obj, status):
    phase = status.get('phase')
    if phase == 'Succeeded':
        return CURRENT
    if phase == 'Failed':
        return FAILED
    ready = _condition(status, 'Ready')
    return CURRENT if phase == 'Running' and ready and ready.get('status') == 'True' else IN_PROGRESS


def _job_status(obj, status):
    for kind, result in (('Complete', CURRENT), ('Failed', FAILED)):
        found = _condition(status, kind)
        if found and found.get('status') == 'True':
            return result
    return IN_PROGRESS


def _conditions_status(obj, status):
    """Custom resources: Stalled means Failed, Reconciling or a Ready condition not True means InProgress."""
    stalled, reconciling, ready = (_condition(status, kind) for kind in ('Stalled', 'Reconciling', 'Ready'))
    if stalled and stalled.get('status') == 'True':
        return FAILED
    if reconciling and reconciling.get('status') == 'True':
        return IN_PROGRESS
    if ready is not None:
        generation = obj['metadata'].get('generation')
        if ready.get('status') != 'True':
            return IN_PROGRESS
        if generation is not None and status.get('observedGeneration', generation) != generation:
            return IN_PROGRESS
    return CURRENT


_KIND_CHECKS = {
    ('apps', 'Deployment'): _replicas_status, ('apps', 'StatefulSet'): _replicas_status,
    ('apps', 'DaemonSet'): _daemonset_status,
    ('apiextensions.k8s.io', 'CustomResourceDefinition'): _crd_status,
    ('', 'PersistentVolumeClaim'): _pvc_status, ('', 'Namespace'): _namespace_status, ('', 'Pod'): _pod_status,
    ('batch', 'Job'): _job_status,
}


def has_kustomization(directory):
    return any(os.path.isfile(os.path.join(directory, name)) for name in KUSTOMIZATION_FILES)


def generated_resources(directory):
    """What Flux lists in the kustomization.yaml it writes for a directory without one: every YAML file below
    it, and subdirectories that have their own kustomization.yaml as a whole."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for sub in list(dirs):
            path = os.path.join(root, sub)
            if sub.startswith('.'):
                dirs.remove(sub)
            elif has_kustomization(path):
                found.append(os.path.relpath(path, directory))
                dirs.remove(sub)
        found.extend(os.path.relpath(os.path.join(root, f), directory) for f in sorted(files)
                     if f.endswith(('.yaml', '.yml')) and not f.startswith('.'))
    return sorted(found)


SEMVER = re.compile(r'^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$')
PARTIAL = re.compile(r'^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$')
TERM = re.compile(r'^(=|!=|>=|<=|>|<|~|\^)?\s*(\S+)$')


def semver(tag):
    """(major, minor, patch, prerelease) of a tag like `v1.2.3` or `1.2.3-rc.1`, or None."""
    found = SEMVER.match(tag)
    if not found:
        return None
    major, minor, patch, pre = found.groups()
    return int(major), int(minor or 0), int(patch or 0), pre or ''


def _precedence(version):
    """Sort key: a prerelease sorts before its release; numeric prerelease parts compare as numbers."""
    parts = tuple((0, int(p), '') if p.isdigit() else (1, 0, p) for p in version[3].split('.')) if version[3] else ()
    return version[:3] + ((0, parts) if version[3] else (1, ()),)


def _bounds(operator, text):
    """[(operator, version)] comparisons one constraint term stands for."""
    found = PARTIAL.match(text)
    if not found:
        raise ValueError('improper constraint: {0}'.format(text))
    raw = found.groups()[:3]
    wild = next((i for i, part in enumerate(raw) if part is None or not part.isdigit()), 3)
    numbers = [int(part) if i < wild else 0 for i, part in enumerate(raw)]
    low = (*numbers, found.group(4) or '')

    def upper(index):
        if index == 0:
            return None
        bumped = numbers[:index - 1] + [numbers[index - 1] + 1] + [0] * (3 - index)
        return (*bumped, '')
    if operator == '^':
        first = next((i for i, n in enumerate(numbers[:wild]) if n), max(wild - 1, 0))
        return [('>=', low)] + ([('<', upper(first + 1))] if upper(first + 1) else [])
    if operator == '~':
        return [('>=', low), ('<', upper(max(min(wild, 2), 1)))]
    if wild < 3 and operator in (None, '='):
        return [('>=', low)] + ([('<', upper(wild))] if upper(wild) else [])
    if wild < 3 and operator == '<=':
        return [('<', upper(wild))] if upper(wild) else []
    if wild < 3 and operator == '>':
        return [('>=', upper(wild))] if upper(wild) else [('<', (0, 0, 0, ''))]
    return [(operator or '=', low)]


def _compare(version, operator, bound):
    left, right = _precedence(version), _precedence(bound)
    return {'=': left == right, '!=': left != right, '>': left > right, '<': left < right,
            '>=': left >= right, '<=': left <= right}[operator]


def _satisfies(version, constraint):
    for alternative in constraint.split('||'):
        alternative = re.sub(r'\s*-\s+', ' - ', alternative.strip())
        hyphen = re.match(r'^(\S+) - (\S+)$', alternative)
        terms = [('>=', hyphen.group(1)), ('<=', hyphen.group(2))] if hyphen else [
            TERM.match(t).groups() for t in re.split(r'[\s,]+', re.sub(r'(=|!=|>=|<=|>|<|~|\^)\s+', r'\1',
                                                                         alternative)) if t]
        comparisons = [c for operator, text in terms for c in _bounds(operator, text)]
        if version[3] and not any(bound[3] and bound[:3] == version[:3] for _op, bound in comparisons):
            continue  # prereleases only match constraints that name one of the same version
        if all(_compare(version, operator, bound) for operator, bound in comparisons):
            return True
    return False


def latest_matching(tags, constraint):
    """The tag with the highest semantic version satisfying a Masterminds-style constraint, or None."""
    matching = [(semver(tag), tag) for tag in tags if semver(tag) and _satisfies(semver(tag), constraint)]
    return max(matching, key=lambda pair: _precedence(pair[0]))[1] if matching else None


# What source-controller leaves out of every artifact: VCS files, images and archives, CI configs, Flux's extras.
DEFAULT_IGNORE = ('.git/', '.gitignore', '.gitmodules', '.gitattributes',
                  '*.jpg', '*.jpeg', '*.gif', '*.png', '*.wmv', '*.flv', '*.tar.gz', '*.zip',
                  '.github/', '.circleci/', '.travis.yml', '.gitlab-ci.yml', 'appveyor.yml', '.drone.yml',
                  'cloudbuild.yaml', 'codeship-services.yml', 'codeship-steps.yml',
                  '**/.goreleaser.yml', '**/.sops.yaml', '**/.flux.yaml')
SOURCE_IGNORE = '.sourceignore'


def _scoped(pattern, directory):
    """A .sourceignore pattern of `directory` (relative to the tree) as a pattern of the whole tree."""
    negated = pattern.startswith('!')
    body = pattern[1:] if negated else pattern
    if directory in ('', '.'):
        scoped = body
    elif body.startswith('/') or '/' in body.rstrip('/'):
        scoped = '/{0}/{1}'.format(directory, body.lstrip('/'))
    else:
        scoped = '/{0}/**/{1}'.format(directory, body)
    return ('!' if negated else '') + scoped


def ignored_files(tree, spec_ignore=None):
    """Files (relative paths) of a checked-out tree that Flux leaves out of the artifact: the defaults, then the
    tree's .sourceignore files, then spec.ignore; later patterns win, `!` re-includes."""
    patterns = list(DEFAULT_IGNORE)
    for root, dirs, files in os.walk(tree):
        dirs.sort()
        if SOURCE_IGNORE in files:
            directory = os.path.relpath(root, tree)
            with open(os.path.join(root, SOURCE_IGNORE), encoding='utf-8') as handle:
                patterns += [_scoped(line.strip(), directory) for line in handle
                             if line.strip() and not line.startswith('#')]
    patterns += (spec_ignore or '').splitlines()
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    found = []
    for root, dirs, files in os.walk(tree):
        for name in files:
            relative = os.path.relpath(os.path.join(root, name), tree)
            if spec.match_file(relative):
                found.append(relative)
    return sorted(found)
