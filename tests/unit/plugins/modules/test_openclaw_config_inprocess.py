"""openclaw_config run in-process against real files: what it decides (changed, check mode, diff, validation,
errors) without starting ansible; test_openclaw_config.py runs the same module through ansible."""

import json
import os
import stat
import sys

import pytest

SEED = {'plugins': {'entries': {'voice-call': {'enabled': True}, 'kaze': {'enabled': False}}}, 'meta': {'v': 1}}
KAZE = {'plugins': {'entries': {'kaze': {'config': {'runtimeUrl': 'http://runtime:8080'}}}}}


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'openclaw.json'
    path.write_text(json.dumps(SEED))
    path.chmod(0o640)
    return path


def test_a_merge_is_written_once_keeping_the_mode_and_the_other_keys(run_module, config):
    first = run_module('openclaw_config', diff=True, path=str(config), merge=KAZE)
    assert first.changed and first['changed_keys'] == ['plugins.entries.kaze.config']
    assert first['diff']['before'] == json.dumps(SEED) and first['diff']['after'] == config.read_text()
    data = json.loads(config.read_text())
    assert data['plugins']['entries'] == {'voice-call': {'enabled': True}, 'kaze': {'enabled': False, **KAZE['plugins']['entries']['kaze']}}
    assert config.read_text() == json.dumps(data, indent=2) + '\n'
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    second = run_module('openclaw_config', path=str(config), merge=KAZE)
    assert not second.changed and second['changed_keys'] == []
    assert sorted(os.listdir(config.parent)) == ['openclaw.json']


def test_the_same_content_in_another_layout_is_not_rewritten(run_module, config):
    config.write_text(json.dumps(KAZE))
    result = run_module('openclaw_config', diff=True, path=str(config), merge=KAZE)
    assert not result.changed and result['diff']['before'] == result['diff']['after'] == json.dumps(KAZE)
    assert config.read_text() == json.dumps(KAZE)


def test_check_mode_reports_the_change_and_writes_nothing(run_module, config, tmp_path):
    before = config.read_bytes()
    checked = run_module('openclaw_config', check_mode=True, diff=True, path=str(config), merge=KAZE, mode='0600')
    assert checked.changed and '"runtimeUrl": "http://runtime:8080"' in checked['diff']['after']
    assert config.read_bytes() == before and stat.S_IMODE(config.stat().st_mode) == 0o640
    missing = tmp_path / 'state' / 'openclaw.json'
    assert run_module('openclaw_config', check_mode=True, path=str(missing), merge=KAZE).changed
    assert not missing.parent.exists()


def test_a_new_file_and_its_directory_are_private(run_module, tmp_path):
    path = tmp_path / 'state' / 'openclaw.json'
    assert run_module('openclaw_config', path=str(path), merge=KAZE).changed
    assert json.loads(path.read_text()) == KAZE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_mode_alone_is_a_change_and_backup_keeps_the_old_file(run_module, config):
    assert run_module('openclaw_config', path=str(config), merge={'meta': {'v': 1}}, mode='0600').changed
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    result = run_module('openclaw_config', path=str(config), merge={'plugins': {'entries': {'voice-call': None}}},
                        backup=True)
    assert result['changed_keys'] == ['plugins.entries.voice-call']
    assert json.loads(open(result['backup_file']).read()) == SEED


def test_validate_sees_the_merged_file_beside_the_config_and_a_failure_changes_nothing(run_module, config):
    seen = config.parent / 'seen'
    script = 'import shutil, sys; shutil.copy(sys.argv[1], {0!r}); sys.exit(int(sys.argv[2]))'.format(str(seen))
    before = config.read_bytes()
    failed = run_module('openclaw_config', path=str(config), merge=KAZE,
                        validate='{0} -c "{1}" %s 3'.format(sys.executable, script))
    assert failed.failed and 'the merged config failed validation (' in failed.msg and 'exited 3)' in failed.msg
    assert config.read_bytes() == before
    assert json.loads(seen.read_text())['plugins']['entries']['kaze']['config'] == KAZE['plugins']['entries']['kaze']['config']
    assert sorted(os.listdir(config.parent)) == ['openclaw.json', 'seen'], 'the merged file is removed'
    passed = run_module('openclaw_config', path=str(config), merge=KAZE, validate='{0} -m json.tool %s'.format(sys.executable))
    assert passed.changed and json.loads(config.read_text())['plugins']['entries']['kaze']['config']


def test_validate_runs_on_a_json_file(run_module, config):
    result = run_module('openclaw_config', path=str(config), merge=KAZE,
                        validate='{0} -c "import sys; sys.exit(not sys.argv[1].endswith(\'.json\'))" %s'.format(sys.executable))
    assert result.changed, 'a checker may go by the extension of the file'


@pytest.mark.parametrize('text, merge, message', [
    ('{ plugins: { enabled: true, }, }', KAZE, 'is not plain JSON'),
    ('[1]', KAZE, 'holds a JSON list, not an object'),
    ('{"gateway": {"port": 18789}}', {'gateway': {'port': {'value': 1}}}, 'gateway.port is a int in the file'),
])
def test_what_cannot_be_merged_fails_naming_the_file_or_key(run_module, config, text, merge, message):
    config.write_text(text)
    result = run_module('openclaw_config', path=str(config), merge=merge)
    assert result.failed and message in result.msg
    assert config.read_text() == text


def test_a_missing_file_without_create_and_an_unreadable_place_fail_clearly(run_module, tmp_path):
    absent = run_module('openclaw_config', path=str(tmp_path / 'none.json'), merge=KAZE, create=False)
    assert absent.failed and '{0} does not exist and create=false'.format(tmp_path / 'none.json') in absent.msg
    (tmp_path / 'file').write_text('')
    blocked = tmp_path / 'file' / 'openclaw.json'
    result = run_module('openclaw_config', path=str(blocked), merge=KAZE)
    assert result.failed and 'cannot read {0}: '.format(blocked) in result.msg
    bad = run_module('openclaw_config', path=str(tmp_path / 'x.json'), merge=KAZE, validate='true')
    assert bad.failed and 'validate must contain %s' in bad.msg
