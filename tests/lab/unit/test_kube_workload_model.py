"""The lab's workload model on a real in-memory API (no server): Deployment revisions and ReplicaSet reuse, pods that
fail as the control API's faults say, Jobs that complete or fail, nodes that get cordoned or go NotReady, pods the
API refuses, evictions and the events the controllers record."""

import asyncio

import pytest
from aiohttp import test_utils, web

from castle_lab import timing
from castle_lab.kube.api import eviction
from castle_lab.kube.api.errors import ApiError
from castle_lab.kube.api.objects import NODE, KubeApi
from castle_lab.kube.controllers import workloads
from castle_lab.kube.controllers.core import NamespaceController
from castle_lab.kube.controllers.failures import Failures
from castle_lab.kube.controllers.workloads import NodeController, WorkloadController

NS = 'team'


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def lab():
    api = KubeApi()
    api.create(api.registry.get('', 'v1', 'namespaces'), None, {'metadata': {'name': NS}}, 'test')
    failures = Failures(clock=Clock())
    return api, failures, WorkloadController(api, failures), NodeController(api, failures)


def rtype(api, plural, group='', version='v1'):
    return api.registry.get(group, version, plural)


def deployment(api, name='web', image='nginx:1.27', replicas=2, **spec):
    labels = {'app': name}
    body = {'metadata': {'name': name}, 'spec': dict({
        'replicas': replicas, 'selector': {'matchLabels': labels},
        'template': {'metadata': {'labels': labels}, 'spec': {'containers': [{'name': 'app', 'image': image}]}}},
        **spec)}
    deployments = rtype(api, 'deployments', 'apps')
    if api.store.get(deployments.key, NS, name) is None:
        return api.create(deployments, NS, body, 'test')
    current = api.get(deployments, NS, name)
    current['spec'] = dict(current['spec'], **body['spec'])
    return api.replace(deployments, NS, name, current, 'test')


def sync(lab, kind='deployments', name='web', group='apps', times=1):
    api, _failures, controller, _nodes = lab
    for _pass in range(times):
        controller.reconcile((group, kind), NS, name)
    return api.store.get((group, kind), NS, name)


def replica_sets(api):
    return sorted(api.store.list(('apps', 'replicasets'), NS), key=workloads.revision_of)


def pods(api, **labels):
    return [p for p in api.store.list(('', 'pods'), NS)
            if all((p['metadata'].get('labels') or {}).get(k) == v for k, v in labels.items())]


def conditions(obj):
    return {c['type']: (c['status'], c.get('reason')) for c in obj['status'].get('conditions') or []}


def events(api, reason=None, namespace=NS):
    return [(e['involvedObject']['kind'], e['reason'], e['message']) for e in api.store.list(('', 'events'), namespace)
            if reason in (None, e['reason'])]


def test_the_pod_template_hash_is_fnv32a_safe_encoded_with_the_collision_count():
    assert workloads.fnv32a(b'') == 0x811c9dc5 and workloads.fnv32a(b'a') == 0xe40c292c
    template = {'metadata': {'labels': {'app': 'web'}}, 'spec': {'containers': [{'name': 'app', 'image': 'x'}]}}
    plain = workloads.template_hash(template)
    assert set(plain) <= set(workloads.SAFE) and 8 <= len(plain) <= 10
    assert workloads.template_hash(template) == plain
    assert workloads.template_hash(template, 1) not in (plain, workloads.template_hash(template, 2))


def test_a_deployment_gets_a_revisioned_replica_set_labelled_with_the_template_hash(lab):
    api = lab[0]
    deployment(api)
    found = sync(lab)
    [rs] = replica_sets(api)
    pod_hash = workloads.template_hash(found['spec']['template'])
    assert rs['metadata']['name'] == 'web-' + pod_hash
    assert rs['metadata']['labels'] == {'app': 'web', 'pod-template-hash': pod_hash}
    assert rs['spec']['selector'] == {'matchLabels': {'app': 'web', 'pod-template-hash': pod_hash}}
    assert rs['spec']['template']['metadata']['labels']['pod-template-hash'] == pod_hash
    assert rs['metadata']['annotations'] == {'deployment.kubernetes.io/revision': '1',
                                             'deployment.kubernetes.io/desired-replicas': '2',
                                             'deployment.kubernetes.io/max-replicas': '3'}
    assert found['metadata']['annotations']['deployment.kubernetes.io/revision'] == '1'
    assert [p['status']['phase'] for p in pods(api)] == ['Running', 'Running']
    assert conditions(found) == {'Available': ('True', 'MinimumReplicasAvailable'),
                                 'Progressing': ('True', 'NewReplicaSetAvailable')}
    assert ('Deployment', 'ScalingReplicaSet', 'Scaled up replica set {0} from 0 to 2'.format(
        rs['metadata']['name'])) in events(api)
    assert len([e for e in events(api, 'SuccessfulCreate') if e[0] == 'ReplicaSet']) == 2
    # The same occurrence is served by events.k8s.io/v1 too.
    mirrored = api.store.list(('events.k8s.io', 'events'), NS)
    assert {(e['regarding']['kind'], e['reason'], e['note']) for e in mirrored} == set(events(api))


def test_a_rollback_reuses_the_old_replica_set_under_a_new_revision(lab):
    api = lab[0]
    deployment(api)
    sync(lab)
    deployment(api, image='nginx:1.28')
    found = sync(lab)
    first, second = replica_sets(api)
    assert (first['spec']['replicas'], second['spec']['replicas']) == (0, 2)
    assert found['metadata']['annotations']['deployment.kubernetes.io/revision'] == '2'
    assert ('Deployment', 'ScalingReplicaSet', 'Scaled down replica set {0} from 2 to 0'.format(
        first['metadata']['name'])) in events(api)

    deployment(api, image='nginx:1.27')  # what kubectl rollout undo writes
    found = sync(lab)
    assert len(replica_sets(api)) == 2
    reused = api.store.get(('apps', 'replicasets'), NS, first['metadata']['name'])
    assert reused['metadata']['uid'] == first['metadata']['uid'] and reused['spec']['replicas'] == 2
    assert reused['metadata']['annotations']['deployment.kubernetes.io/revision'] == '3'
    assert reused['metadata']['annotations']['deployment.kubernetes.io/revision-history'] == '1'
    assert found['metadata']['annotations']['deployment.kubernetes.io/revision'] == '3'


def test_old_replica_sets_beyond_the_revision_history_limit_go(lab):
    api = lab[0]
    for image in ('a:1', 'a:2', 'a:3', 'a:4'):
        deployment(api, image=image, revisionHistoryLimit=1)
        sync(lab)
    assert [workloads.revision_of(rs) for rs in replica_sets(api)] == [3, 4]


def test_pods_that_never_get_ready_time_the_rollout_out_on_the_controllers_clock(lab):
    api, failures = lab[0], lab[1]
    failures.set_fault(NS, 'Deployment', 'web', 'not-ready')
    deployment(api, progressDeadlineSeconds=60)
    found = sync(lab)
    pod = pods(api)[0]
    assert pod['status']['phase'] == 'Running'
    ready = next(c for c in pod['status']['conditions'] if c['type'] == 'Ready')
    assert (ready['status'], ready['reason'], ready['message']) == (
        'False', 'ContainersNotReady', 'containers with unready status: [app]')
    assert conditions(found) == {'Available': ('False', 'MinimumReplicasUnavailable'),
                                 'Progressing': ('True', 'ReplicaSetUpdated')}
    assert found['status'].get('readyReplicas') is None and found['status']['unavailableReplicas'] == 2
    failures.advance(59)
    assert conditions(sync(lab))['Progressing'] == ('True', 'ReplicaSetUpdated')
    failures.advance(2)
    found = sync(lab)
    progressing = next(c for c in found['status']['conditions'] if c['type'] == 'Progressing')
    assert (progressing['status'], progressing['reason'], progressing['message']) == (
        'False', 'ProgressDeadlineExceeded', 'ReplicaSet "{0}" has timed out progressing.'.format(
            replica_sets(api)[0]['metadata']['name']))
    failures.set_fault(NS, 'Deployment', 'web', None)
    assert conditions(sync(lab)) == {'Available': ('True', 'MinimumReplicasAvailable'),
                                     'Progressing': ('True', 'NewReplicaSetAvailable')}


def waiting(pod):
    return {c['name']: (c['state'].get('waiting') or {}).get('reason') for c in pod['status']['containerStatuses']}


def test_an_image_that_cannot_be_pulled_shows_err_image_pull_then_back_off(lab):
    api, failures = lab[0], lab[1]
    failures.set_fault(NS, 'Deployment', 'web', 'image-pull')
    deployment(api, image='registry.example/web:nope', replicas=1)
    sync(lab)
    [pod] = pods(api)
    assert pod['status']['phase'] == 'Pending' and waiting(pod) == {'app': 'ErrImagePull'}
    assert 'failed to pull and unpack image "registry.example/web:nope"' in \
        pod['status']['containerStatuses'][0]['state']['waiting']['message']
    assert ('Pod', 'Failed', 'Error: ErrImagePull') in events(api)
    sync(lab)
    [pod] = pods(api)
    assert waiting(pod) == {'app': 'ImagePullBackOff'}
    assert ('Pod', 'BackOff', 'Back-off pulling image "registry.example/web:nope"') in events(api)


def test_in_the_real_profile_each_node_pulls_an_image_once_before_a_pod_runs(lab, monkeypatch):
    """Real profile: the first pod needing an image on a node waits ContainerCreating for the pull; the next pod
    with that image runs at once. The default profile (every other test here) runs pods at once."""
    monkeypatch.setattr(timing, '_CURRENT', [timing.Timing({'CASTLE_LAB_TIMING': 'real'})])
    clock = [1000.0]
    monkeypatch.setattr(workloads.time, 'monotonic', lambda: clock[0])
    api, _failures, controller, _nodes = lab
    pull = timing.duration('kube.image.pull')
    deployment(api, replicas=1)
    requeue = controller.reconcile(('apps', 'deployments'), NS, 'web')
    [pod] = pods(api)
    assert pod['status']['phase'] == 'Pending' and waiting(pod) == {'app': 'ContainerCreating'}
    assert not workloads.pod_ready(pod) and 'containerID' not in pod['status']['containerStatuses'][0]
    assert ('Pod', 'Pulling', 'Pulling image "nginx:1.27"') in events(api)
    assert requeue is not None and 0 < requeue <= pull
    clock[0] += pull / 2
    sync(lab)
    assert not workloads.pod_ready(pods(api)[0])
    clock[0] += pull / 2
    sync(lab)
    [pod] = pods(api)
    assert pod['status']['phase'] == 'Running' and workloads.pod_ready(pod)
    assert ('Pod', 'Pulled', 'Successfully pulled image "nginx:1.27" in {0:.1f}s'.format(pull)) in events(api)
    deployment(api, name='twin', replicas=1)
    sync(lab, name='twin')
    assert workloads.pod_ready(pods(api, app='twin')[0])
    assert len(events(api, 'Pulling')) == 1


def test_a_crash_looping_container_waits_in_back_off(lab):
    api, failures = lab[0], lab[1]
    failures.set_fault(NS, 'Deployment', 'web', 'crash-loop')
    deployment(api, replicas=1)
    sync(lab)
    [pod] = pods(api)
    [container] = pod['status']['containerStatuses']
    assert waiting(pod) == {'app': 'CrashLoopBackOff'} and container['restartCount'] >= 1
    assert container['lastState']['terminated']['reason'] == 'Error'
    assert not workloads.pod_ready(pod)


def job(api, name='migrate', backoff=6):
    return api.create(rtype(api, 'jobs', 'batch'), NS, {'metadata': {'name': name}, 'spec': {
        'backoffLimit': backoff, 'template': {'spec': {'restartPolicy': 'Never', 'containers': [
            {'name': 'run', 'image': 'busybox'}]}}}}, 'test')


def test_a_job_runs_to_completion(lab):
    api = lab[0]
    job(api)
    found = sync(lab, 'jobs', 'migrate', 'batch')
    assert conditions(found) == {'SuccessCriteriaMet': ('True', 'CompletionsReached'),
                                 'Complete': ('True', 'CompletionsReached')}
    assert found['status']['succeeded'] == 1 and 'completionTime' in found['status']
    [pod] = pods(api, **{'job-name': 'migrate'})
    assert pod['status']['phase'] == 'Succeeded'
    assert pod['status']['containerStatuses'][0]['state']['terminated']['reason'] == 'Completed'


def test_a_failing_job_stops_at_its_backoff_limit(lab):
    api, failures = lab[0], lab[1]
    failures.set_fault(NS, 'Job', 'migrate', 'fail')
    job(api, backoff=2)
    found = sync(lab, 'jobs', 'migrate', 'batch')
    assert conditions(found) == {'FailureTarget': ('True', 'BackoffLimitExceeded'),
                                 'Failed': ('True', 'BackoffLimitExceeded')}
    assert found['status']['failed'] == 3 and 'succeeded' not in found['status']
    assert [p['status']['phase'] for p in pods(api)] == ['Failed'] * 3
    assert ('Job', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit') in events(api)


def test_a_pod_the_api_refuses_is_a_failed_create_event_and_a_replica_failure(lab, monkeypatch):
    api = lab[0]
    create = api.create

    def refusing(kind, namespace, body, manager, **options):
        if kind.kind == 'Pod':
            raise ApiError(403, 'Forbidden', 'pods "x" is forbidden: violates PodSecurity "baseline:latest"', {})
        return create(kind, namespace, body, manager, **options)

    monkeypatch.setattr(api, 'create', refusing)
    deployment(api, replicas=1)
    assert lab[2].reconcile(('apps', 'deployments'), NS, 'web') == workloads.FAILED_CREATE_RETRY
    found = api.store.get(('apps', 'deployments'), NS, 'web')
    [rs] = replica_sets(api)
    message = 'pods "x" is forbidden: violates PodSecurity "baseline:latest"'
    assert ('ReplicaSet', 'FailedCreate', 'Error creating: ' + message) in events(api)
    assert conditions(rs) == {'ReplicaFailure': ('True', 'FailedCreate')}
    failure = next(c for c in found['status']['conditions'] if c['type'] == 'ReplicaFailure')
    assert (failure['status'], failure['reason'], failure['message']) == ('True', 'FailedCreate', message)
    assert conditions(found)['Available'] == ('False', 'MinimumReplicasUnavailable')


def node(api, name=NODE):
    return api.store.get(('', 'nodes'), None, name)


def test_nodes_get_a_pod_cidr_and_the_taints_of_cordoning_and_of_not_ready(lab):
    api, failures, _workloads, nodes = lab
    nodes.reconcile(('', 'nodes'), '', NODE)
    assert node(api)['spec']['podCIDR'] == '10.244.0.0/24' and node(api)['spec']['podCIDRs'] == ['10.244.0.0/24']
    cordoned = api.served_as(rtype(api, 'nodes'), node(api))
    cordoned['spec']['unschedulable'] = True
    api.replace(rtype(api, 'nodes'), None, NODE, cordoned, 'kubectl')
    nodes.reconcile(('', 'nodes'), '', NODE)
    assert [(t['key'], t['effect']) for t in node(api)['spec']['taints']] == [
        ('node.kubernetes.io/unschedulable', 'NoSchedule')]

    deployment(api, replicas=1)
    sync(lab)
    [pod] = pods(api)
    scheduled = next(c for c in pod['status']['conditions'] if c['type'] == 'PodScheduled')
    assert pod['status']['phase'] == 'Pending' and 'nodeName' not in pod['spec']
    assert (scheduled['reason'], scheduled['message']) == (
        'Unschedulable', '0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: '
                         '1 Preemption is not helpful for scheduling.')
    assert ('Pod', 'FailedScheduling', scheduled['message']) in events(api)

    uncordoned = api.served_as(rtype(api, 'nodes'), node(api))
    uncordoned['spec']['unschedulable'] = False
    api.replace(rtype(api, 'nodes'), None, NODE, uncordoned, 'kubectl')
    nodes.reconcile(('', 'nodes'), '', NODE)
    assert 'taints' not in node(api)['spec']
    sync(lab)
    [pod] = pods(api)
    assert pod['spec']['nodeName'] == NODE and workloads.pod_ready(pod)

    failures.set_node_ready(NODE, False)
    nodes.reconcile(('', 'nodes'), '', NODE)
    nodes.reconcile(('', 'nodes'), '', NODE)
    ready = next(c for c in node(api)['status']['conditions'] if c['type'] == 'Ready')
    assert (ready['status'], ready['reason']) == ('Unknown', 'NodeStatusUnknown')
    assert sorted((t['key'], t['effect']) for t in node(api)['spec']['taints']) == [
        ('node.kubernetes.io/unreachable', 'NoExecute'), ('node.kubernetes.io/unreachable', 'NoSchedule')]
    sync(lab)
    assert not workloads.pod_ready(pods(api)[0])
    failures.set_node_ready(NODE, True)
    nodes.reconcile(('', 'nodes'), '', NODE)
    nodes.reconcile(('', 'nodes'), '', NODE)
    assert workloads.node_ready(node(api)) and 'taints' not in node(api)['spec']


def test_daemon_set_pods_go_to_every_node_even_a_cordoned_one(lab):
    api, _failures, _workloads, nodes = lab
    nodes_type = rtype(api, 'nodes')
    api.create(nodes_type, None, {'metadata': {'name': 'worker'}, 'spec': {'unschedulable': True}}, 'test')
    nodes.reconcile(('', 'nodes'), '', 'worker')
    labels = {'app': 'agent'}
    api.create(rtype(api, 'daemonsets', 'apps'), NS, {'metadata': {'name': 'agent'}, 'spec': {
        'selector': {'matchLabels': labels}, 'template': {'metadata': {'labels': labels}, 'spec': {
            'containers': [{'name': 'agent', 'image': 'agent:1'}]}}}}, 'test')
    found = sync(lab, 'daemonsets', 'agent')
    assert sorted(p['spec']['nodeName'] for p in pods(api)) == [NODE, 'worker']
    assert found['status']['desiredNumberScheduled'] == 2


def test_an_eviction_respects_a_pod_disruption_budget(lab):
    api = lab[0]
    deployment(api, replicas=1)
    sync(lab)
    [pod] = pods(api)
    budgets = rtype(api, 'poddisruptionbudgets', 'policy')
    api.create(budgets, NS, {'metadata': {'name': 'web'}, 'spec': {'minAvailable': 1, 'selector': {
        'matchLabels': {'app': 'web'}}}}, 'test')
    with pytest.raises(ApiError) as refused:
        eviction.evict(api, NS, pod['metadata']['name'], {'kind': 'Eviction'})
    status = refused.value.status()
    assert (status['code'], status['reason'], status['message']) == (
        429, 'TooManyRequests', "Cannot evict pod as it would violate the pod's disruption budget.")
    assert status['details']['causes'] == [{'reason': 'DisruptionBudget', 'message':
                                            'The disruption budget web needs 1 healthy pods and has 1 currently'}]
    api.delete(budgets, NS, 'web')
    assert eviction.evict(api, NS, pod['metadata']['name'], {'kind': 'Eviction'})['status'] == 'Success'
    assert pods(api) == []


def test_the_default_namespace_holds_the_kubernetes_service_and_its_endpoint_slice():
    api = KubeApi()
    NamespaceController(api, ('127.0.85.1', 6443)).reconcile(('', 'namespaces'), '', 'default')
    service = api.store.get(('', 'services'), 'default', 'kubernetes')
    assert service['spec']['clusterIP'] == '10.96.0.1'
    assert service['spec']['ports'] == [{'name': 'https', 'port': 443, 'protocol': 'TCP', 'targetPort': 6443}]
    [slice_] = api.store.list(('discovery.k8s.io', 'endpointslices'), 'default')
    assert slice_['metadata']['labels']['kubernetes.io/service-name'] == 'kubernetes'
    assert slice_['endpoints'][0]['addresses'] == ['127.0.85.1']


def test_the_control_api_sets_lists_and_clears_faults_and_refuses_unknown_ones():
    async def scenario():
        failures = Failures()
        seen = []
        failures.listeners.append(lambda: seen.append(True))
        app = web.Application()
        failures.routes(app)
        async with test_utils.TestClient(test_utils.TestServer(app)) as control:
            refused = await control.post('/workload-fault', json={'namespace': NS, 'kind': 'Deployment',
                                                                  'name': 'web', 'fault': 'on-fire'})
            assert refused.status == 400 and 'fault (one of not-ready' in (await refused.json())['error']
            assert (await control.post('/clock', json={'advance': -1})).status == 400
            answer = await control.post('/workload-fault', json={'namespace': NS, 'kind': 'Deployment',
                                                                 'name': 'web', 'fault': 'not-ready'})
            assert (await answer.json())['workloads'] == [{'namespace': NS, 'kind': 'Deployment', 'name': 'web',
                                                           'fault': 'not-ready'}]
            await control.post('/node-ready', json={'name': NODE, 'ready': False})
            await control.post('/clock', json={'advance': 30})
            listed = await (await control.get('/failures')).json()
            assert listed == {'workloads': [{'namespace': NS, 'kind': 'Deployment', 'name': 'web',
                                             'fault': 'not-ready'}], 'nodesNotReady': [NODE], 'clockOffset': 30}
            cleared = await (await control.delete('/failures')).json()
            assert cleared == {'workloads': [], 'nodesNotReady': [], 'clockOffset': 30}
        assert len(seen) == 4
    asyncio.run(scenario())


def test_a_template_sent_back_with_go_empty_fields_hashes_the_same():
    template = {'metadata': {'labels': {'app': 'web'}}, 'spec': {'containers': [{'name': 'app', 'image': 'x'}]}}
    echoed = {'metadata': {'labels': {'app': 'web'}, 'creationTimestamp': None},
              'spec': {'containers': [{'name': 'app', 'image': 'x', 'resources': {}}]}}
    assert workloads.template_hash(echoed) == workloads.template_hash(template)


def test_pods_leave_an_unreachable_node_after_their_toleration_seconds(lab):
    api, failures, _workloads, nodes = lab
    api.create(rtype(api, 'nodes'), None, {'metadata': {'name': 'aux'}}, 'test')
    deployment(api, replicas=1)
    sync(lab)
    [pod] = pods(api)
    assert pod['spec']['nodeName'] == 'aux'  # of two nodes without pods, the first by name
    failures.set_node_ready('aux', False)
    nodes.reconcile(('', 'nodes'), '', 'aux')
    assert nodes.reconcile(('', 'nodes'), '', 'aux') == pytest.approx(300)
    assert [p['metadata']['name'] for p in pods(api)] == [pod['metadata']['name']]
    failures.advance(301)
    assert nodes.reconcile(('', 'nodes'), '', 'aux') is None
    assert pods(api) == []
    assert ('Pod', 'TaintManagerEviction', 'Marking for deletion Pod {0}/{1}'.format(
        NS, pod['metadata']['name'])) in events(api)
    sync(lab)
    [replacement] = pods(api)
    assert replacement['spec']['nodeName'] == NODE and workloads.pod_ready(replacement)
