#!/usr/bin/env python3
"""Print what the lab's Kubernetes API emulator serves: requests per second for create, get and
list of ConfigMaps through the official client, and the time `kubectl apply --server-side` takes
for 200 objects. For the record; no target yet.

Runs its own lab (.lab/bench-kube on 127.0.32.x, kube only) so it never touches another.
Usage: bench/kube_api.py [--count 300]
"""

import argparse
import pathlib
import subprocess
import tempfile
import time

from benchlab import client_env, lab_environ, run

LAB = lab_environ('bench-kube', '127.0.32')


def rate(count, action):
    began = time.monotonic()
    for index in range(count):
        action(index)
    elapsed = time.monotonic() - began
    return count / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--count', type=int, default=300, help='requests per measured verb')
    args = parser.parse_args()
    from kubernetes import client, config  # the venv's client, as the collection uses it
    run(['castle-lab', 'up', 'kube'], LAB)
    try:
        env = client_env(LAB, 'kube')
        api = client.CoreV1Api(config.new_client_from_config(env['KUBECONFIG']))
        namespace = 'bench-{0}'.format(int(time.time()))
        api.create_namespace({'metadata': {'name': namespace}})

        def create(i):
            api.create_namespaced_config_map(namespace, {'metadata': {'name': 'cm-{0}'.format(i)},
                                                         'data': {'index': str(i)}})

        def get(i):
            api.read_namespaced_config_map('cm-{0}'.format(i % args.count), namespace)

        def listing(_i):
            api.list_namespaced_config_map(namespace, limit=50)

        print('create: {0:7.1f} req/s'.format(rate(args.count, create)))
        print('get:    {0:7.1f} req/s'.format(rate(args.count, get)))
        print('list:   {0:7.1f} req/s (50 of {1} ConfigMaps each)'.format(rate(args.count // 5, listing), args.count))
        with tempfile.TemporaryDirectory() as directory:
            manifest = pathlib.Path(directory) / 'objects.yaml'
            manifest.write_text(''.join(
                '---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied-{0}\n  namespace: {1}\n'
                'data:\n  index: "{0}"\n'.format(i, namespace) for i in range(200)))
            began = time.monotonic()
            run(['kubectl', 'apply', '--server-side', '--field-manager', 'bench', '-f', str(manifest)], env)
            print('kubectl apply --server-side of 200 ConfigMaps: {0:.2f}s'.format(time.monotonic() - began))
    finally:
        subprocess.run(['castle-lab', 'down'], env=LAB, capture_output=True, check=False)


if __name__ == '__main__':
    main()
