"""RBAC authorization: Roles and ClusterRoles granted through bindings; system:masters may do anything."""

from .errors import ApiError

RBAC = 'rbac.authorization.k8s.io'
SUPERUSERS = 'system:masters'
# What a fresh cluster has: cluster-admin for system:masters, self-reviews for everyone, the read-only `view`,
# system:auth-delegator for delegated authentication.
DEFAULT_CLUSTER_ROLES = {
    'cluster-admin': [{'apiGroups': ['*'], 'resources': ['*'], 'verbs': ['*']}, {'nonResourceURLs': ['*'],
                                                                                  'verbs': ['*']}],
    # bootstrappolicy's system:aggregate-to-view: read-only, and never Secrets.
    'view': [{'apiGroups': [group], 'resources': resources, 'verbs': ['get', 'list', 'watch']} for group, resources in (
        ('', ['pods', 'replicationcontrollers', 'replicationcontrollers/scale', 'serviceaccounts', 'services',
              'services/status', 'endpoints', 'persistentvolumeclaims', 'persistentvolumeclaims/status', 'configmaps']),
        ('', ['limitranges', 'resourcequotas', 'bindings', 'events', 'pods/status', 'resourcequotas/status',
              'namespaces/status', 'replicationcontrollers/status', 'pods/log']),
        ('', ['namespaces']),
        ('discovery.k8s.io', ['endpointslices']),
        ('apps', ['controllerrevisions', 'statefulsets', 'statefulsets/scale', 'statefulsets/status', 'daemonsets',
                  'daemonsets/status', 'deployments', 'deployments/scale', 'deployments/status', 'replicasets',
                  'replicasets/scale', 'replicasets/status']),
        ('autoscaling', ['horizontalpodautoscalers', 'horizontalpodautoscalers/status']),
        ('batch', ['jobs', 'jobs/status', 'cronjobs', 'cronjobs/status']),
        ('policy', ['poddisruptionbudgets', 'poddisruptionbudgets/status']),
        ('networking.k8s.io', ['ingresses', 'ingresses/status', 'networkpolicies']))],
    'system:basic-user': [{'apiGroups': ['authorization.k8s.io'], 'verbs': ['create'],
                           'resources': ['selfsubjectaccessreviews', 'selfsubjectrulesreviews']},
                          {'apiGroups': ['authentication.k8s.io'], 'verbs': ['create'],
                           'resources': ['selfsubjectreviews']}],
    # Readiness, version and discovery for every client (bootstrappolicy's system:discovery and
    # system:public-info-viewer).
    'system:discovery': [{'nonResourceURLs': ['/livez', '/readyz', '/healthz', '/version', '/version/', '/openapi',
                                              '/openapi/*', '/api', '/api/*', '/apis', '/apis/*'], 'verbs': ['get']}],
    'system:public-info-viewer': [{'nonResourceURLs': ['/livez', '/readyz', '/healthz', '/version', '/version/'],
                                   'verbs': ['get']}],
    # What token reviewers (OpenBao's Kubernetes auth) are bound to: review tokens and access.
    'system:auth-delegator': [{'apiGroups': ['authentication.k8s.io'], 'resources': ['tokenreviews'],
                               'verbs': ['create']},
                              {'apiGroups': ['authorization.k8s.io'], 'resources': ['subjectaccessreviews'],
                               'verbs': ['create']}],
}
DEFAULT_BINDINGS = {
    'cluster-admin': {'roleRef': {'apiGroup': RBAC, 'kind': 'ClusterRole', 'name': 'cluster-admin'},
                      'subjects': [{'apiGroup': RBAC, 'kind': 'Group', 'name': SUPERUSERS}]},
    'system:basic-user': {'roleRef': {'apiGroup': RBAC, 'kind': 'ClusterRole', 'name': 'system:basic-user'},
                          'subjects': [{'apiGroup': RBAC, 'kind': 'Group', 'name': 'system:authenticated'}]},
    'system:discovery': {'roleRef': {'apiGroup': RBAC, 'kind': 'ClusterRole', 'name': 'system:discovery'},
                         'subjects': [{'apiGroup': RBAC, 'kind': 'Group', 'name': 'system:authenticated'}]},
    'system:public-info-viewer': {
        'roleRef': {'apiGroup': RBAC, 'kind': 'ClusterRole', 'name': 'system:public-info-viewer'},
        'subjects': [{'apiGroup': RBAC, 'kind': 'Group', 'name': 'system:authenticated'},
                     {'apiGroup': RBAC, 'kind': 'Group', 'name': 'system:unauthenticated'}]}}
# What the privileged-group authorizer answers for system:masters, before RBAC's own rules.
EVERYTHING = ({'verbs': ['*'], 'apiGroups': ['*'], 'resources': ['*']}, {'verbs': ['*'], 'nonResourceURLs': ['*']})


def seed(api):
    roles = api.registry.get(RBAC, 'v1', 'clusterroles')
    bindings = api.registry.get(RBAC, 'v1', 'clusterrolebindings')
    for name, rules in DEFAULT_CLUSTER_ROLES.items():
        api.create(roles, None, {'metadata': {'name': name, 'labels': {'kubernetes.io/bootstrapping': 'rbac-defaults'}},
                                 'rules': rules}, 'kube-apiserver')
    for name, body in DEFAULT_BINDINGS.items():
        api.create(bindings, None, dict(body, metadata={'name': name}), 'kube-apiserver')


def _subject_matches(subject, user, groups):
    kind, name = subject.get('kind'), subject.get('name')
    if kind == 'User':
        return name == user
    if kind == 'Group':
        return name in groups
    if kind == 'ServiceAccount':
        return user == 'system:serviceaccount:{0}:{1}'.format(subject.get('namespace', ''), name)
    return False


def _rule_allows(rule, verb, group, resource, name):
    if not ({'*', verb} & set(rule.get('verbs', []))):
        return False
    if not ({'*', group} & set(rule.get('apiGroups', []))):
        return False
    resources = set(rule.get('resources', []))
    sub = resource.split('/', 1)[1] if '/' in resource else None
    if not ('*' in resources or resource in resources or (sub and '*/' + sub in resources)):
        return False
    names = rule.get('resourceNames')
    return not names or name in names


class Authorizer:
    def __init__(self, api):
        self.api = api

    def _role_rules(self, ref, namespace):
        if ref.get('kind') == 'ClusterRole':
            role = self.api.store.get((RBAC, 'clusterroles'), None, ref.get('name'))
        else:
            role = self.api.store.get((RBAC, 'roles'), namespace, ref.get('name'))
        return (role or {}).get('rules') or []

    def _granted(self, user, groups, namespace):
        """Every rule the user's cluster role bindings, then role bindings in `namespace`, grant."""
        grants = [(b, None) for b in self.api.store.list((RBAC, 'clusterrolebindings'))]
        if namespace:
            grants += [(b, namespace) for b in self.api.store.list((RBAC, 'rolebindings'), namespace)]
        for binding, scope in grants:
            if any(_subject_matches(s, user, groups) for s in binding.get('subjects') or []):
                yield from self._role_rules(binding.get('roleRef') or {}, scope)

    def allowed(self, user, groups, verb, group, resource, namespace, name):
        if SUPERUSERS in groups:
            return True
        return any(_rule_allows(rule, verb, group, resource, name) for rule in self._granted(user, groups, namespace))

    def rules_for(self, user, groups, namespace):
        """(resourceRules, nonResourceRules) of a SelfSubjectRulesReview: what the user may do in `namespace`."""
        rules = list(EVERYTHING) if SUPERUSERS in groups else []
        rules += self._granted(user, groups, namespace)
        resource = [{k: rule[k] for k in ('verbs', 'apiGroups', 'resources', 'resourceNames') if k in rule}
                    for rule in rules if 'resources' in rule]
        non_resource = [{'verbs': rule['verbs'], 'nonResourceURLs': rule['nonResourceURLs']}
                        for rule in rules if 'nonResourceURLs' in rule]
        return resource, non_resource

    def check(self, user, groups, verb, rtype, namespace, name, sub):
        resource = rtype.plural + ('/' + sub if sub else '')
        if self.allowed(user, groups, verb, rtype.group, resource, namespace, name):
            return
        where = 'in the namespace "{0}"'.format(namespace) if namespace else 'at the cluster scope'
        target = '{0} "{1}"'.format(_qualified(rtype), name) if name else _qualified(rtype)
        details = {'kind': rtype.plural}
        if name:
            details['name'] = name
        if rtype.group:
            details['group'] = rtype.group
        raise ApiError(403, 'Forbidden', '{0} is forbidden: User "{1}" cannot {2} resource "{3}" in API group "{4}" '
                       '{5}'.format(target, user, verb, resource, rtype.group, where), details)


def _qualified(rtype):
    return '{0}.{1}'.format(rtype.plural, rtype.group) if rtype.group else rtype.plural
