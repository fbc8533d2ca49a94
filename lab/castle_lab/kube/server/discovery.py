"""Discovery (API groups, resource lists) and the OpenAPI v3 documents of the served group versions."""

import functools

from ..api import builtin

VERSION = {'major': '1', 'minor': '35', 'emulationMajor': '1', 'emulationMinor': '35',
           'minCompatibilityMajor': '1', 'minCompatibilityMinor': '34', 'gitVersion': 'v1.35.0',
           'gitCommit': 'castle-lab', 'gitTreeState': 'clean', 'buildDate': '2026-01-01T00:00:00Z',
           'goVersion': 'go1.25.5', 'compiler': 'gc', 'platform': 'linux/amd64'}


def group_entry(name, versions):
    """An API group as the group list and its own discovery document give it."""
    entries = [{'groupVersion': '{0}/{1}'.format(name, v), 'version': v} for v in versions]
    return {'name': name, 'versions': entries, 'preferredVersion': entries[0]}


def resource_list(registry, group, version):
    """The APIResourceList of a group version, or None when nothing is served there."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    return {'kind': 'APIResourceList', 'apiVersion': 'v1',
            'groupVersion': '{0}/{1}'.format(group, version) if group else version,
            'resources': [entry for t in types for entry in t.discovery()]}


@functools.lru_cache(maxsize=None)
def builtin_schemas(kinds):
    """components.schemas for built-in kinds: their definitions and every one they refer to."""
    found, todo = {}, [builtin.definition_name(*gvk) for gvk in kinds]
    while todo:
        name = todo.pop()
        if name is None or name in found:
            continue
        found[name] = builtin.definitions()[name]
        todo.extend(_refs(found[name]))
    return dict(sorted(found.items()))


def _refs(schema):
    if isinstance(schema, dict):
        ref = schema.get('$ref')
        own = [ref[len(builtin.REF_PREFIX):]] if isinstance(ref, str) else []
        return own + [name for value in schema.values() for name in _refs(value)]
    if isinstance(schema, list):
        return [name for value in schema for name in _refs(value)]
    return []


def openapi_document(registry, group, version):
    """The paths clients look at (that PATCH takes fieldValidation) and the component schemas of the built-in kinds
    (`kubectl explain`)."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths = {}
    prefix = '/apis/{0}/{1}'.format(group, version) if group else '/api/' + version
    params = [{'name': n, 'in': 'query', 'schema': {'type': 'string'}} for n in ('dryRun', 'fieldManager',
                                                                                'fieldValidation', 'force')]
    for rtype in types:
        gvk = {'group': group, 'version': version, 'kind': rtype.kind}
        base = prefix + ('/namespaces/{namespace}/' if rtype.namespaced else '/') + rtype.plural
        operation = {'x-kubernetes-group-version-kind': gvk, 'parameters': params,
                     'responses': {'200': {'description': 'OK'}}}
        paths[base] = {'post': dict(operation, operationId='create' + rtype.kind)}
        paths[base + '/{name}'] = {'put': dict(operation, operationId='replace' + rtype.kind),
                                   'patch': dict(operation, operationId='patch' + rtype.kind)}
    schemas = builtin_schemas(tuple(sorted((group, version, t.kind) for t in types if not t.crd)))
    return {'openapi': '3.0.0', 'info': {'title': 'Kubernetes', 'version': VERSION['gitVersion']},
            'paths': paths, 'components': {'schemas': schemas}}
