"""Discovery (API groups, resource lists) and the OpenAPI v3 documents of the served group versions."""

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


def openapi_document(registry, group, version):
    """Enough for clients to see which group versions exist and that PATCH takes fieldValidation."""
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
    return {'openapi': '3.0.0', 'info': {'title': 'Kubernetes', 'version': VERSION['gitVersion']},
            'paths': paths, 'components': {'schemas': {}}}
