#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: flux_wait
short_description: Wait for Flux Kustomizations and HelmReleases to be Ready, in dependency order
version_added: 0.1.0
description:
  - Waits until every selected Kustomization and HelmRelease is Ready at its current generation, and
    every Kustomization has applied the revision its source holds now.
  - Reports each object's status in C(dependsOn) order. On timeout it fails naming the first object
    that is not Ready (the root cause, as what depends on it waits for it) with its reason and message.
  - An object Flux reports C(Stalled) (a HelmRelease whose install or upgrade failed with no retries left)
    fails the wait at once, without waiting for the timeout.
  - For a HelmRelease that is not Ready the failure also names each Deployment, StatefulSet, DaemonSet or
    Job it installed that is not ready, and why the first of its pods is not (for example
    C(ErrImagePull) or C(CrashLoopBackOff)).
  - With O(reconcile=true), first asks Flux to reconcile the objects and their Git sources now (as
    C(flux reconcile --with-source) does, and for HelmReleases C(--reset), so a release out of retries
    tries again) and waits until Flux has handled that request.
  - Suspended objects are reported but not waited for.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.kube
  - ephemeral.castle.kube.ACTION_GROUP
attributes:
  check_mode:
    description: Runs in check mode, reporting whether it would change anything while changing nothing.
    support: full
    details: In check mode the reconcile request is not made; the current status is reported without waiting.
  diff_mode:
    description: Returns no diff.
    support: none
options:
  namespace:
    description: Only objects in this namespace. All namespaces when left out.
    type: str
  kinds:
    description: Kinds to wait for.
    type: list
    elements: str
    choices: [Kustomization, HelmRelease]
    default: [Kustomization, HelmRelease]
  names:
    description: Only objects with these names (and what they depend on is still only reported if selected).
    type: list
    elements: str
  wait_timeout:
    description:
      - Seconds to wait for every object, in all.
      - The older name O(timeout) is an alias.
    type: int
    default: 300
    aliases: [timeout]
  reconcile:
    description: Ask Flux to reconcile the objects and their Git sources before waiting; reports a change.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Wait for the GitOps layers and the charts to settle
  ephemeral.castle.flux_wait:
    namespace: flux-system
    wait_timeout: 600

- name: Apply the newest commit now and wait for it
  ephemeral.castle.flux_wait:
    namespace: flux-system
    kinds: [Kustomization]
    reconcile: true
"""

RETURN = r"""
objects:
  description: The selected objects in dependency order, with their status.
  returned: always, also on timeout
  type: list
  elements: dict
  sample:
    - {"kind": "Kustomization", "namespace": "flux-system", "name": "operators", "ready": true,
       "suspended": false, "stalled": false, "reason": "ReconciliationSucceeded",
       "message": "Applied revision: main@sha1:0f1e2d",
       "revision": "main@sha1:0f1e2d", "depends_on": []}
requested_at:
  description: The reconcile request token Flux had to handle.
  returned: with O(reconcile=true) outside check mode
  type: str
  sample: "2026-11-23T18:00:00.000000+00:00"
"""

import datetime

from ansible_collections.ephemeral.castle.plugins.module_utils import flux
from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline, wait_until
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.kube import LAYER, KubeClient, KubeError, timed_out


def selected(client, params):
    found = []
    for kind in params['kinds']:
        try:
            found.extend(client.list(flux.KINDS[kind], kind, params['namespace']))
        except KubeError as exc:
            raise KubeError('cannot list {0}s; is Flux installed? {1}'.format(kind, exc))
    if params['names']:
        found = [o for o in found if o['metadata']['name'] in params['names']]
    return flux.dependency_order(found)


def statuses(client, objects, token):
    revisions = {}
    found = []
    for obj in objects:
        source = flux.source_of(obj)
        if source and source not in revisions:
            repo = client.get(flux.SOURCE_API, 'GitRepository', source[1], source[0]) or {}
            revisions[source] = ((repo.get('status') or {}).get('artifact') or {}).get('revision')
        found.append(flux.summary(obj, revisions.get(source), token))
    return found


def workload_problems(client, found):
    """For a HelmRelease that is not ready: each workload it installed that is not ready either, with the first of
    its pods that is not and why (e.g. ErrImagePull); [] for other kinds."""
    if found['kind'] != 'HelmRelease':
        return []
    problems = []
    for api_version, kind in flux.WORKLOAD_KINDS:
        try:
            workloads = client.list(api_version, kind, label_selector=flux.origin_selector(found))
        except KubeError:
            continue  # a kind this client may not list says nothing about the release
        for workload in workloads:
            problem = flux.workload_problem(workload)
            if not problem:
                continue
            meta = workload['metadata']
            text = '{0} {1}/{2}: {3}'.format(kind, meta['namespace'], meta['name'], problem)
            selector = flux.pod_selector(workload)
            for pod in client.list('v1', 'Pod', meta['namespace'], label_selector=selector) if selector else []:
                why = flux.pod_problem(pod)
                if why:
                    text += '; pod {0}/{1}: {2}'.format(meta['namespace'], pod['metadata']['name'], why)
                    break
            problems.append(text)
    return problems


def wait_for_flux(module, result):
    """Fill `result` with the objects' status until none is left to wait for; KubeError on timeout."""
    params = module.params
    if params['wait_timeout'] < 0:
        raise KubeError('wait_timeout must be 0 or more seconds, not {0}'.format(params['wait_timeout']))
    deadline = Deadline(params['wait_timeout'])
    client = KubeClient(params)
    token = None
    if params['reconcile'] and not module.check_mode:
        token = datetime.datetime.now(datetime.timezone.utc).isoformat()
        flux.request_reconcile(client, selected(client, params), token)
        result.update(changed=True, requested_at=token)

    def waiting():
        return [o for o in result['objects'] if not o['ready'] and not o['suspended']]

    def settled():
        # In check mode the current status is reported without waiting; a stalled object will not get ready.
        result['objects'] = statuses(client, selected(client, params), token)
        return not waiting() or module.check_mode or any(o['stalled'] for o in waiting())

    def failure():
        first = next((o for o in waiting() if o['stalled']), waiting()[0])
        return flux.describe(dict(first, workloads=workload_problems(client, first)))

    wait_until(settled, deadline, lambda: timed_out(deadline, failure()), interval=0.5, max_interval=0.5)
    if not module.check_mode and any(o['stalled'] for o in waiting()):
        raise KubeError(failure())
    for obj in result['objects']:
        if obj['suspended']:
            module.warn('{kind} {namespace}/{name} is suspended; not waited for'.format(**obj))
    return result


def main():
    module = LAYER.module(dict(
        namespace=option('str'),
        kinds=option('list', ['Kustomization', 'HelmRelease'], elements='str', choices=['Kustomization', 'HelmRelease']),
        names=option('list', elements='str'), wait_timeout=option('int', 300, aliases=['timeout']),
        reconcile=option('bool', False)))
    result = dict(changed=False, objects=[])
    run_module(module, lambda: wait_for_flux(module, result), partial=result)


if __name__ == '__main__':
    main()
