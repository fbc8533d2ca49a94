#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_kubernetes_auth
short_description: Configure a Kubernetes auth mount of Vault or OpenBao and its roles
version_added: 0.1.0
description:
  - Keeps the configuration of a Kubernetes auth mount (C(auth/<mount>/config)) when O(kubernetes_host) is
    given, and the roles listed in O(roles) (C(auth/<mount>/role/<name>)). The mount itself is enabled with
    M(ephemeral.castle.vault_auth_method).
  - Everything is read first and compared; the writes are planned, the seal status checked, then the
    writes made, so a sealed server fails the task before anything is written.
  - Configuration. Vault replaces the whole configuration on every write, so settings left out keep their
    current values (they are sent again). Vault never returns the reviewer JWT, only whether one is set,
    so O(update_reviewer_jwt) decides how O(token_reviewer_jwt) counts; see there.
  - Roles. Only the fields given are compared and written; lists are compared as sets and TTLs in seconds.
    A new role needs O(roles[].bound_service_account_names) and O(roles[].bound_service_account_namespaces).
    Roles not listed are left alone unless O(exclusive=true).
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.vault
  - ephemeral.castle.vault.RETRIES
  - ephemeral.castle.vault.AUTH
  - ephemeral.castle.vault.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  mount:
    description:
      - Path of the Kubernetes auth mount, without C(auth/).
    type: str
    default: kubernetes
  kubernetes_host:
    description:
      - URL of the cluster's API server, for example C(https://10.0.40.10:6443). When set, the mount's
        configuration is kept; when not, it is neither read nor written.
    type: str
  kubernetes_ca_cert:
    description:
      - PEM CA certificate of the API server (compared without surrounding whitespace).
    type: str
  token_reviewer_jwt:
    description:
      - Token of a ServiceAccount allowed to create TokenReviews (C(system:auth-delegator)), which Vault
        uses to check the tokens of logins.
    type: str
  update_reviewer_jwt:
    description:
      - V(on_create) writes O(token_reviewer_jwt) when the mount has no reviewer JWT yet, and along with
        any other change of the configuration; a JWT that differs only from the one Vault keeps is not seen
        (Vault never returns it), so the task stays unchanged. Rotate it with V(always).
      - V(always) writes the configuration with O(token_reviewer_jwt) on every run, which then always
        reports a change.
      - A configuration write without O(token_reviewer_jwt) clears the reviewer JWT Vault keeps (the task
        warns when it does).
    type: str
    choices: [on_create, always]
    default: on_create
  issuer:
    description:
      - Issuer expected in ServiceAccount tokens (with O(disable_iss_validation=false)).
    type: str
  disable_iss_validation:
    description:
      - Do not check the issuer of ServiceAccount tokens.
    type: bool
  disable_local_ca_jwt:
    description:
      - Do not fall back to the CA certificate and token of the pod Vault runs in.
    type: bool
  pem_keys:
    description:
      - PEM public keys to verify ServiceAccount tokens with locally, instead of TokenReviews.
    type: list
    elements: str
  roles:
    description:
      - Roles of the mount.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the role, in lower case.
        type: str
        required: true
      state:
        description: Whether the role exists.
        type: str
        choices: [present, absent]
        default: present
      bound_service_account_names:
        description: ServiceAccount names allowed to log in as the role (V(*) for any).
        type: list
        elements: str
      bound_service_account_namespaces:
        description: Namespaces of those ServiceAccounts (V(*) for any).
        type: list
        elements: str
      token_policies:
        description: Policies of the tokens the role issues.
        type: list
        elements: str
      token_ttl:
        description: TTL of those tokens, in seconds or as a duration (V(1h)).
        type: str
      token_max_ttl:
        description: Maximum TTL of those tokens, in seconds or as a duration.
        type: str
      audience:
        description: Audience the ServiceAccount tokens must carry.
        type: str
      alias_name_source:
        description: What names the identity alias of a login.
        type: str
        choices: [serviceaccount_uid, serviceaccount_name]
  exclusive:
    description:
      - Delete the roles of the mount that O(roles) does not list.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Kubernetes auth of the lab cluster
  ephemeral.castle.vault_kubernetes_auth:
    mount: kubernetes-lab
    kubernetes_host: https://10.0.40.10:6443
    kubernetes_ca_cert: "{{ lab_cluster_ca }}"
    token_reviewer_jwt: "{{ vault_auth_token }}"
    disable_local_ca_jwt: true

- name: The role of one service
  ephemeral.castle.vault_kubernetes_auth:
    mount: kubernetes-lab
    roles:
      - name: kaze-runtime
        bound_service_account_names: [kaze-runtime]
        bound_service_account_namespaces: [kaze]
        token_policies: [kaze-runtime-read]
        token_ttl: 1h
"""

RETURN = r"""
config:
  description:
    - The configuration after the task (as it would be, in check mode); C(token_reviewer_jwt_set) says
      whether Vault keeps a reviewer JWT. Returned when O(kubernetes_host) is set.
  returned: when O(kubernetes_host) is set
  type: dict
  sample: {kubernetes_host: "https://10.0.40.10:6443", issuer: "", token_reviewer_jwt_set: true}
config_changed:
  description: Whether the configuration was (or would be) written.
  returned: always
  type: bool
  sample: false
roles_written:
  description: Roles created or updated (or that would be).
  returned: always
  type: list
  elements: str
  sample: [kaze-runtime]
roles_deleted:
  description: Roles deleted (or that would be).
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module

CONFIG_FIELDS = ('kubernetes_host', 'kubernetes_ca_cert', 'issuer', 'disable_iss_validation', 'disable_local_ca_jwt',
                 'pem_keys')
ROLE_LISTS = ('bound_service_account_names', 'bound_service_account_namespaces', 'token_policies')
ROLE_TTLS = ('token_ttl', 'token_max_ttl')
ROLE_FIELDS = ROLE_LISTS + ROLE_TTLS + ('audience', 'alias_name_source')


def config_value(name, value):
    if name == 'kubernetes_ca_cert':
        return (value or '').strip()
    if name == 'pem_keys':
        return [key.strip() for key in value or []]
    if name == 'issuer':
        return value or ''
    return value


def plan_config(params, current, plan, warn):
    """The configuration after the task; appends its write to plan when it changes."""
    existing = current is not None
    current = current or {}
    desired = {}
    for name in CONFIG_FIELDS:
        if params[name] is not None:
            desired[name] = config_value(name, params[name])
        elif name in current:
            desired[name] = config_value(name, current[name])
    differs = not existing or any(config_value(name, current.get(name)) != value for name, value in desired.items())
    jwt = params['token_reviewer_jwt']
    jwt_set = bool(current.get('token_reviewer_jwt_set'))
    send_jwt = jwt is not None and (differs or params['update_reviewer_jwt'] == 'always' or not jwt_set)
    if differs or send_jwt:
        body = dict(desired)
        if jwt is not None:
            body['token_reviewer_jwt'] = jwt
        elif jwt_set:
            warn('auth/{0}/config is rewritten without token_reviewer_jwt: Vault drops the reviewer JWT it '
                 'keeps'.format(params['mount']))
        plan.append(('write', 'auth/{0}/config'.format(params['mount']), body))
        jwt_set = jwt is not None
    after = {**desired, 'token_reviewer_jwt_set': jwt_set}
    before = {}
    if existing:
        before = {name: config_value(name, current.get(name)) for name in desired}
        before['token_reviewer_jwt_set'] = bool(current.get('token_reviewer_jwt_set'))
    if send_jwt:
        after['token_reviewer_jwt'] = '<written>'
    return before, after


def role_value(name, value, where):
    if name in ROLE_LISTS:
        return sorted(set(value or []))
    if name in ROLE_TTLS:
        return vault.duration_seconds(value if value is not None else 0, '{0}.{1}'.format(where, name))
    return value or ''


def plan_roles(server, params, plan):
    mount = params['mount']
    before, after, written, deleted, names = {}, {}, [], [], set()
    for index, role in enumerate(params['roles']):
        name = role['name']
        where = 'roles[{0}] ({1})'.format(index, name)
        if not name or name != name.lower() or '/' in name:
            raise vault.VaultError('roles[{0}].name {1!r}: a role name is lower case, without "/"'.format(index, name))
        if name in names:
            raise vault.VaultError('{0}: the role is listed twice'.format(where))
        names.add(name)
        path = 'auth/{0}/role/{1}'.format(mount, name)
        found = ((server.api_read(path) or {}).get('data'))
        given = {field: role_value(field, role[field], where) for field in ROLE_FIELDS if role[field] is not None}
        current = {field: role_value(field, found.get(field), where) for field in given} if found else None
        if current is not None:
            before[name] = current
        if role['state'] == 'absent':
            if found:
                plan.append(('delete', path, None))
                deleted.append(name)
            continue
        if found is None:
            missing = [field for field in ROLE_LISTS[:2] if not given.get(field)]
            if missing:
                raise vault.VaultError('{0}: a new role needs {1}'.format(where, ' and '.join(missing)))
        after[name] = given
        if current != given:
            body = {field: role[field] for field in given}
            for field in ROLE_TTLS:
                if field in given:
                    body[field] = given[field]
            plan.append(('write', path, body))
            written.append(name)
    if params['exclusive']:
        for name in server.api_list('auth/{0}/role'.format(mount)):
            if name not in names:
                before[name] = '<present>'
                plan.append(('delete', 'auth/{0}/role/{1}'.format(mount, name), None))
                deleted.append(name)
    return before, after, written, deleted


def keep(module):
    params = module.params
    mount = params['mount'].strip('/')
    params['mount'] = mount
    server = vault.Vault(params)
    mounts = ((server.api_read('sys/auth') or {}).get('data')) or {}
    found = mounts.get(mount + '/')
    if not found:
        raise vault.VaultError('mount: auth/{0} is not enabled; enable it first (ephemeral.castle.vault_auth_method, '
                               'type kubernetes)'.format(mount))
    if found.get('type') != 'kubernetes':
        raise vault.VaultError('mount: auth/{0} is a {1} mount, not kubernetes'.format(mount, found.get('type')))
    plan = []
    result = dict(changed=False, config_changed=False)
    before, after = {}, {}
    if params['kubernetes_host'] is not None:
        current = (server.api_read('auth/{0}/config'.format(mount)) or {}).get('data') or None
        if current is not None and not current.get('kubernetes_host'):
            current = None
        before['config'], after['config'] = plan_config(params, current, plan, module.warn)
        result['config_changed'] = bool(plan)
        result['config'] = {name: value for name, value in after['config'].items() if name != 'token_reviewer_jwt'}
    before['roles'], after['roles'], result['roles_written'], result['roles_deleted'] = plan_roles(server, params, plan)
    result['changed'] = bool(plan)
    if plan and not module.check_mode:
        server.before_write()
        for action, path, body in plan:
            if action == 'write':
                server.api_write(path, body)
            else:
                server.api_delete(path)
    if module._diff:
        result['diff'] = dict(before=before, after=after)
    return result


def main():
    role = dict(name=dict(type='str', required=True), state=dict(type='str', default='present', choices=['present', 'absent']),
                bound_service_account_names=dict(type='list', elements='str'),
                bound_service_account_namespaces=dict(type='list', elements='str'),
                token_policies=dict(type='list', elements='str', no_log=False), token_ttl=dict(type='str', no_log=False),
                token_max_ttl=dict(type='str', no_log=False), audience=dict(type='str'),
                alias_name_source=dict(type='str', choices=['serviceaccount_uid', 'serviceaccount_name']))
    spec = dict(mount=dict(type='str', default='kubernetes'), kubernetes_host=dict(type='str'),
                kubernetes_ca_cert=dict(type='str'), token_reviewer_jwt=dict(type='str', no_log=True),
                update_reviewer_jwt=dict(type='str', default='on_create', choices=['on_create', 'always']),
                issuer=dict(type='str'), disable_iss_validation=dict(type='bool'),
                disable_local_ca_jwt=dict(type='bool'), pem_keys=dict(type='list', elements='str', no_log=False),
                roles=dict(type='list', elements='dict', default=[], options=role),
                exclusive=dict(type='bool', default=False))
    module = vault.layer().module(spec)
    run_module(module, lambda: keep(module))


if __name__ == '__main__':
    main()
