"""The session's secret scan finds seeded values in any log under a lab directory, and only those."""

from conftest import leaked_secrets, secret_value


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
