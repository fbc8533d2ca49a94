#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: flux_bootstrap
short_description: Install Flux and hand a cluster to a Git repository
version_added: 0.1.0
description:
  - Installs the Flux components from an install manifest (a file or a URL) pinned to a version, with
    server-side apply, CRDs first.
  - Keeps the C(cluster-vars) ConfigMap (and an optional C(cluster-secrets) Secret) that every
    Kustomization of the cluster substitutes variables from. The ConfigMap carries the
    C(reconcile.fluxcd.io/watch=Enabled) label, so Flux re-renders what uses it when a value changes.
  - With O(git_url), creates the Git credentials Secret, the C(GitRepository) and the root C(Kustomization)
    with C(postBuild.substituteFrom) the ConfigMap and the Secret, then waits until both are Ready. A
    Kustomization that failed to fetch its artifact (C(ArtifactFailed), as when source-controller restarted
    and stores it again after an etcd restore) is asked to reconcile again (C(reconcile.fluxcd.io/requestedAt))
    rather than left until its retry interval.
  - Unlike C(flux bootstrap), nothing is committed to the repository; the cluster objects are kept here.
  - A re-run changes nothing when nothing changed. Credentials are reused on a re-run; a new SSH deploy key
    is made only when none exists or O(rotate_credentials=true).
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.kube
  - ephemeral.castle.kube.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  namespace:
    description: Namespace Flux runs in and its sync objects live in.
    type: str
    default: flux-system
  manifest_path:
    description:
      - Flux install manifest on the controller (the C(install.yaml) of a Flux release).
      - Mutually exclusive with O(manifest_url). Without either, the components are left as they are.
    type: path
  manifest_url:
    description: URL of the Flux install manifest, read over HTTPS with O(manifest_ca_path) or the system roots.
    type: str
  manifest_ca_path:
    description: CA file for O(manifest_url)'s certificate.
    type: path
  version:
    description:
      - Flux version the manifest must be, for example C(v2.9.1), read from its namespace's
        C(app.kubernetes.io/version) label. Required with a manifest, so the version is pinned.
    type: str
  git_url:
    description:
      - URL of the GitOps repository (C(https://) or C(ssh://)). Without it, only the components and
        the cluster variables are kept.
    type: str
  git_branch:
    description: Branch Flux follows.
    type: str
    default: main
  git_path:
    description: Path of the cluster's directory in the repository, for example C(./clusters/lab).
    type: str
    default: ./
  git_interval:
    description: How often Flux fetches the repository.
    type: str
    default: 1m
  sync_interval:
    description: How often Flux re-applies the root Kustomization.
    type: str
    default: 10m
  sync_name:
    description: Name of the GitRepository, the root Kustomization and the credentials Secret.
    type: str
    default: flux-system
  git_auth:
    description:
      - How Flux authenticates to the repository. V(token) keeps O(git_username) and O(git_token) in the
        Secret; V(ssh) keeps a deploy key (O(git_ssh_private_key), or one made here) and O(git_known_hosts).
    type: str
    choices: [none, token, ssh]
    default: none
  git_username:
    description: User name sent with the token.
    type: str
    default: git
  git_token:
    description:
      - Token (or password) for V(token) auth. May be left out on a re-run; the stored one is kept.
    type: str
  git_ssh_private_key:
    description:
      - Private key (OpenSSH or PEM format) for V(ssh) auth. Left out, the stored key is kept, or an
        Ed25519 key is made when there is none; its public half is returned as RV(deploy_key).
    type: str
  git_known_hosts:
    description: C(known_hosts) lines for the SSH server. Required with V(ssh) auth.
    type: str
  git_ca_path:
    description: CA file of the Git server's HTTPS certificate, stored in the Secret as C(ca.crt).
    type: path
  rotate_credentials:
    description: Replace the stored deploy key with a new one (V(ssh) auth without O(git_ssh_private_key)).
    type: bool
    default: false
  cluster_vars:
    description:
      - Variables for C(${name}) substitution, kept in the O(cluster_vars_name) ConfigMap. Values
        that are not strings are written as Flux reads them (booleans lower-case, lists and dicts as JSON).
    type: dict
  cluster_vars_name:
    description: Name of the variables ConfigMap.
    type: str
    default: cluster-vars
  cluster_secrets:
    description: Secret variables, kept in the O(cluster_secrets_name) Secret.
    type: dict
  cluster_secrets_name:
    description: Name of the secret variables Secret; the root Kustomization treats it as optional.
    type: str
    default: cluster-secrets
  wait:
    description: Wait for the controllers to be Available and for the GitRepository and root Kustomization to be Ready.
    type: bool
    default: true
  wait_timeout:
    description: Seconds the whole run (apply and waits) may take.
    type: int
    default: 300
"""

EXAMPLES = r"""
- name: Install Flux v2.9.1 and hand the cluster to Git
  ephemeral.castle.flux_bootstrap:
    kubeconfig: ~/.kube/lab
    manifest_url: https://github.com/fluxcd/flux2/releases/download/v2.9.1/install.yaml
    version: v2.9.1
    git_url: https://git.example.internal/ops/gitops.git
    git_path: ./clusters/lab
    git_auth: token
    git_token: "{{ vault_gitops_token }}"
    cluster_vars:
      cluster_name: lab
      cluster_domain: lab.example.internal

- name: Follow a repository over SSH with a deploy key made here
  ephemeral.castle.flux_bootstrap:
    git_url: ssh://git@git.example.internal/ops/gitops.git
    git_path: ./clusters/prod
    git_auth: ssh
    git_known_hosts: "{{ lookup('ansible.builtin.file', 'known_hosts') }}"
  register: flux

- name: Show the key to add as a read-only deploy key
  ansible.builtin.debug:
    msg: "{{ flux.deploy_key }}"
"""

RETURN = r"""
objects:
  description: Every object the run kept, with what happened to it.
  returned: always
  type: list
  elements: dict
  sample:
    - {"ref": "GitRepository/flux-system/flux-system", "action": "created"}
    - {"ref": "ConfigMap/flux-system/cluster-vars", "action": "unchanged"}
version:
  description: Flux version of the installed manifest, when one was given.
  returned: when a manifest was given
  type: str
  sample: v2.9.1
deploy_key:
  description: Public half of the SSH deploy key, to register with the Git server.
  returned: with O(git_auth=ssh)
  type: str
  sample: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... flux-system
revision:
  description: Revision the GitRepository fetched, once it is Ready.
  returned: with O(git_url) and O(wait)
  type: str
  sample: main@sha1:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c
"""

import datetime

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import open_url

from ansible_collections.ephemeral.castle.plugins.module_utils import flux
from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module, wait_options
from ansible_collections.ephemeral.castle.plugins.module_utils.kube import (
    LAYER, KubeClient, condition, diff_of, is_available, is_ready)


def read_manifest(params):
    if params['manifest_path']:
        try:
            with open(params['manifest_path']) as handle:
                return handle.read(), params['manifest_path']
        except (IOError, OSError) as exc:
            raise flux.FluxError('manifest_path {0}: {1}'.format(params['manifest_path'], exc))
    try:
        response = open_url(params['manifest_url'], validate_certs=params['validate_certs'],
                            ca_path=params['manifest_ca_path'], timeout=params['request_timeout'])
        return to_text(response.read()), params['manifest_url']
    except Exception as exc:  # open_url raises many kinds; all mean the same here
        raise flux.FluxError('manifest_url {0} could not be read: {1}'.format(params['manifest_url'], exc))


def ssh_key_pair():
    """A new Ed25519 deploy key: (private key in OpenSSH format, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public


def public_key_of(private):
    from cryptography.hazmat.primitives import serialization
    try:
        key = serialization.load_ssh_private_key(private.encode(), None)
    except ValueError:
        key = serialization.load_pem_private_key(private.encode(), None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def credentials(params, stored):
    """The Secret data for the chosen auth, reusing what is stored where the input leaves it open."""
    data = {}
    if params['git_auth'] == 'token':
        token = params['git_token'] or stored.get('password')
        if not token:
            raise flux.FluxError('git_token is required with git_auth=token: the cluster holds no token yet')
        data.update(username=params['git_username'], password=token)
    elif params['git_auth'] == 'ssh':
        if not params['git_known_hosts']:
            raise flux.FluxError('git_known_hosts is required with git_auth=ssh')
        private = params['git_ssh_private_key']
        if not private and stored.get('identity') and not params['rotate_credentials']:
            private = stored['identity']
        try:
            public = public_key_of(private) if private else None
        except (ValueError, TypeError) as exc:
            raise flux.FluxError('git_ssh_private_key is not a private key without passphrase: {0}'.format(exc))
        if not private:
            private, public = ssh_key_pair()
        data.update({'identity': private, 'identity.pub': public, 'known_hosts': params['git_known_hosts']})
    if params['git_ca_path']:
        try:
            with open(params['git_ca_path']) as handle:
                data['ca.crt'] = handle.read()
        except (IOError, OSError) as exc:
            raise flux.FluxError('git_ca_path {0}: {1}'.format(params['git_ca_path'], exc))
    return data


def wanted_objects(params, client, namespace):
    """Everything the run keeps, besides the install manifest."""
    objects = []
    if params['cluster_vars'] is not None:
        objects.append(flux.config_map(params['cluster_vars_name'], namespace, params['cluster_vars']))
    if params['cluster_secrets'] is not None:
        objects.append(flux.secret(params['cluster_secrets_name'], namespace, params['cluster_secrets'],
                                   {flux.WATCH_LABEL: 'Enabled'}))
    deploy_key = None
    if params['git_url']:
        name = params['sync_name']
        secret_name = None
        if params['git_auth'] != 'none' or params['git_ca_path']:
            stored = flux.decoded(client.get('v1', 'Secret', name, namespace))
            data = credentials(params, stored)
            deploy_key = data.get('identity.pub')
            objects.append(flux.secret(name, namespace, data))
            secret_name = name
        objects.append(flux.git_repository(name, namespace, params['git_url'], params['git_branch'],
                                           params['git_interval'], secret_name))
        objects.append(flux.root_kustomization(name, namespace, params['git_path'], params['sync_interval'],
                                               params['cluster_vars_name'], params['cluster_secrets_name']))
    return objects, deploy_key


def fetch_again(client, obj):
    """A Kustomization that failed to fetch its source's artifact (source-controller restarted, as after an etcd
    restore, and stores it again) is asked to reconcile again rather than left until its retry interval; once per
    handled request, as `flux reconcile kustomization --with-source` would be run again."""
    cond = condition(obj) or {}
    if obj['kind'] != 'Kustomization' or cond.get('reason') != 'ArtifactFailed':
        return
    requested = (obj['metadata'].get('annotations') or {}).get(flux.REQUESTED_AT)
    if requested and requested != (obj.get('status') or {}).get('lastHandledReconcileAt'):
        return  # the last request is not handled yet
    flux.request_reconcile(client, [obj], datetime.datetime.now(datetime.timezone.utc).isoformat())


def wait_for(client, params, components, deadline):
    namespace = params['namespace']
    refs = [('apps/v1', 'Deployment', name, ns) for ns, name in components]
    if refs:
        client.wait_ready(refs, deadline, ready=is_available)
    if not params['git_url']:
        return None
    name = params['sync_name']

    def ready(obj):
        if is_ready(obj):
            return True
        fetch_again(client, obj)
        return False

    client.wait_ready([(flux.SOURCE_API, 'GitRepository', name, namespace),
                       (flux.KUSTOMIZE_API, 'Kustomization', name, namespace)], deadline, ready=ready)
    source = client.get(flux.SOURCE_API, 'GitRepository', name, namespace)
    return ((source.get('status') or {}).get('artifact') or {}).get('revision')


def bootstrap(module, result):
    """Install, keep the sync objects, wait; fills `result` as it goes."""
    params = module.params
    if params['git_url'] and not params['git_url'].startswith(('https://', 'http://', 'ssh://')):
        raise flux.FluxError('git_url {0!r} must start with https://, http:// or ssh:// (what Flux fetches '
                             'from)'.format(params['git_url']))
    if params['git_auth'] == 'ssh' and params['git_url'] and not params['git_url'].startswith('ssh://'):
        raise flux.FluxError('git_auth=ssh needs an ssh:// git_url, not {0!r}'.format(params['git_url']))
    deadline = Deadline(params['wait_timeout'])
    namespace = params['namespace']
    components = []
    objects = []
    if params['manifest_path'] or params['manifest_url']:
        text, source = read_manifest(params)
        objects, result['version'] = flux.load_manifest(text, source, params['version'], namespace)
        components = flux.controller_deployments(objects)
    client = KubeClient(params)
    sync, deploy_key = wanted_objects(params, client, namespace)
    changes = client.apply_all(objects + sync, check_mode=module.check_mode, deadline=deadline)
    if deploy_key:
        result['deploy_key'] = deploy_key
    result['objects'] = [dict(ref=c['ref'], action=c['action']) for c in changes]
    result['changed'] = any(c['action'] != 'unchanged' for c in changes)
    if module._diff:
        result['diff'] = diff_of(changes)
    if params['wait'] and not module.check_mode:
        revision = wait_for(client, params, components, deadline)
        if revision:
            result['revision'] = revision
    return result


def main():
    spec = dict(
        namespace=option('str', 'flux-system'),
        manifest_path=option('path'), manifest_url=option('str'), manifest_ca_path=option('path'),
        version=option('str'),
        git_url=option('str'), git_branch=option('str', 'main'), git_path=option('str', './'),
        git_interval=option('str', '1m'), sync_interval=option('str', '10m'), sync_name=option('str', 'flux-system'),
        git_auth=option('str', 'none', choices=['none', 'token', 'ssh']),
        git_username=option('str', 'git'), git_token=option('str', no_log=True),
        git_ssh_private_key=option('str', no_log=True), git_known_hosts=option('str'),
        git_ca_path=option('path'), rotate_credentials=option('bool', False),
        cluster_vars=option('dict'), cluster_vars_name=option('str', 'cluster-vars'),
        cluster_secrets=option('dict', no_log=True), cluster_secrets_name=option('str', 'cluster-secrets'),
    )
    spec.update(wait_options(300))
    module = LAYER.module(spec, mutually_exclusive=[('manifest_path', 'manifest_url')],
                          required_by={'manifest_path': 'version', 'manifest_url': 'version'})
    result = dict(changed=False)
    run_module(module, lambda: bootstrap(module, result), partial=result)


if __name__ == '__main__':
    main()
