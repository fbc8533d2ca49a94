#!/usr/bin/env python3
"""Print how fast the collection's Kubernetes layer applies objects, beside kubectl in the same run,
and how long Flux takes to reconcile the example GitOps repository in the lab.

- objects/s of the kube client's apply_all (server-side apply, dry-run change detection) for new
  objects and for unchanged ones (a re-run), and of `kubectl apply --server-side` for the same objects;
- wall time of playbooks/flux.yml from an empty cluster to every layer Ready, and of a second run;
- time of a full reconcile of the example repository (every GitRepository and Kustomization asked to
  reconcile at once, until all report the request handled and Ready).

Runs its own lab (.lab/bench-flux on 127.0.33.x, kube and git) so it never touches another.
Usage: bench/kube_apply.py [--count 300]
"""

import argparse
import datetime
import pathlib
import subprocess
import sys
import tempfile
import time

import yaml

from benchlab import REPO, client_env, lab_environ, lab_info, run

LAB = lab_environ('bench-flux', '127.0.33')
sys.path.insert(0, str(REPO / '.collections'))


def connection(kubeconfig):
    """The connection options KubeClient reads, as a module would pass them."""
    return dict(kubeconfig=kubeconfig, context=None, host=None, api_key=None, ca_cert=None,
                validate_certs=True, request_timeout=30)


def config_maps(namespace, count, prefix):
    return [{'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': '{0}-{1}'.format(prefix, i),
                                                                   'namespace': namespace},
             'data': {'index': str(i)}} for i in range(count)]


def timed(action):
    began = time.monotonic()
    action()
    return time.monotonic() - began


def full_reconcile(client, flux):
    """Ask every GitRepository and Kustomization to reconcile; seconds until all handled it and are Ready."""
    token = datetime.datetime.now(datetime.timezone.utc).isoformat()
    targets = [(flux.SOURCE_API, 'GitRepository'), (flux.KUSTOMIZE_API, 'Kustomization')]
    began = time.monotonic()
    for api_version, kind in targets:
        for obj in client.list(api_version, kind):
            client.server_side_apply({'apiVersion': api_version, 'kind': kind, 'metadata': {
                'name': obj['metadata']['name'], 'namespace': obj['metadata']['namespace'],
                'annotations': {flux.REQUESTED_AT: token}}}, field_manager='bench')
    while True:
        objects = [o for api_version, kind in targets for o in client.list(api_version, kind)]
        if all(flux.summary(o, requested=token)['ready'] for o in objects):
            return time.monotonic() - began, len(objects)
        if time.monotonic() - began > 300:
            sys.exit('full reconcile did not finish in 300s')
        time.sleep(0.05)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--count', type=int, default=300, help='objects per apply')
    args = parser.parse_args()
    from ansible_collections.ephemeral.castle.plugins.module_utils import flux, kube
    subprocess.run(['castle-lab', 'down'], env=LAB, capture_output=True, check=False)
    subprocess.run(['rm', '-rf', LAB['CASTLE_LAB_DIR']], check=True)
    run(['castle-lab', 'up', 'kube', 'git'], LAB)
    try:
        env = client_env(LAB, 'kube', 'git')
        client = kube.KubeClient(connection(env['KUBECONFIG']), field_manager='bench')
        namespace = 'bench-apply'
        client.apply_all([{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': namespace}}])
        ours = config_maps(namespace, args.count, 'castle')
        created = timed(lambda: client.apply_all(ours))
        unchanged = timed(lambda: client.apply_all(ours))
        with tempfile.TemporaryDirectory() as directory:
            manifest = pathlib.Path(directory) / 'objects.yaml'
            manifest.write_text(yaml.safe_dump_all(config_maps(namespace, args.count, 'kubectl')))
            argv = ['kubectl', 'apply', '--server-side', '--field-manager', 'bench', '-f', str(manifest)]
            peer_created = timed(lambda: run(argv, env))
            peer_unchanged = timed(lambda: run(argv, env))
        print('apply_all, {0} new objects:       {1:7.1f} objects/s'.format(args.count, args.count / created))
        print('apply_all, {0} unchanged objects: {1:7.1f} objects/s'.format(args.count, args.count / unchanged))
        print('kubectl apply --server-side, new:       {0:7.1f} objects/s (ratio ours/kubectl {1:.2f})'.format(
            args.count / peer_created, peer_created / created))
        print('kubectl apply --server-side, unchanged: {0:7.1f} objects/s (ratio ours/kubectl {1:.2f})'.format(
            args.count / peer_unchanged, peer_unchanged / unchanged))
        playbook = ['ansible-playbook', '-i', lab_info(LAB)['inventory_file'], 'playbooks/flux.yml']
        print('playbooks/flux.yml from an empty cluster to every layer Ready: {0:.1f}s'.format(
            timed(lambda: run(playbook, env))))
        print('playbooks/flux.yml again (no change):                         {0:.1f}s'.format(
            timed(lambda: run(playbook, env))))
        seconds, count = full_reconcile(client, flux)
        print('full Flux reconcile of the example repository ({0} sources and Kustomizations): {1:.2f}s'.format(
            count, seconds))
    finally:
        subprocess.run(['castle-lab', 'down'], env=LAB, capture_output=True, check=False)


if __name__ == '__main__':
    main()
