"""Defaults the API server gives built-in objects, as pkg/apis/{core,apps,batch}/v1/defaults.go set them
(only fields that are unset get a value; what clients and controllers read back)."""

ROLLING_25 = {'maxSurge': '25%', 'maxUnavailable': '25%'}
PROBES = ('livenessProbe', 'readinessProbe', 'startupProbe')
DEFAULT_MODE = 420  # 0644


def _image_tag(image):
    """The tag ParseImageName finds: 'latest' when the image has neither tag nor digest."""
    name, _, digest = image.partition('@')
    last = name.rsplit('/', 1)[-1]
    if ':' in last:
        return last.rsplit(':', 1)[1]
    return '' if digest else 'latest'


def container(spec):
    spec.setdefault('terminationMessagePath', '/dev/termination-log')
    spec.setdefault('terminationMessagePolicy', 'File')
    if isinstance(spec.get('image'), str):
        spec.setdefault('imagePullPolicy', 'Always' if _image_tag(spec['image']) == 'latest' else 'IfNotPresent')
    for port in spec.get('ports') or []:
        if isinstance(port, dict):
            port.setdefault('protocol', 'TCP')
    for probe in PROBES:
        if isinstance(spec.get(probe), dict):
            _probe(spec[probe])
    for env in spec.get('env') or []:
        field_ref = ((env or {}).get('valueFrom') or {}).get('fieldRef')
        if isinstance(field_ref, dict):
            field_ref.setdefault('apiVersion', 'v1')


def _probe(probe):
    probe.setdefault('timeoutSeconds', 1)
    probe.setdefault('periodSeconds', 10)
    probe.setdefault('successThreshold', 1)
    probe.setdefault('failureThreshold', 3)
    if isinstance(probe.get('httpGet'), dict):
        probe['httpGet'].setdefault('path', '/')
        probe['httpGet'].setdefault('scheme', 'HTTP')


def _volume(volume):
    sources = set(volume) - {'name'}
    if not sources:
        volume['emptyDir'] = {}
    for source in ('secret', 'configMap', 'projected', 'downwardAPI'):
        if isinstance(volume.get(source), dict):
            volume[source].setdefault('defaultMode', DEFAULT_MODE)


def pod_spec(spec):
    spec.setdefault('restartPolicy', 'Always')
    spec.setdefault('dnsPolicy', 'ClusterFirst')
    spec.setdefault('schedulerName', 'default-scheduler')
    spec.setdefault('terminationGracePeriodSeconds', 30)
    spec.setdefault('securityContext', {})
    for group in ('initContainers', 'containers', 'ephemeralContainers'):
        for item in spec.get(group) or []:
            if isinstance(item, dict):
                container(item)
    for volume in spec.get('volumes') or []:
        if isinstance(volume, dict):
            _volume(volume)


def pod_template(spec):
    template = spec.get('template')
    if isinstance(template, dict) and isinstance(template.get('spec'), dict):
        pod_spec(template['spec'])


def pod(obj):
    spec = obj.setdefault('spec', {})
    pod_spec(spec)
    spec.setdefault('enableServiceLinks', True)
    if spec.get('hostNetwork') is True:
        # A host-network Pod's (not a pod template's) container ports are host ports too (SetDefaults_Pod).
        for group in ('initContainers', 'containers'):
            for item in spec.get(group) or []:
                for port in (item.get('ports') or []) if isinstance(item, dict) else []:
                    if isinstance(port, dict) and not port.get('hostPort'):
                        port['hostPort'] = port.get('containerPort')


def deployment(spec):
    spec.setdefault('replicas', 1)
    strategy = spec.setdefault('strategy', {})
    strategy.setdefault('type', 'RollingUpdate')
    if strategy['type'] == 'RollingUpdate':
        rolling = strategy.setdefault('rollingUpdate', {})
        for key, value in ROLLING_25.items():
            rolling.setdefault(key, value)
    spec.setdefault('revisionHistoryLimit', 10)
    spec.setdefault('progressDeadlineSeconds', 600)
    pod_template(spec)


def replicaset(spec):
    spec.setdefault('replicas', 1)
    pod_template(spec)


def daemonset(spec):
    strategy = spec.setdefault('updateStrategy', {})
    strategy.setdefault('type', 'RollingUpdate')
    if strategy['type'] == 'RollingUpdate':
        rolling = strategy.setdefault('rollingUpdate', {})
        rolling.setdefault('maxUnavailable', 1)
        rolling.setdefault('maxSurge', 0)
    spec.setdefault('revisionHistoryLimit', 10)
    pod_template(spec)


def statefulset(spec):
    spec.setdefault('replicas', 1)
    spec.setdefault('podManagementPolicy', 'OrderedReady')
    strategy = spec.setdefault('updateStrategy', {})
    strategy.setdefault('type', 'RollingUpdate')
    if strategy['type'] == 'RollingUpdate':
        strategy.setdefault('rollingUpdate', {}).setdefault('partition', 0)
    spec.setdefault('revisionHistoryLimit', 10)
    retention = spec.setdefault('persistentVolumeClaimRetentionPolicy', {})
    retention.setdefault('whenDeleted', 'Retain')
    retention.setdefault('whenScaled', 'Retain')
    pod_template(spec)


def job(spec):
    if spec.get('completions') is None and spec.get('parallelism') is None:
        spec['completions'] = 1
        spec['parallelism'] = 1
    spec.setdefault('parallelism', 1)
    spec.setdefault('backoffLimit', 6)
    spec.setdefault('completionMode', 'NonIndexed')
    spec.setdefault('suspend', False)
    spec.setdefault('podReplacementPolicy', 'TerminatingOrFailed')
    pod_template(spec)


def cronjob(spec):
    spec.setdefault('concurrencyPolicy', 'Allow')
    spec.setdefault('suspend', False)
    spec.setdefault('successfulJobsHistoryLimit', 3)
    spec.setdefault('failedJobsHistoryLimit', 1)
    job_template = spec.get('jobTemplate')
    if isinstance(job_template, dict) and isinstance(job_template.get('spec'), dict):
        pod_template(job_template['spec'])


def service(spec):
    spec.setdefault('type', 'ClusterIP')
    spec.setdefault('sessionAffinity', 'None')
    for port in spec.get('ports') or []:
        if isinstance(port, dict):
            port.setdefault('protocol', 'TCP')
            if port.get('targetPort') in (None, 0, ''):
                port['targetPort'] = port.get('port')
    if spec['type'] != 'ExternalName':
        spec.setdefault('internalTrafficPolicy', 'Cluster')
    if spec['type'] in ('NodePort', 'LoadBalancer'):
        spec.setdefault('externalTrafficPolicy', 'Cluster')
    if spec['type'] == 'LoadBalancer':
        spec.setdefault('allocateLoadBalancerNodePorts', True)


def persistentvolumeclaim(spec):
    spec.setdefault('volumeMode', 'Filesystem')
