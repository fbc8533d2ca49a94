"""The Flux install manifest the lab publishes, shaped like a Flux release's install.yaml.

Its CRDs are the lab's bundled ones (taken from the controllers' release tags below); its
controllers are Deployments of the upstream images, which the Kubernetes emulator stands in for.
"""

import yaml

from ..kube.upstream_crds import bundled_crd

VERSION = 'v2.9.1'
NAMESPACE = 'flux-system'
CONTROLLERS = {'source-controller': 'v1.9.1', 'kustomize-controller': 'v1.9.4', 'helm-controller': 'v1.6.3'}
# Each Flux CRD and the controller that owns it.
CRDS_OWNER = {'gitrepositories.source.toolkit.fluxcd.io': 'source-controller',
              'helmrepositories.source.toolkit.fluxcd.io': 'source-controller',
              'helmcharts.source.toolkit.fluxcd.io': 'source-controller',
              'ocirepositories.source.toolkit.fluxcd.io': 'source-controller',
              'kustomizations.kustomize.toolkit.fluxcd.io': 'kustomize-controller',
              'helmreleases.helm.toolkit.fluxcd.io': 'helm-controller'}
LABELS = {'app.kubernetes.io/instance': NAMESPACE, 'app.kubernetes.io/part-of': 'flux',
          'app.kubernetes.io/version': VERSION}
# Controllers that apply arbitrary objects from Git and charts act as cluster admins, as in Flux.
RECONCILERS = ('kustomize-controller', 'helm-controller')
TOOLKIT_GROUPS = ('source.toolkit.fluxcd.io', 'kustomize.toolkit.fluxcd.io', 'helm.toolkit.fluxcd.io')


def _metadata(name, namespaced=True, component=None, **labels):
    meta = {'name': name, 'labels': dict(LABELS, **labels)}
    if component:
        meta['labels']['app.kubernetes.io/component'] = component
    if namespaced:
        meta['namespace'] = NAMESPACE
    return meta


def _crd(name):
    crd = bundled_crd(name)
    crd['metadata'].setdefault('labels', {}).update(LABELS)
    crd['metadata']['labels']['app.kubernetes.io/component'] = CRDS_OWNER[name]
    return crd


def _service_account(name):
    return {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': _metadata(name, component=name)}


def _subjects(names):
    return [{'kind': 'ServiceAccount', 'name': name, 'namespace': NAMESPACE} for name in names]


def _rbac():
    role_name = 'crd-controller-' + NAMESPACE
    role = {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRole',
            'metadata': _metadata(role_name, namespaced=False),
            'rules': [{'apiGroups': list(TOOLKIT_GROUPS), 'resources': ['*'], 'verbs': ['*']},
                      {'apiGroups': [''], 'resources': ['namespaces', 'secrets', 'configmaps', 'serviceaccounts'],
                       'verbs': ['get', 'list', 'watch']},
                      {'apiGroups': [''], 'resources': ['events'], 'verbs': ['create', 'patch']},
                      {'apiGroups': ['coordination.k8s.io'], 'resources': ['leases'], 'verbs': ['*']}]}
    crd_binding = {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRoleBinding',
                   'metadata': _metadata(role_name, namespaced=False),
                   'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole', 'name': role_name},
                   'subjects': _subjects(CONTROLLERS)}
    reconciler_binding = {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRoleBinding',
                          'metadata': _metadata('cluster-reconciler-' + NAMESPACE, namespaced=False),
                          'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole',
                                      'name': 'cluster-admin'},
                          'subjects': _subjects(RECONCILERS)}
    return [role, crd_binding, reconciler_binding]


def _deployment(name, tag):
    ports = [{'containerPort': 8080, 'name': 'http-prom', 'protocol': 'TCP'},
             {'containerPort': 9440, 'name': 'healthz', 'protocol': 'TCP'}]
    args = ['--events-addr=http://notification-controller.{0}.svc.cluster.local./'.format(NAMESPACE),
            '--watch-all-namespaces=true', '--log-level=info', '--log-encoding=json', '--enable-leader-election']
    volume_mounts = [{'name': 'temp', 'mountPath': '/tmp'}]
    volumes = [{'name': 'temp', 'emptyDir': {}}]
    if name == 'source-controller':
        ports.insert(0, {'containerPort': 9090, 'name': 'http', 'protocol': 'TCP'})
        args += ['--storage-path=/data', '--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.cluster.local.']
        volume_mounts.insert(0, {'name': 'data', 'mountPath': '/data'})
        volumes.insert(0, {'name': 'data', 'emptyDir': {}})
    selector = {'app': name}
    container = {
        'name': 'manager', 'image': 'ghcr.io/fluxcd/{0}:{1}'.format(name, tag), 'imagePullPolicy': 'IfNotPresent',
        'args': args, 'env': [{'name': 'RUNTIME_NAMESPACE',
                               'valueFrom': {'fieldRef': {'fieldPath': 'metadata.namespace'}}}],
        'ports': ports,
        'livenessProbe': {'httpGet': {'path': '/healthz', 'port': 'healthz'}},
        'readinessProbe': {'httpGet': {'path': '/readyz', 'port': 'healthz'}},
        'resources': {'limits': {'cpu': '1000m', 'memory': '1Gi'}, 'requests': {'cpu': '100m', 'memory': '64Mi'}},
        'securityContext': {'allowPrivilegeEscalation': False, 'readOnlyRootFilesystem': True, 'runAsNonRoot': True,
                            'capabilities': {'drop': ['ALL']}, 'seccompProfile': {'type': 'RuntimeDefault'}},
        'volumeMounts': volume_mounts}
    return {'apiVersion': 'apps/v1', 'kind': 'Deployment',
            'metadata': _metadata(name, component=name, app=name, **{'control-plane': 'controller'}),
            'spec': {'replicas': 1, 'selector': {'matchLabels': selector},
                     'template': {'metadata': {'labels': dict(selector),
                                               'annotations': {'prometheus.io/port': '8080',
                                                               'prometheus.io/scrape': 'true'}},
                                  'spec': {'containers': [container], 'nodeSelector': {'kubernetes.io/os': 'linux'},
                                           'priorityClassName': 'system-cluster-critical',
                                           'securityContext': {'fsGroup': 1337},
                                           'serviceAccountName': name, 'terminationGracePeriodSeconds': 10,
                                           'volumes': volumes}}}}


def _source_service():
    name = 'source-controller'
    return {'apiVersion': 'v1', 'kind': 'Service',
            'metadata': _metadata(name, component=name, **{'control-plane': 'controller'}),
            'spec': {'type': 'ClusterIP', 'selector': {'app': name},
                     'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 'http'}]}}


def objects():
    """Every object of the install manifest, in the order Flux applies them (namespace and CRDs first)."""
    namespace = {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': _metadata(NAMESPACE, namespaced=False)}
    return ([namespace] + [_crd(name) for name in CRDS_OWNER] + [_service_account(name) for name in CONTROLLERS]
            + _rbac() + [_source_service()]
            + [_deployment(name, tag) for name, tag in CONTROLLERS.items()])


def render():
    """The install manifest as multi-document YAML."""
    return '---\n' + '---\n'.join(yaml.safe_dump(obj, sort_keys=False) for obj in objects())
