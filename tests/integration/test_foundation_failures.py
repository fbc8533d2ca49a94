"""The foundation's chart wait against a chart that never gets ready: with the lab's control API holding MetalLB's
controller image unpullable, playbooks/flux.yml fails within foundation_timeout naming the HelmRelease, its
Deployment and the pod's reason; with the fault cleared, the same run completes."""

import time

import pytest

from castle_lab.control import KubeControl
from harness import play_recap, run_playbook

pytestmark = pytest.mark.lab

CHARTS = ('external-secrets', 'metallb', 'longhorn')
FAULT = ('metallb-system', 'Deployment', 'metallb-controller')
TIMEOUT = 40


def playbook(lab, env, *args):
    return run_playbook(env, 'playbooks/flux.yml', *args, inventory=lab.inventory / 'hosts.yml')


@pytest.fixture(scope='module')
def control(lab, env):
    found = KubeControl(env['CASTLE_LAB_KUBE_CONTROL'])
    yield found
    found.clear_failures()
    lab.run('kubectl', 'delete', '-n', 'flux-system', '--timeout=60s', '--ignore-not-found', 'kustomization/flux-system',
            *['helmrelease/' + chart for chart in CHARTS], env=env)
    lab.run('kubectl', 'delete', '--timeout=60s', '--ignore-not-found', 'namespace', 'external-secrets',
            'metallb-system', 'longhorn-system', env=env)


def test_a_chart_whose_pods_never_get_ready_fails_the_run_naming_why_then_completes_once_fixed(lab, env, control):
    control.workload_fault(*FAULT, 'image-pull')
    started = time.monotonic()
    failed = playbook(lab, env, '-e', 'foundation_timeout={0}'.format(TIMEOUT))
    took = time.monotonic() - started
    assert failed.returncode != 0, failed.stdout[-3000:]
    output = failed.stdout
    assert 'Wait for every chart' in output.rsplit('fatal:', 1)[0].rsplit('TASK [', 1)[1]
    message = output.rsplit('fatal:', 1)[1]
    assert 'timed out after {0}s: HelmRelease flux-system/metallb is not Ready'.format(TIMEOUT) in message
    assert 'Deployment metallb-system/metallb-controller: 0/1 ready' in message
    assert 'waiting: ImagePullBackOff' in message or 'waiting: ErrImagePull' in message
    # Within the role's deadline: what came before the wait and the wait itself.
    assert took < TIMEOUT + 240

    control.workload_fault(*FAULT, None)
    fixed = playbook(lab, env, '-e', 'foundation_timeout={0}'.format(TIMEOUT))
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    assert play_recap(fixed)['localhost']['failed'] == 0
