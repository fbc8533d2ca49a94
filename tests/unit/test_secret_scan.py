"""The session's log scans: seeded secret values in any log under a lab directory, and tracebacks in the services' logs."""

from conftest import crashes, leaked_secrets, secret_value


def test_scan_names_the_log_and_the_value(tmp_path):
    value = secret_value('scan')
    (tmp_path / 'vault').mkdir()
    (tmp_path / 'vault' / 'vault.log').write_text('started\n')
    (tmp_path / 'ansible.log').write_text('ok: [controller] => {"data": "' + value + '"}\n')
    (tmp_path / 'kv.json').write_text(value)  # data files are not logs
    assert leaked_secrets(tmp_path) == {str(tmp_path / 'ansible.log'): [value]}


def test_clean_logs_pass(tmp_path):
    value = secret_value('clean')
    (tmp_path / 'ansible.log').write_text('changed: [controller] => {"diff": "' + value[:-1] + '"}\n')
    assert not leaked_secrets(tmp_path)


def test_a_traceback_in_a_service_log_is_a_crash(tmp_path):
    (tmp_path / 'kube').mkdir()
    (tmp_path / 'kube' / 'kube.log').write_text(
        'aiohttp.server ERROR Error handling request\nTraceback (most recent call last):\n  File "app.py"\nKeyError: 1\n')
    (tmp_path / 'ansible.log').write_text('Traceback (most recent call last):\n')  # a module's, not a service's
    found = crashes(tmp_path)
    assert list(found) == [str(tmp_path / 'kube' / 'kube.log')] and found[str(tmp_path / 'kube' / 'kube.log')].endswith('KeyError: 1\n')
    (tmp_path / 'kube' / 'kube.log').write_text('GET /api/v1/pods 200\n')
    assert not crashes(tmp_path)
