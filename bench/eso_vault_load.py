#!/usr/bin/env python3
"""Print the Vault requests per minute that each ExternalSecret costs, as the lab's External Secrets emulation
observes them: playbooks/vault.yml wires N services (two keys each) with a short refresh interval, the requests
are counted for a while, and the figure is also scaled to the role's default interval of one minute.

Runs its own lab (.lab/bench-eso on 127.0.35.x: kube and vault).
Usage: bench/eso_vault_load.py [--services 3] [--interval 5] [--seconds 60]
"""

import argparse
import json
import pathlib
import subprocess
import time
import urllib.request

import yaml

from castle_lab.kube import upstream_crds
from benchlab import client_env, lab_environ, lab_info, run

LAB = lab_environ('bench-eso', '127.0.35')
ESO_CRDS = ('secretstores.external-secrets.io', 'clustersecretstores.external-secrets.io',
            'externalsecrets.external-secrets.io')


def kubectl_apply(env, objects):
    path = pathlib.Path(LAB['CASTLE_LAB_DIR']) / 'bench-objects.yaml'
    path.write_text(yaml.safe_dump_all(objects))
    run(['kubectl', 'apply', '--server-side', '--field-manager=castle-bench', '-f', str(path)], env)


def install_eso(env):
    """External Secrets' CRDs and controller Deployment, as its chart installs them."""
    labels = {'app.kubernetes.io/name': 'external-secrets', 'app.kubernetes.io/component': 'controller'}
    kubectl_apply(env, [{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'external-secrets'}}]
                  + [upstream_crds.bundled_crd(name) for name in ESO_CRDS])
    run(['kubectl', 'wait', '--for=condition=Established', '--timeout=30s'] + ['crd/' + n for n in ESO_CRDS], env)
    kubectl_apply(env, [{
        'apiVersion': 'apps/v1', 'kind': 'Deployment',
        'metadata': {'name': 'external-secrets', 'namespace': 'external-secrets', 'labels': labels},
        'spec': {'selector': {'matchLabels': labels}, 'template': {'metadata': {'labels': labels}, 'spec': {
            'containers': [{'name': 'external-secrets', 'image': 'ghcr.io/external-secrets/external-secrets:v2.9.0'}]}}}}])
    run(['kubectl', 'wait', '--for=condition=Available', '--timeout=30s', '-n', 'external-secrets',
         'deployment/external-secrets'], env)


def control(env, path, method='GET'):
    request = urllib.request.Request(env['CASTLE_LAB_KUBE_CONTROL'] + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read() or b'{}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--services', type=int, default=3)
    parser.add_argument('--interval', type=int, default=5, help='refreshInterval of each ExternalSecret, seconds')
    parser.add_argument('--seconds', type=int, default=60, help='how long to count')
    args = parser.parse_args()
    subprocess.run(['castle-lab', 'down'], env=LAB, capture_output=True, check=False)
    subprocess.run(['rm', '-rf', LAB['CASTLE_LAB_DIR']], check=True)
    run(['castle-lab', 'up', 'kube', 'vault'], LAB)
    try:
        env = client_env(LAB, 'kube', 'vault')
        install_eso(env)
        services = [{'name': 'bench-{0}'.format(i), 'namespace': 'bench', 'service_account': 'bench',
                     'refresh_interval': '{0}s'.format(args.interval),
                     'data': {'key_a': 'value-a-{0}'.format(i), 'key_b': 'value-b-{0}'.format(i)}}
                    for i in range(args.services)]
        kubectl_apply(env, [{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'bench'}},
                            {'apiVersion': 'v1', 'kind': 'ServiceAccount',
                             'metadata': {'name': 'bench', 'namespace': 'bench'}}])
        inventory = lab_info(LAB)['inventory_file']
        run(['ansible-playbook', '-i', inventory, 'playbooks/vault.yml', '-e', json.dumps({
            'castle_cluster_vars': {'cluster_name': 'bench'}, 'castle_vault_services': services})], env)
        control(env, '/eso/vault-requests/reset', 'POST')
        time.sleep(args.seconds)  # the measurement window itself
        observed = control(env, '/eso/vault-requests')['externalSecrets']
        print('ExternalSecrets: {0}, refreshInterval {1}s, counted for {2}s'.format(
            len(observed), args.interval, args.seconds))
        for name, figures in sorted(observed.items()):
            per_minute = figures['requests'] * 60.0 / args.seconds
            print('{0:20s} {1:4d} requests  {2:6.1f}/min  -> {3:5.1f}/min at refreshInterval 1m'.format(
                name, figures['requests'], per_minute, per_minute * args.interval / 60.0))
        total = sum(f['requests'] for f in observed.values()) * 60.0 / args.seconds
        print('all ExternalSecrets: {0:.1f} requests/min ({1:.1f}/min at 1m)'.format(
            total, total * args.interval / 60.0))
    finally:
        subprocess.run(['castle-lab', 'down'], env=LAB, capture_output=True, check=False)


if __name__ == '__main__':
    main()
