"""Helpers of the Kubernetes emulator tests: polls with a deadline, and kubectl with the lab's kubeconfig."""

import time
import uuid

import pytest
from kubernetes.client.rest import ApiException


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


def scratch_namespace(core, prefix):
    """Yields a new namespace's name, then deletes the namespace (unless the test did)."""
    name = '{0}-{1}'.format(prefix, uuid.uuid4().hex[:8])
    core.create_namespace({'metadata': {'name': name}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        assert exc.status == 404
