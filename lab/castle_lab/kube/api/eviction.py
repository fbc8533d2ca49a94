"""The pods/eviction subresource: a pod is deleted unless a PodDisruptionBudget that selects it allows no more
disruptions, which answers 429 as kube-apiserver does."""

import math

from . import errors
from .errors import ApiError
from .selectors import selector_matches

PODS = ('', 'pods')
BUDGETS = ('policy', 'poddisruptionbudgets')
SUCCESS = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success', 'code': 201}


def is_ready(pod):
    return any(c.get('type') == 'Ready' and c.get('status') == 'True'
               for c in (pod.get('status') or {}).get('conditions') or [])


def scaled(value, total, round_up):
    """An IntOrString of a budget: an int, or a percentage of `total`."""
    if isinstance(value, str) and value.endswith('%'):
        share = int(value[:-1]) * total / 100.0
        return int(math.ceil(share) if round_up else math.floor(share))
    return int(value)


def budget_status(budget, pods):
    """(desiredHealthy, currentHealthy, disruptionsAllowed) of a budget over the pods it selects."""
    spec = budget.get('spec') or {}
    selected = [p for p in pods if selector_matches(spec.get('selector') or {}, p['metadata'].get('labels'))]
    expected = len(selected)
    healthy = sum(1 for p in selected if is_ready(p))
    if spec.get('maxUnavailable') is not None:
        desired = max(0, expected - scaled(spec['maxUnavailable'], expected, True))
    else:
        desired = scaled(spec.get('minAvailable', 1), expected, True)
    return desired, healthy, max(0, healthy - desired)


def evict(api, namespace, name, body, dry_run=False):
    """Evicts pod `name`; returns the Status a successful eviction answers."""
    pod_type = api.registry.get('', 'v1', 'pods')
    pod = api.get(pod_type, namespace, name)
    if body.get('kind') not in (None, 'Eviction'):
        raise errors.bad_request('the body of the request kind {0} does not match the resource Eviction'.format(
            body['kind']))
    phase = (pod.get('status') or {}).get('phase')
    if phase not in ('Succeeded', 'Failed') and (pod.get('spec') or {}).get('nodeName'):
        pods = api.store.list(PODS, namespace)
        labels = pod['metadata'].get('labels')
        budgets = [b for b in api.store.list(BUDGETS, namespace)
                   if labels and selector_matches((b.get('spec') or {}).get('selector') or {}, labels)]
        if len(budgets) > 1:
            raise ApiError(500, 'InternalError', 'This pod has more than one PodDisruptionBudget, which the eviction '
                                                 'subresource does not support.', {})
        for budget in budgets:
            desired, healthy, allowed = budget_status(budget, pods)
            # A pod that is not ready may go while the budget is met (unhealthyPodEvictionPolicy IfHealthyBudget),
            # or always (AlwaysAllow).
            if is_ready(pod):
                refused = not allowed
            else:
                refused = healthy < desired and (budget.get('spec') or {}).get(
                    'unhealthyPodEvictionPolicy') != 'AlwaysAllow'
            if refused:
                raise ApiError(429, 'TooManyRequests',
                               "Cannot evict pod as it would violate the pod's disruption budget.",
                               {'causes': [{'reason': 'DisruptionBudget', 'message':
                                            'The disruption budget {0} needs {1} healthy pods and has {2} '
                                            'currently'.format(budget['metadata']['name'], desired, healthy)}],
                                'retryAfterSeconds': 10})
    options = body.get('deleteOptions') or {}
    api.delete(pod_type, namespace, name, dry_run=dry_run or 'All' in (options.get('dryRun') or []),
               preconditions=options.get('preconditions'))
    return dict(SUCCESS)
