"""openclaw_config run through ansible on the controller, against real files: merge, check mode, diff, idempotence."""

import json
import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[4]
ANSIBLE = pathlib.Path(sys.executable).parent / 'ansible'

SEED = {'plugins': {'entries': {'voice-call': {'enabled': True, 'config': {'provider': 'twilio'}},
                                'kaze': {'enabled': False}}},
        'meta': {'lastTouchedVersion': '2026.9.6'}}
KAZE = {'plugins': {'entries': {'kaze': {'config': {'runtimeUrl': 'http://runtime:8080',
                                                    'knowledgeUrl': 'http://knowledge:8080'}}}}}


def run(check=False, diff=True, **args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_LOCALHOST_WARNING='false')
    argv = [str(ANSIBLE), 'localhost', '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=' + sys.executable,
            '-m', 'ephemeral.castle.openclaw_config', '-a', json.dumps(args)]
    argv += ['--check'] if check else []
    argv += ['--diff'] if diff else []
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    result = json.loads(proc.stdout[proc.stdout.index('=> ') + 3:])
    result['failed'] = 'FAILED!' in proc.stdout
    result['diff_lines'] = [line for line in proc.stdout.splitlines()
                            if re.match(r'^[-+] ', line) and not line.startswith(('--- ', '+++ '))]
    return result


def seed(tmp_path, data=None, mode=0o640):
    path = tmp_path / 'openclaw.json'
    path.write_text(json.dumps(data or SEED, indent=4))
    path.chmod(mode)
    return path


def test_merge_changes_only_the_named_keys_then_nothing(tmp_path):
    path = seed(tmp_path)
    first = run(path=str(path), merge=KAZE)
    assert first['changed'] is True
    assert first['changed_keys'] == ['plugins.entries.kaze.config']
    data = json.loads(path.read_text())
    assert data['plugins']['entries']['voice-call'] == SEED['plugins']['entries']['voice-call']
    assert data['plugins']['entries']['kaze'] == {'enabled': False, **KAZE['plugins']['entries']['kaze']}
    assert list(data['plugins']['entries']) == ['voice-call', 'kaze']
    assert path.read_text() == json.dumps(data, indent=2) + '\n'
    assert oct(path.stat().st_mode & 0o777) == '0o640', 'an existing file keeps its mode'
    second = run(path=str(path), merge=KAZE)
    assert second['changed'] is False and second['changed_keys'] == []


def test_diff_shows_exactly_the_changed_key(tmp_path):
    path = seed(tmp_path)
    run(path=str(path), merge=KAZE)
    changed = {'plugins': {'entries': {'kaze': {'config': {'runtimeUrl': 'http://runtime-2:8080'}}}}}
    result = run(path=str(path), merge=changed)
    assert result['changed_keys'] == ['plugins.entries.kaze.config.runtimeUrl']
    assert result['diff_lines'] == ['-          "runtimeUrl": "http://runtime:8080",',
                                    '+          "runtimeUrl": "http://runtime-2:8080",']


def test_check_mode_reports_and_writes_nothing(tmp_path):
    path = seed(tmp_path)
    before = path.read_bytes()
    result = run(check=True, path=str(path), merge=KAZE)
    assert result['changed'] is True and result['diff_lines']
    assert path.read_bytes() == before
    missing = tmp_path / 'state' / 'openclaw.json'
    assert run(check=True, path=str(missing), merge=KAZE)['changed'] is True
    assert not missing.parent.exists()


def test_a_new_file_is_private_and_a_same_content_file_is_left_alone(tmp_path):
    missing = tmp_path / 'state' / 'openclaw.json'
    assert run(path=str(missing), merge=KAZE)['changed'] is True
    assert oct(missing.stat().st_mode & 0o777) == '0o600'
    assert oct(missing.parent.stat().st_mode & 0o777) == '0o700'
    compact = seed(tmp_path, data=KAZE)
    text = compact.read_text()
    assert run(path=str(compact), merge=KAZE)['changed'] is False
    assert compact.read_text() == text, 'the same content in another layout is not rewritten'


def test_backup_mode_and_removal(tmp_path):
    path = seed(tmp_path)
    result = run(path=str(path), merge={'plugins': {'entries': {'voice-call': None}}}, backup=True, mode='0600')
    assert result['changed'] is True and result['changed_keys'] == ['plugins.entries.voice-call']
    assert json.loads(pathlib.Path(result['backup_file']).read_text()) == SEED
    assert 'voice-call' not in json.loads(path.read_text())['plugins']['entries']
    assert oct(path.stat().st_mode & 0o777) == '0o600'


def test_validate_failure_leaves_the_file_untouched(tmp_path):
    path = seed(tmp_path)
    before = path.read_bytes()
    result = run(path=str(path), merge=KAZE, validate='grep -q never-there %s')
    assert result['failed'] is True
    assert 'the merged config failed validation (grep -q never-there %s exited 1)' in result['msg']
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['openclaw.json'], 'no temporary file is left behind'
    assert run(path=str(path), merge=KAZE, validate=sys.executable + ' -m json.tool %s')['changed'] is True


def test_json5_and_missing_file_without_create_fail_clearly(tmp_path):
    path = tmp_path / 'openclaw.json'
    path.write_text('{ plugins: { enabled: true, }, }\n')
    result = run(path=str(path), merge=KAZE)
    assert result['failed'] is True and 'is not plain JSON' in result['msg'] and str(path) in result['msg']
    absent = run(path=str(tmp_path / 'none.json'), merge=KAZE, create=False)
    assert absent['failed'] is True and 'does not exist and create=false' in absent['msg']
