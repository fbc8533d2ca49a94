"""Pure helpers of the Vault layer: policy normalisation, KV diffs that never show a value, durations."""

import json

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import vault

POLICY = '''# services read their own secrets
path "kv/data/app/*" {
  capabilities = ["read", "list"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
  allowed_parameters = {
    "increment" = []
  }
}
'''


@pytest.mark.parametrize('other', [
    # whitespace, comments (all three kinds), block order, list order and repetition, trailing commas
    '''/* renewals */ path "sys/leases/renew" { capabilities = ["update",]
       allowed_parameters = { "increment" = [] } }
    // reads
    path "kv/data/app/*" { capabilities = ["list", "read", "read"] }''',
    # attribute order inside a block, heredoc-free single line
    'path "sys/leases/renew" { allowed_parameters = { increment = [] } capabilities = ["update"] }\n'
    'path "kv/data/app/*" { capabilities = ["read","list"] }',
    # the same policy as JSON
    json.dumps({'path': {'kv/data/app/*': {'capabilities': ['read', 'list']},
                         'sys/leases/renew': {'capabilities': ['update'], 'allowed_parameters': {'increment': []}}}}),
])
def test_policies_that_mean_the_same_are_equal(other):
    assert vault.policies_equal(POLICY, other)
    assert vault.normalise_policy(POLICY) == vault.normalise_policy(other)


@pytest.mark.parametrize('other', [
    POLICY.replace('"list"', '"update"'),
    POLICY.replace('kv/data/app/*', 'kv/data/app2/*'),
    POLICY.replace('"increment" = []', '"increment" = ["1h"]'),
    POLICY.replace('path "sys/leases/renew"', 'path "sys/leases/renew/"'),
    POLICY + 'path "sys/mounts" { capabilities = ["deny"] }\n',
])
def test_policies_that_differ_are_not_equal(other):
    assert not vault.policies_equal(POLICY, other)


def test_heredoc_strings_equal_quoted_strings():
    quoted = 'path "a" {\n  capabilities = ["read"]\n  comment = "x\\n"\n}\n'
    heredoc = 'path "a" {\n  capabilities = ["read"]\n  comment = <<EOT\nx\nEOT\n}\n'
    assert vault.policies_equal(quoted, heredoc)


@pytest.mark.parametrize('broken', ['path "a" { capabilities = ["read" }', 'path "a" {', 'path "a" { x = "open }',
                                    '/* open', 'path "a" { capabilities = ["read"] } }', '{"path": '])
def test_broken_policies_raise(broken):
    with pytest.raises(vault.PolicySyntaxError):
        vault.normalise_policy(broken)


def test_unparseable_policies_compare_line_by_line():
    assert vault.policies_equal('path "a" {\n  x = !\n}\n', '  path "a" {\n\n x = !\n}')
    assert not vault.policies_equal('path "a" {\n  x = !\n}\n', 'path "a" {\n  x = ?\n}\n')


def test_kv_changes_name_keys_only():
    before = {'same': 's3cret-1', 'old': 's3cret-2', 'gone': 's3cret-3'}
    after = {'same': 's3cret-1', 'old': 's3cret-4', 'new': 's3cret-5'}
    assert vault.kv_changes(before, after) == dict(added=['new'], changed=['old'], removed=['gone'], unchanged=['same'])
    assert vault.kv_changes(None, {'a': 1}) == dict(added=['a'], changed=[], removed=[], unchanged=[])


def test_kv_masked_diff_never_holds_a_value():
    before = {'same': 's3cret-1', 'old': 's3cret-2', 'gone': 's3cret-3', 'num': 1}
    after = {'same': 's3cret-1', 'old': 's3cret-4', 'new': 's3cret-5', 'num': '1'}
    masked_before, masked_after = vault.kv_masked_diff(before, after)
    assert masked_before == {'same': '<hidden>', 'old': '<old value>', 'gone': '<old value>', 'num': '<old value>'}
    assert masked_after == {'same': '<hidden>', 'old': '<new value>', 'new': '<new value>', 'num': '<new value>'}
    assert 's3cret' not in json.dumps([masked_before, masked_after])
    assert vault.kv_masked_diff(before, before)[0] == vault.kv_masked_diff(before, before)[1]


@pytest.mark.parametrize('value,seconds', [(90, 90), ('90', 90), ('90s', 90), ('1h30m', 5400), ('7d', 604800), ('0', 0)])
def test_durations(value, seconds):
    assert vault.duration_seconds(value, 'token_ttl') == seconds


@pytest.mark.parametrize('value', ['1x', 'h', '1h30', '', '-5'])
def test_bad_durations_name_the_input(value):
    with pytest.raises(vault.VaultError, match='token_ttl'):
        vault.duration_seconds(value, 'token_ttl')
