"""Pod Security admission in the Kubernetes emulator: the Pod Security Standards checks and their messages, the
namespace labels over the plugin's configuration (Talos's by default), refusals of Pods, warnings for workloads, and
the charts' pods as the upstream charts render them."""

import pytest

from castle_lab.kube.api import admission, patch as patches
from castle_lab.kube.api.errors import ApiError
from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.controllers import charts
from castle_lab.talos import machineconfig, secrets

PRIVILEGED = {'containers': [{'name': 'c', 'image': 'busybox', 'securityContext': {'privileged': True}}]}
# A pod that meets the restricted level.
RESTRICTED = {'securityContext': {'runAsNonRoot': True, 'seccompProfile': {'type': 'RuntimeDefault'}},
              'containers': [{'name': 'c', 'image': 'busybox', 'securityContext': {
                  'allowPrivilegeEscalation': False, 'capabilities': {'drop': ['ALL']}}}]}
RESTRICTED_WARNING = (
    'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set '
    'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set '
    'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set '
    'securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
    'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


def types(api, *names):
    return [api.registry.get(group, 'v1', plural) for group, plural in names]


def create_pod(api, namespace, spec, name='p', meta=None, warnings=None):
    pods, = types(api, ('', 'pods'))
    return api.create(pods, namespace, {'metadata': dict(meta or {}, name=name), 'spec': spec}, 'test',
                      warnings=warnings)


def labelled_namespace(api, name, **labels):
    namespaces, = types(api, ('', 'namespaces'))
    api.create(namespaces, None, {'metadata': {'name': name, 'labels': {
        admission.LABEL_PREFIX + mode: level for mode, level in labels.items()}}}, 'test')


def test_privileged_pod_is_refused_by_talos_default_baseline():
    api = KubeApi()
    with pytest.raises(ApiError) as refused:
        create_pod(api, 'default', PRIVILEGED, name='x')
    assert (refused.value.code, refused.value.reason) == (403, 'Forbidden')
    assert refused.value.message == ('pods "x" is forbidden: violates PodSecurity "baseline:latest": privileged '
                                     '(container "c" must not set securityContext.privileged=true)')
    assert refused.value.details == {'name': 'x', 'kind': 'pods'}
    assert api.store.get(('', 'pods'), 'default', 'x') is None


def test_privileged_namespace_admits_it_and_kube_system_is_exempt():
    api = KubeApi()
    labelled_namespace(api, 'storage', enforce='privileged', audit='privileged', warn='privileged')
    warnings = []
    assert create_pod(api, 'storage', PRIVILEGED, warnings=warnings)['metadata']['name'] == 'p'
    assert warnings == []
    create_pod(api, 'kube-system', PRIVILEGED, warnings=warnings)
    assert warnings == []


def test_enforce_label_alone_keeps_the_default_warn_level():
    api = KubeApi()
    labelled_namespace(api, 'storage', enforce='privileged')
    warnings = []
    create_pod(api, 'storage', PRIVILEGED, warnings=warnings)
    assert len(warnings) == 1
    assert warnings[0].startswith('would violate PodSecurity "restricted:latest": privileged (container "c" must '
                                  'not set securityContext.privileged=true), allowPrivilegeEscalation != false')


def test_admitted_pod_gets_the_restricted_warning():
    api = KubeApi()
    warnings = []
    create_pod(api, 'default', {'containers': [{'name': 'c', 'image': 'busybox'}]}, warnings=warnings)
    assert warnings == [RESTRICTED_WARNING]
    warnings = []
    create_pod(api, 'default', RESTRICTED, name='ok', warnings=warnings)
    assert warnings == []


def test_version_labels_and_restricted_enforce():
    api = KubeApi()
    labelled_namespace(api, 'strict', enforce='restricted', **{'enforce-version': 'v1.30'})
    with pytest.raises(ApiError) as refused:
        create_pod(api, 'strict', {'containers': [{'name': 'c', 'image': 'busybox'}]})
    assert refused.value.message == 'pods "p" is forbidden: violates PodSecurity "restricted:v1.30": ' + \
        RESTRICTED_WARNING.split(': ', 1)[1]


def test_workloads_are_warned_never_refused():
    api = KubeApi()
    deployments, daemonsets = types(api, ('apps', 'deployments'), ('apps', 'daemonsets'))
    template = {'metadata': {'labels': {'app': 'x'}}, 'spec': PRIVILEGED}
    warnings = []
    api.create(deployments, 'default', {'metadata': {'name': 'x'}, 'spec': {
        'selector': {'matchLabels': {'app': 'x'}}, 'template': template}}, 'test', warnings=warnings)
    assert warnings[0].startswith('would violate PodSecurity "restricted:latest": privileged (container "c"')
    labelled_namespace(api, 'quiet', warn='baseline')
    warnings = []
    api.create(daemonsets, 'quiet', {'metadata': {'name': 'x'}, 'spec': {
        'selector': {'matchLabels': {'app': 'x'}}, 'template': template}}, 'test', warnings=warnings)
    assert warnings == ['would violate PodSecurity "baseline:latest": privileged (container "c" must not set '
                        'securityContext.privileged=true)']


def test_unconfigured_plugin_admits_everything():
    api = KubeApi(pod_security=admission.UNCONFIGURED)
    warnings = []
    create_pod(api, 'default', PRIVILEGED, warnings=warnings)
    assert warnings == []


@pytest.mark.parametrize('spec, meta, found', [
    ({'hostNetwork': True, 'hostPID': True, 'hostIPC': True}, {},
     'host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)'),
    ({'volumes': [{'name': 'a', 'hostPath': {'path': '/'}}, {'name': 'b', 'emptyDir': {}},
                  {'name': 'c', 'hostPath': {'path': '/dev'}}]}, {},
     'hostPath volumes (volumes "a", "c")'),
    ({'volumes': [{'name': 'a', 'hostPath': {'path': '/'}}]}, {}, 'hostPath volumes (volume "a")'),
    ({'containers': [{'name': 'c', 'image': 'busybox', 'ports': [{'containerPort': 80, 'hostPort': 80}]},
                     {'name': 'd', 'image': 'busybox', 'ports': [{'containerPort': 443, 'hostPort': 443}]}]}, {},
     'hostPort (containers "c", "d" use hostPorts 443, 80)'),
    ({'containers': [{'name': 'c', 'image': 'busybox', 'securityContext': {'capabilities': {'add': ['NET_RAW', 'CHOWN', 'SYS_ADMIN']}}}]},
     {}, 'non-default capabilities (container "c" must not include "NET_RAW", "SYS_ADMIN" in '
         'securityContext.capabilities.add)'),
    ({'containers': [{'name': 'c', 'image': 'busybox', 'securityContext': {'procMount': 'Unmasked'}}]}, {},
     'procMount (container "c" must not set securityContext.procMount to "Unmasked")'),
    ({'securityContext': {'seccompProfile': {'type': 'Unconfined'}}}, {},
     'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'),
    ({'securityContext': {'sysctls': [{'name': 'kernel.msgmax', 'value': '1'},
                                      {'name': 'net.ipv4.tcp_syncookies', 'value': '1'}]}}, {},
     'forbidden sysctls (kernel.msgmax)'),
    ({'containers': [{'name': 'c', 'image': 'busybox', 'securityContext': {'seLinuxOptions': {'type': 'spc_t', 'user': 'u'}}}]}, {},
     'seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be '
     'set)'),
    ({'securityContext': {'windowsOptions': {'hostProcess': True}},
      'containers': [{'name': 'c', 'image': 'busybox', 'securityContext': {'windowsOptions': {'hostProcess': True}}}]}, {},
     'hostProcess (pod and container "c" must not set securityContext.windowsOptions.hostProcess=true)'),
    ({}, {'annotations': {'container.apparmor.security.beta.kubernetes.io/c': 'unconfined'}},
     'forbidden AppArmor profile (container.apparmor.security.beta.kubernetes.io/c="unconfined")'),
    ({'containers': [{'name': 'c', 'image': 'busybox', 'livenessProbe': {'httpGet': {'host': '1.2.3.4', 'port': 80}}}]}, {},
     'probe or lifecycle host (container "c" uses probe or lifecycle host "1.2.3.4")'),
])
def test_baseline_checks(spec, meta, found):
    spec = dict({'containers': [{'name': 'c', 'image': 'busybox'}]}, **spec)
    assert admission.violations('baseline', meta, spec) == found
    with pytest.raises(ApiError) as refused:
        create_pod(KubeApi(), 'default', spec, meta=meta)
    assert refused.value.message == 'pods "p" is forbidden: violates PodSecurity "baseline:latest": ' + found


@pytest.mark.parametrize('change, found', [
    ({'volumes': [{'name': 'n', 'nfs': {'server': 's', 'path': '/'}}, {'name': 's', 'secret': {'secretName': 'x'}}]},
     'restricted volume types (volume "n" uses restricted volume type "nfs")'),
    ({'securityContext': {'runAsNonRoot': False, 'seccompProfile': {'type': 'RuntimeDefault'}}},
     'runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)'),
    ({'securityContext': {'runAsNonRoot': True, 'runAsUser': 0, 'seccompProfile': {'type': 'RuntimeDefault'}}},
     'runAsUser=0 (pod must not set runAsUser=0)'),
    ({'securityContext': {'runAsNonRoot': True}},
     'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
     '"Localhost")'),
])
def test_restricted_checks(change, found):
    spec = dict(RESTRICTED, **change)
    assert admission.violations('restricted', {}, spec) == found
    assert admission.violations('baseline', {}, spec) == ''


def test_restricted_capabilities_allow_only_net_bind_service():
    spec = {'securityContext': RESTRICTED['securityContext'], 'containers': [{'name': 'c', 'image': 'busybox', 'securityContext': {
        'allowPrivilegeEscalation': False, 'capabilities': {'drop': ['ALL'], 'add': ['NET_BIND_SERVICE', 'CHOWN']}}}]}
    assert admission.violations('restricted', {}, spec) == (
        'unrestricted capabilities (container "c" must not include "CHOWN" in securityContext.capabilities.add)')


def chart_templates(name):
    chart = charts.CHARTS[name]
    objects = charts.render(chart, chart.versions[0], name, name + '-system', {}, ('flux-system', name))
    return {o['metadata']['name']: o['spec']['template'] for o in objects if o['kind'] in ('Deployment', 'DaemonSet')}


def test_longhorn_manager_and_metallb_speaker_break_baseline_as_their_charts_render_them():
    longhorn, metallb = chart_templates('longhorn'), chart_templates('metallb')
    manager, speaker = longhorn['longhorn-manager'], metallb['metallb-speaker']
    assert admission.violations('baseline', manager['metadata'], manager['spec']) == (
        'privileged (container "longhorn-manager" must not set securityContext.privileged=true), hostPath volumes '
        '(volumes "boot", "dev", "proc", "etc", "longhorn")')
    assert admission.violations('baseline', speaker['metadata'], speaker['spec']) == (
        'host namespaces (hostNetwork=true), non-default capabilities (containers "speaker", "frr" must not include '
        '"NET_ADMIN", "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add)')
    passing = [longhorn['longhorn-driver-deployer'], longhorn['longhorn-ui'], metallb['metallb-controller']]
    assert [admission.violations('baseline', t['metadata'], t['spec']) for t in passing] == ['', '', '']
    for template in chart_templates('external-secrets').values():
        assert admission.violations('restricted', template['metadata'], template['spec']) == ''


def test_talos_generates_the_pod_security_configuration():
    bundle = secrets.load(secrets.dump(secrets.generate()))
    config = machineconfig.machine_config(bundle, 'controlplane', 'lab', 'https://10.0.0.1:6443')
    assert config['cluster']['apiServer']['admissionControl'] == [
        {'name': 'PodSecurity', 'configuration': admission.TALOS_DEFAULT}]
    assert admission.TALOS_DEFAULT['defaults'] == {
        'enforce': 'baseline', 'enforce-version': 'latest', 'audit': 'restricted', 'audit-version': 'latest',
        'warn': 'restricted', 'warn-version': 'latest'}
    assert admission.TALOS_DEFAULT['exemptions']['namespaces'] == ['kube-system']


def test_server_side_apply_creates_through_the_same_admission():
    api = KubeApi()
    pods, = types(api, ('', 'pods'))
    body = {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'p'}, 'spec': PRIVILEGED}
    with pytest.raises(ApiError) as refused:
        api.patch(pods, 'default', 'p', body, patches.APPLY_PATCH, 'test')
    assert refused.value.code == 403
    warnings = []
    body['spec'] = {'containers': [{'name': 'c', 'image': 'busybox'}]}
    api.patch(pods, 'default', 'p', body, patches.APPLY_PATCH, 'test', warnings=warnings)
    assert warnings == [RESTRICTED_WARNING]


def test_pod_security_labels_must_parse():
    api = KubeApi()
    namespaces, = types(api, ('', 'namespaces'))
    with pytest.raises(ApiError) as refused:
        labelled_namespace(api, 'bad', enforce='strict', **{'warn-version': '1.30'})
    assert (refused.value.code, refused.value.reason) == (422, 'Invalid')
    assert refused.value.message == (
        'Namespace "bad" is invalid: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
        'must be one of privileged, baseline, restricted, metadata.labels[pod-security.kubernetes.io/warn-version]: '
        'Invalid value: "1.30": must be "latest" or "v1.x"]')
    labelled_namespace(api, 'good', enforce='baseline', **{'enforce-version': 'v1.35'})
    changed = api.get(namespaces, None, 'good')
    changed['metadata']['labels'][admission.LABEL_PREFIX + 'audit'] = 'loud'
    with pytest.raises(ApiError) as refused:
        api.replace(namespaces, None, 'good', changed, 'test')
    assert refused.value.details['causes'] == [{
        'reason': 'FieldValueInvalid', 'field': 'metadata.labels[pod-security.kubernetes.io/audit]',
        'message': 'Invalid value: "loud": must be one of privileged, baseline, restricted'}]
