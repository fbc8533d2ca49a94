"""Resource types the API serves: built-ins, and those custom resource definitions add."""

from dataclasses import dataclass, field

ALL_VERBS = ('create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch')
READ_WRITE = ALL_VERBS


@dataclass
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple = ()
    verbs: tuple = READ_WRITE
    subresources: tuple = ()
    # openAPIV3Schema of a custom resource's served version; None for built-ins.
    schema: dict = None
    crd: str = None
    categories: tuple = ()
    printer_columns: list = field(default_factory=list)
    singular_name: str = ''
    # Lists a custom resource's schema declares x-kubernetes-list-type: map, {(field, parent field): key}.
    list_keys: dict = field(default_factory=dict)
    # Where the scale subresource reads and writes: specReplicasPath, statusReplicasPath, labelSelectorPath.
    scale: dict = field(default_factory=lambda: {'specReplicasPath': '.spec.replicas',
                                                 'statusReplicasPath': '.status.replicas'})

    @property
    def singular(self):
        return self.singular_name or self.kind.lower()

    @property
    def group_version(self):
        return '{0}/{1}'.format(self.group, self.version) if self.group else self.version

    @property
    def key(self):
        """Objects of one group and plural share storage across the group's versions."""
        return (self.group, self.plural)

    @property
    def has_status(self):
        return 'status' in self.subresources

    def discovery(self):
        """APIResource entries: the resource and each of its subresources."""
        entries = [{'name': self.plural, 'singularName': self.singular, 'namespaced': self.namespaced,
                    'kind': self.kind, 'verbs': list(self.verbs)}]
        if self.short_names:
            entries[0]['shortNames'] = list(self.short_names)
        if self.categories:
            entries[0]['categories'] = list(self.categories)
        for sub in self.subresources:
            verbs, kind = ['get', 'patch', 'update'], self.kind
            extra = {}
            if sub == 'token':
                verbs, kind = ['create'], 'TokenRequest'
                extra = {'group': 'authentication.k8s.io', 'version': 'v1'}
            elif sub == 'scale':
                kind, extra = 'Scale', {'group': 'autoscaling', 'version': 'v1'}
            elif sub == 'log':
                verbs = ['get']
            elif sub == 'eviction':
                verbs, kind = ['create'], 'Eviction'
                extra = {'group': 'policy', 'version': 'v1'}
            elif sub == 'finalize':
                verbs = ['update']
            entries.append(dict({'name': '{0}/{1}'.format(self.plural, sub), 'singularName': '',
                                 'namespaced': self.namespaced, 'kind': kind, 'verbs': verbs}, **extra))
        return entries


def _builtin(group, version, kind, plural, namespaced=True, short=(), verbs=READ_WRITE, subresources=()):
    return ResourceType(group, version, kind, plural, namespaced, tuple(short), tuple(verbs), tuple(subresources),
                        categories=('all',) if kind in ('Pod', 'Service', 'Deployment', 'ReplicaSet', 'DaemonSet',
                                                        'StatefulSet', 'Job', 'CronJob') else ())


BUILTINS = (
    _builtin('', 'v1', 'Namespace', 'namespaces', False, ('ns',),
             ('create', 'delete', 'get', 'list', 'patch', 'update', 'watch'), ('finalize', 'status')),
    _builtin('', 'v1', 'ConfigMap', 'configmaps', short=('cm',)),
    _builtin('', 'v1', 'Secret', 'secrets'),
    _builtin('', 'v1', 'ServiceAccount', 'serviceaccounts', short=('sa',), subresources=('token',)),
    _builtin('', 'v1', 'Service', 'services', short=('svc',),
             verbs=('create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'),
             subresources=('status',)),
    _builtin('', 'v1', 'Event', 'events', short=('ev',)),
    _builtin('events.k8s.io', 'v1', 'Event', 'events', short=('ev',)),
    _builtin('', 'v1', 'Node', 'nodes', False, ('no',), subresources=('status',)),
    _builtin('', 'v1', 'Pod', 'pods', short=('po',), subresources=('eviction', 'log', 'status')),
    _builtin('apps', 'v1', 'Deployment', 'deployments', short=('deploy',), subresources=('scale', 'status')),
    _builtin('apps', 'v1', 'ReplicaSet', 'replicasets', short=('rs',), subresources=('scale', 'status')),
    _builtin('apps', 'v1', 'DaemonSet', 'daemonsets', short=('ds',), subresources=('status',)),
    _builtin('apps', 'v1', 'StatefulSet', 'statefulsets', short=('sts',), subresources=('scale', 'status')),
    _builtin('apiextensions.k8s.io', 'v1', 'CustomResourceDefinition', 'customresourcedefinitions', False,
             ('crd', 'crds'), subresources=('status',)),
    _builtin('rbac.authorization.k8s.io', 'v1', 'Role', 'roles'),
    _builtin('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings'),
    _builtin('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', False),
    _builtin('rbac.authorization.k8s.io', 'v1', 'ClusterRoleBinding', 'clusterrolebindings', False),
    _builtin('authentication.k8s.io', 'v1', 'TokenReview', 'tokenreviews', False, verbs=('create',)),
    _builtin('authentication.k8s.io', 'v1', 'SelfSubjectReview', 'selfsubjectreviews', False, verbs=('create',)),
    _builtin('authorization.k8s.io', 'v1', 'SelfSubjectAccessReview', 'selfsubjectaccessreviews', False,
             verbs=('create',)),
    _builtin('authorization.k8s.io', 'v1', 'SubjectAccessReview', 'subjectaccessreviews', False, verbs=('create',)),
    _builtin('authorization.k8s.io', 'v1', 'SelfSubjectRulesReview', 'selfsubjectrulesreviews', False,
             verbs=('create',)),
    # Stored as given, without a controller acting on them.
    _builtin('', 'v1', 'Endpoints', 'endpoints', short=('ep',)),
    _builtin('', 'v1', 'PersistentVolumeClaim', 'persistentvolumeclaims', short=('pvc',), subresources=('status',)),
    _builtin('', 'v1', 'PersistentVolume', 'persistentvolumes', False, ('pv',), subresources=('status',)),
    _builtin('', 'v1', 'LimitRange', 'limitranges', short=('limits',)),
    _builtin('', 'v1', 'ResourceQuota', 'resourcequotas', short=('quota',), subresources=('status',)),
    _builtin('batch', 'v1', 'Job', 'jobs', subresources=('status',)),
    _builtin('batch', 'v1', 'CronJob', 'cronjobs', short=('cj',), subresources=('status',)),
    _builtin('networking.k8s.io', 'v1', 'Ingress', 'ingresses', short=('ing',), subresources=('status',)),
    _builtin('networking.k8s.io', 'v1', 'NetworkPolicy', 'networkpolicies', short=('netpol',)),
    _builtin('networking.k8s.io', 'v1', 'IngressClass', 'ingressclasses', False),
    _builtin('discovery.k8s.io', 'v1', 'EndpointSlice', 'endpointslices'),
    _builtin('policy', 'v1', 'PodDisruptionBudget', 'poddisruptionbudgets', short=('pdb',), subresources=('status',)),
    _builtin('autoscaling', 'v2', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers', short=('hpa',),
             subresources=('status',)),
    _builtin('storage.k8s.io', 'v1', 'StorageClass', 'storageclasses', False, ('sc',)),
    _builtin('coordination.k8s.io', 'v1', 'Lease', 'leases'),
    _builtin('scheduling.k8s.io', 'v1', 'PriorityClass', 'priorityclasses', False, ('pc',)),
    _builtin('admissionregistration.k8s.io', 'v1', 'MutatingWebhookConfiguration', 'mutatingwebhookconfigurations',
             False),
    _builtin('admissionregistration.k8s.io', 'v1', 'ValidatingWebhookConfiguration',
             'validatingwebhookconfigurations', False),
)


class Registry:
    """The served resource types, by group, version and plural."""

    def __init__(self):
        self.types = {}
        for rtype in BUILTINS:
            self.add(rtype)

    def add(self, rtype):
        self.types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def remove_crd(self, crd_name):
        for key in [k for k, t in self.types.items() if t.crd == crd_name]:
            del self.types[key]

    def get(self, group, version, plural):
        return self.types.get((group, version, plural))

    def by_kind(self, group, version, kind):
        return next((t for t in self.types.values() if (t.group, t.version, t.kind) == (group, version, kind)), None)

    def group_versions(self):
        """{group: [versions]} in a stable order, the core group ('') included."""
        groups = {}
        for rtype in self.types.values():
            versions = groups.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        return groups

    def in_group_version(self, group, version):
        return [t for t in self.types.values() if t.group == group and t.version == version]


def crd_types(crd):
    """The resource types an established CustomResourceDefinition serves, one per served version."""
    spec = crd['spec']
    names = spec['names']
    found = []
    for version in spec.get('versions', []):
        if not version.get('served', True):
            continue
        subresources = tuple(sorted((version.get('subresources') or {}).keys() & {'status', 'scale'}))
        found.append(ResourceType(
            spec['group'], version['name'], names['kind'], names['plural'], spec.get('scope') == 'Namespaced',
            tuple(names.get('shortNames', ())), READ_WRITE, subresources,
            schema=(version.get('schema') or {}).get('openAPIV3Schema') or {'type': 'object',
                                                                           'x-kubernetes-preserve-unknown-fields': True},
            crd=crd['metadata']['name'], categories=tuple(names.get('categories', ())),
            printer_columns=list(version.get('additionalPrinterColumns', [])),
            singular_name=names.get('singular', ''),
            scale=(version.get('subresources') or {}).get('scale') or {},
            list_keys=list_map_keys((version.get('schema') or {}).get('openAPIV3Schema') or {})))
    return found


def list_map_keys(schema, parent=None, found=None):
    """{(field, parent field): key} of the single-key `x-kubernetes-list-type: map` lists in a schema."""
    found = {} if found is None else found
    for name, sub in (schema.get('properties') or {}).items():
        if not isinstance(sub, dict):
            continue
        if sub.get('type') == 'array':
            keys = sub.get('x-kubernetes-list-map-keys') or []
            if sub.get('x-kubernetes-list-type') == 'map' and len(keys) == 1:
                found[(name, parent)] = keys[0]
            if isinstance(sub.get('items'), dict):
                list_map_keys(sub['items'], name, found)
        else:
            list_map_keys(sub, name, found)
    return found
