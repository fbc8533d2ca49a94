"""Helpers of the Kubernetes emulator tests: polls with a deadline, and kubectl with the lab's kubeconfig."""

import base64
import time
import uuid

import pytest
import yaml
from kubernetes.client.rest import ApiException

from castle_lab.kube import upstream_crds


def wait_for(check, what, timeout=10.0):
    """check()'s first true result, polled until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail('{0}: not within {1}s'.format(what, timeout))
        time.sleep(0.05)


def holds(check, what, seconds=0.5):
    """A negative check: check() stays true for a quiet spell, while nothing is expected to happen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.05)


def kubectl(lab, kenv, *args, stdin=None, check=True):
    """kubectl against the lab; an argument '-' reads `stdin`, written to a file in the lab's directory."""
    if stdin is not None:
        path = lab.dir / 'kubectl-input-{0}.yaml'.format(uuid.uuid4().hex[:6])
        path.write_text(stdin)
        args = tuple(str(path) if a == '-' else a for a in args)
    return lab.run('kubectl', *args, env=kenv, check=check)


# The Pod Security labels of a namespace whose pods need host access (as the foundation role sets them).
PRIVILEGED_NAMESPACE = {'pod-security.kubernetes.io/' + mode: 'privileged' for mode in ('enforce', 'audit', 'warn')}


def scratch_namespace(core, prefix, labels=None):
    """Yields a new namespace's name, then deletes the namespace (unless the test did)."""
    name = '{0}-{1}'.format(prefix, uuid.uuid4().hex[:8])
    core.create_namespace({'metadata': {'name': name, 'labels': labels or {}}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        assert exc.status == 404


ESO_CRDS = ('secretstores.external-secrets.io', 'clustersecretstores.external-secrets.io',
            'externalsecrets.external-secrets.io', 'clusterexternalsecrets.external-secrets.io')


def eso_controller():
    """The External Secrets controller Deployment, as its chart names and labels it."""
    labels = {'app.kubernetes.io/name': 'external-secrets', 'app.kubernetes.io/component': 'controller'}
    return {
        'apiVersion': 'apps/v1', 'kind': 'Deployment',
        'metadata': {'name': 'external-secrets', 'namespace': 'external-secrets', 'labels': labels},
        'spec': {'replicas': 1, 'selector': {'matchLabels': labels}, 'template': {'metadata': {'labels': labels}, 'spec': {
            'containers': [{'name': 'external-secrets', 'image': 'ghcr.io/external-secrets/external-secrets:v2.9.0'}]}}}}


def install_eso(lab, kenv):
    """External Secrets' CRDs and its controller Deployment, as its chart installs them; returns when Available."""
    objects = [{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'external-secrets'}}]
    objects += [upstream_crds.bundled_crd(name) for name in ESO_CRDS]
    apply = ('apply', '--server-side', '--field-manager=castle-test', '--force-conflicts', '-f', '-')
    kubectl(lab, kenv, *apply, stdin=yaml.safe_dump_all(objects))
    kubectl(lab, kenv, 'wait', '--for=condition=Established', '--timeout=20s', *['crd/' + n for n in ESO_CRDS])
    kubectl(lab, kenv, *apply, stdin=yaml.safe_dump(eso_controller()))
    kubectl(lab, kenv, 'wait', '--for=condition=Available', '--timeout=20s', '-n', 'external-secrets',
            'deployment/external-secrets')


def uninstall_eso(lab, kenv):
    """What install_eso applied, removed: a later Helm install of External Secrets finds nothing it does not own."""
    kubectl(lab, kenv, 'delete', '--ignore-not-found', '--timeout=60s', 'namespace', 'external-secrets')
    kubectl(lab, kenv, 'delete', '--ignore-not-found', '--timeout=60s', *['crd/' + n for n in ESO_CRDS])


def get_object(dyn, api_version, kind, namespace, name):
    """An object as a dict through the dynamic client, None when there is none."""
    try:
        return dyn.resources.get(api_version=api_version, kind=kind).get(name=name, namespace=namespace).to_dict()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def secret_values(core, namespace, name):
    """A Secret's data decoded, None when there is no such Secret."""
    try:
        secret = core.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
