"""Vault policies compared as Vault reads them: HCL or JSON, whatever the layout, comments, order or quoting."""

import json

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import vault_hcl

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
    assert vault_hcl.policies_equal(POLICY, other)
    assert vault_hcl.normalise_policy(POLICY) == vault_hcl.normalise_policy(other)


@pytest.mark.parametrize('other', [
    POLICY.replace('"list"', '"update"'),
    POLICY.replace('kv/data/app/*', 'kv/data/app2/*'),
    POLICY.replace('"increment" = []', '"increment" = ["1h"]'),
    POLICY.replace('path "sys/leases/renew"', 'path "sys/leases/renew/"'),
    POLICY + 'path "sys/mounts" { capabilities = ["deny"] }\n',
])
def test_policies_that_differ_are_not_equal(other):
    assert not vault_hcl.policies_equal(POLICY, other)


def test_heredoc_strings_equal_quoted_strings():
    quoted = 'path "a" {\n  capabilities = ["read"]\n  comment = "x\\n"\n}\n'
    heredoc = 'path "a" {\n  capabilities = ["read"]\n  comment = <<EOT\nx\nEOT\n}\n'
    assert vault_hcl.policies_equal(quoted, heredoc)


@pytest.mark.parametrize('broken', ['path "a" { capabilities = ["read" }', 'path "a" {', 'path "a" { x = "open }',
                                    '/* open', 'path "a" { capabilities = ["read"] } }', '{"path": '])
def test_broken_policies_raise(broken):
    with pytest.raises(vault_hcl.PolicySyntaxError):
        vault_hcl.normalise_policy(broken)


def test_unparseable_policies_compare_line_by_line():
    assert vault_hcl.policies_equal('path "a" {\n  x = !\n}\n', '  path "a" {\n\n x = !\n}')
    assert not vault_hcl.policies_equal('path "a" {\n  x = !\n}\n', 'path "a" {\n  x = ?\n}\n')
