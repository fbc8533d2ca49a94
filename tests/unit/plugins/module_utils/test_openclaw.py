"""OpenClaw's JSON config as data: merging keeps what it does not name, in order, and refuses what it cannot keep."""

import json

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import openclaw
from ansible_collections.ephemeral.castle.plugins.module_utils.openclaw import OpenClawConfigError

CURRENT = {
    'plugins': {
        'load': {'paths': ['/srv/a']},
        'entries': {'voice-call': {'enabled': True, 'config': {'provider': 'twilio'}},
                    'kaze': {'enabled': False}},
    },
    'gateway': {'port': 18789},
}


def test_merge_keeps_other_entries_and_key_order():
    merged = openclaw.merge(CURRENT, {'plugins': {'entries': {'kaze': {'config': {'runtimeUrl': 'http://r'}}}}})
    assert merged['plugins']['entries']['voice-call'] == CURRENT['plugins']['entries']['voice-call']
    assert list(merged) == ['plugins', 'gateway']
    assert list(merged['plugins']['entries']) == ['voice-call', 'kaze']
    assert merged['plugins']['entries']['kaze'] == {'enabled': False, 'config': {'runtimeUrl': 'http://r'}}
    assert CURRENT['plugins']['entries']['kaze'] == {'enabled': False}, 'the input is not modified'


def test_lists_and_scalars_replace_and_none_removes():
    merged = openclaw.merge(CURRENT, {'plugins': {'load': {'paths': ['/srv/b']}, 'entries': {'voice-call': None}},
                                      'gateway': {'port': 19001}})
    assert merged['plugins']['load']['paths'] == ['/srv/b']
    assert 'voice-call' not in merged['plugins']['entries']
    assert merged['gateway']['port'] == 19001
    assert openclaw.changed_keys(CURRENT, merged) == [
        'plugins.load.paths', 'plugins.entries.voice-call', 'gateway.port']


def test_unchanged_merge_names_no_key():
    assert openclaw.changed_keys(CURRENT, openclaw.merge(CURRENT, {'gateway': {'port': 18789}})) == []


def test_an_object_over_a_scalar_is_refused_with_its_path():
    with pytest.raises(OpenClawConfigError, match='gateway.port is a int in the file'):
        openclaw.merge(CURRENT, {'gateway': {'port': {'value': 1}}})


def test_render_is_two_space_json_with_a_newline():
    text = openclaw.render({'b': 1, 'a': {'é': [1]}})
    assert text == '{\n  "b": 1,\n  "a": {\n    "é": [\n      1\n    ]\n  }\n}\n'
    assert json.loads(text) == {'b': 1, 'a': {'é': [1]}}


@pytest.mark.parametrize('text,message', [
    ('{\n  // comment\n  "a": 1\n}', 'is not plain JSON'),
    ('[1, 2]', 'holds a JSON list, not an object'),
])
def test_what_cannot_be_merged_is_refused(text, message):
    with pytest.raises(OpenClawConfigError, match=message):
        openclaw.parse(text, '/x/openclaw.json')


def test_read_of_a_missing_file_is_empty(tmp_path):
    assert openclaw.read(str(tmp_path / 'none.json')) == (None, {})
    (tmp_path / 'empty.json').write_text('  \n')
    assert openclaw.read(str(tmp_path / 'empty.json')) == ('  \n', {})
