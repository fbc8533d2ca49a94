"""The SSH secrets engine and AppRole modules against the session lab's OpenBao, as the fleet's tunnels use them: a
mount with its CA, a role per actor, a policy and an AppRole per machine; a machine logs in with its role ID and
secret ID over HTTP and gets its own fresh key signed. Issued secret IDs are registered with the session, which fails
when one shows in a log."""

import datetime
import json
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest
from harness import run_module, run_playbook

from conftest import SECRET_MARKERS

pytestmark = pytest.mark.lab

FORWARDING = 'permit-port-forwarding'


def unique(prefix):
    return '{0}-{1}'.format(prefix, uuid.uuid4().hex[:8])


class Fleet(object):
    """One fleet's names in the lab's OpenBao, the module runs made for it and their outputs."""

    def __init__(self, env, directory):
        self.env, self.dir = dict(env), directory
        self.mount, self.approle = unique('it-ssh'), unique('it-approle')
        self.actor, self.other = 'gateway', 'blog'
        self.policy = unique('it-sign')
        self.outputs = []

    def __call__(self, module, /, check=False, diff=False, **args):
        outcome = run_module(self.env, module, check=check, diff=diff, **args)
        self.outputs.append(outcome.output)
        return outcome

    def role(self, name, **extra):
        return dict(dict(mount=self.mount, name=name, allowed_users=[name], default_user=name,
                         allowed_extensions=[FORWARDING], default_extensions={FORWARDING: ''}, ttl='1h'), **extra)

    def issue(self, *destroy, hidden=True):
        """A new secret ID of the machine's AppRole, through a playbook whose tasks hide it (the issuing task only by
        the action plugin's doing when not `hidden`): (secret ID, accessor)."""
        kept = self.dir / unique('secret-id')
        play = self.dir / (unique('issue') + '.yml')
        play.write_text('''
- name: Issue a secret ID
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Issue
      ephemeral.castle.vault_approle:
        mount: {approle}
        name: machine
        issue_secret_id: true
        secret_id_metadata: {{host: railiance01}}
        destroy_secret_id_accessors: {destroy}
      register: issued
      no_log: {hidden}
    - name: Keep it
      ansible.builtin.copy:
        content: "{{{{ issued | to_json }}}}"
        dest: {kept}
        mode: "0600"
      no_log: true
'''.format(approle=self.approle, destroy=json.dumps(list(destroy)), kept=kept, hidden=str(hidden).lower()))
        proc = run_playbook(self.env, play, '-vvv')
        self.outputs.append(proc.stdout + proc.stderr)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        issued = json.loads(kept.read_text())
        SECRET_MARKERS.append(issued['secret_id'])
        assert issued['secret_id'] not in proc.stdout + proc.stderr
        assert issued['changed'] and issued['destroyed_secret_id_accessors'] == list(destroy)
        return issued['secret_id'], issued['secret_id_accessor']

    def api(self, method, path, body=None, token=None):
        """(status, JSON answer) of a plain HTTP call to the lab's OpenBao."""
        request = urllib.request.Request(self.env['VAULT_ADDR'] + '/v1/' + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None)
        if token:
            request.add_header('X-Vault-Token', token)
        context = ssl.create_default_context(cafile=self.env['VAULT_CACERT'])
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b'null')
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b'null')

    def login(self, role_id, secret_id):
        return self.api('POST', 'auth/{0}/login'.format(self.approle), dict(role_id=role_id, secret_id=secret_id))


@pytest.fixture(scope='module')
def fleet(env, tmp_path_factory):
    """A fleet's mount with its CA and two actors' roles, a policy signing for one, and a machine's AppRole with it;
    all removed afterwards."""
    fleet = Fleet(env, tmp_path_factory.mktemp('vault-ssh'))
    assert fleet('vault_secrets_engine', path=fleet.mount, type='ssh', max_lease_ttl='4h').changed
    fleet.ca = fleet('vault_ssh_ca', mount=fleet.mount).result
    assert fleet.ca['changed'] and fleet.ca['public_key'].startswith('ssh-ed25519 ')
    for name in (fleet.actor, fleet.other):
        assert fleet('vault_ssh_role', **fleet.role(name)).changed
    policy = 'path "{0}/sign/{1}" {{\n  capabilities = ["update"]\n}}\n'.format(fleet.mount, fleet.actor)
    assert fleet('vault_policy', name=fleet.policy, policy=policy).changed
    assert fleet('vault_auth_method', path=fleet.approle, type='approle').changed
    made = fleet('vault_approle', mount=fleet.approle, name='machine', token_policies=[fleet.policy], token_ttl='10m')
    assert made.changed and made.result['role_id']
    fleet.role_id = made.result['role_id']
    yield fleet
    assert fleet('vault_approle', mount=fleet.approle, name='machine', state='absent').changed
    assert fleet('vault_auth_method', path=fleet.approle, state='absent').changed
    assert fleet('vault_policy', name=fleet.policy, state='absent').changed
    assert fleet('vault_ssh_role', mount=fleet.mount, name=fleet.other, state='absent').changed
    assert fleet('vault_ssh_ca', mount=fleet.mount, state='absent').changed
    assert fleet('vault_secrets_engine', path=fleet.mount, state='absent').changed
    for output in fleet.outputs:
        for marker in SECRET_MARKERS:
            assert marker not in output


def test_the_mount_and_its_ca_are_kept_not_replaced(fleet):
    again = fleet('vault_secrets_engine', path=fleet.mount, type='ssh', max_lease_ttl='240m')
    assert again.rc == 0 and not again.changed and again.result['mount']['type'] == 'ssh'
    kv = fleet('vault_secrets_engine', path='kv', type='kv-v2')
    assert kv.rc == 0 and not kv.changed and kv.result['mount']['options'] == {'version': '2'}
    other = fleet('vault_secrets_engine', path=fleet.mount, type='kv')
    assert other.failed and 'type: {0} is a ssh mount, not kv'.format(fleet.mount) in other.msg
    checked = fleet('vault_ssh_ca', check=True, mount=fleet.mount)
    assert checked.rc == 0 and not checked.changed and checked.result['public_key'] == fleet.ca['public_key']
    kept = fleet('vault_ssh_ca', mount=fleet.mount, key_type='rsa')
    assert kept.rc == 0 and not kept.changed and kept.result['public_key'] == fleet.ca['public_key']
    status, issuers = fleet.api('LIST', fleet.mount + '/issuers', token=fleet.env['VAULT_TOKEN'])
    assert status == 200 and len(issuers['data']['keys']) == 1, 'a second run adds no issuer'


def test_a_role_is_written_once_and_a_ttl_change_shows_in_the_diff(fleet):
    role = fleet.role(fleet.other)
    steady = fleet('vault_ssh_role', diff=True, **dict(role, ttl='3600'))
    assert steady.rc == 0 and not steady.changed
    longer = fleet('vault_ssh_role', diff=True, **dict(role, ttl='2h'))
    assert longer.rc == 0 and longer.changed
    assert any('"ttl": 3600' in line for line in longer.diff if line.startswith('-'))
    assert any('"ttl": 7200' in line for line in longer.diff if line.startswith('+'))
    status, read = fleet.api('GET', '{0}/roles/{1}'.format(fleet.mount, fleet.other), token=fleet.env['VAULT_TOKEN'])
    assert status == 200 and read['data']['ttl'] == 7200 and read['data']['allowed_users'] == fleet.other
    refused = fleet('vault_ssh_role', **dict(role, ttl='5h', max_ttl='4h'))
    assert refused.failed and 'ttl (18000s) is longer than max_ttl (14400s)' in refused.msg


def test_a_machine_logs_in_with_its_approle_and_signs_its_own_key(fleet, tmp_path):
    steady = fleet('vault_approle', mount=fleet.approle, name='machine', token_policies=[fleet.policy], token_ttl='600')
    assert steady.rc == 0 and not steady.changed and steady.result['role_id'] == fleet.role_id
    secret_id, _accessor = fleet.issue()
    status, login = fleet.login(fleet.role_id, secret_id)
    assert status == 200 and fleet.policy in login['auth']['policies']
    token = login['auth']['client_token']
    key = tmp_path / 'id_ed25519'
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'railiance01', '-f', str(key)], check=True)
    public = (tmp_path / 'id_ed25519.pub').read_text()
    status, signed = fleet.api('POST', '{0}/sign/{1}'.format(fleet.mount, fleet.actor), dict(public_key=public), token)
    assert status == 200, signed
    cert = tmp_path / 'id_ed25519-cert.pub'
    cert.write_text(signed['data']['signed_key'])
    shown = subprocess.run(['ssh-keygen', '-L', '-f', str(cert)], check=True, capture_output=True, text=True).stdout
    lines = [line.strip() for line in shown.splitlines()]
    assert lines[lines.index('Principals:') + 1] == fleet.actor
    assert lines[lines.index('Extensions:') + 1:] == [FORWARDING]
    valid = next(line for line in lines if line.startswith('Valid: from '))
    start, end = (datetime.datetime.fromisoformat(moment) for moment in valid[len('Valid: from '):].split(' to '))
    assert abs((end - start).total_seconds() - (3600 + 30)) <= 5, valid
    ca_file = tmp_path / 'ca.pub'
    ca_file.write_text(fleet.ca['public_key'])
    fingerprint = subprocess.run(['ssh-keygen', '-l', '-f', str(ca_file)], check=True, capture_output=True,
                                 text=True).stdout.split()[1]
    assert any(line.startswith('Signing CA: ED25519 ' + fingerprint) for line in lines)
    status, refused = fleet.api('POST', '{0}/sign/{1}'.format(fleet.mount, fleet.other), dict(public_key=public), token)
    assert status == 403, refused


def test_a_rotated_secret_id_replaces_the_old_one(fleet):
    old, old_accessor = fleet.issue()
    new, _accessor = fleet.issue(old_accessor)
    assert fleet.login(fleet.role_id, new)[0] == 200
    status, refused = fleet.login(fleet.role_id, old)
    assert status == 400 and 'invalid' in json.dumps(refused).lower()
    gone = fleet('vault_approle', mount=fleet.approle, name='machine', destroy_secret_id_accessors=[old_accessor])
    assert gone.rc == 0 and not gone.changed and gone.result['destroyed_secret_id_accessors'] == []


def test_a_task_that_forgets_no_log_still_hides_the_secret_id(fleet):
    """The action plugin marks the issuing result no_log: even at -vvv the secret ID stays out of the output."""
    secret_id, _accessor = fleet.issue(hidden=False)
    assert 'the output has been hidden' in fleet.outputs[-1]
    assert secret_id not in fleet.outputs[-1]


def test_the_roles_approles_and_policies_are_listed_as_the_server_holds_them(fleet):
    roles, approles, gone = fleet.mount + '/roles', 'auth/{0}/role'.format(fleet.approle), unique('it-ssh') + '/roles'
    listed = fleet('vault_list_info', check=True, paths=[roles, approles, 'sys/policies/acl', gone, '/' + roles + '/'])
    assert listed.rc == 0 and not listed.changed, listed.output
    found = listed.result['found']
    assert found[roles] == sorted([fleet.actor, fleet.other]) and found['/' + roles + '/'] == found[roles]
    assert found[approles] == ['machine']
    assert fleet.policy in found['sys/policies/acl'] and 'default' in found['sys/policies/acl']
    assert found[gone] == [], 'a mount that does not exist lists nothing'
    empty = fleet('vault_list_info', paths=[roles, '/'])
    assert empty.failed and 'paths: an empty path cannot be listed' in empty.msg
