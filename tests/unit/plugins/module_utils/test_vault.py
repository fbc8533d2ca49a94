"""Pure helpers of the Vault layer: KV diffs that never show a value, durations."""

import json

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import vault


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
