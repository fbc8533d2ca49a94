"""castle-lab's command line: usage errors are one line, before any lab is touched."""

import pytest

from castle_lab import cli


@pytest.mark.parametrize('argv, reason', [
    (['fault', 'proxmox', 'nosuch'], "invalid choice: 'nosuch'"),
    (['fault', 'proxmox', 'node', 'pve2'], 'one of the arguments --offline --online is required'),
    (['fault', 'proxmox', 'hold-lock', '100'], 'the following arguments are required: secs'),
    ([], 'the following arguments are required: COMMAND'),
])
def test_usage_errors_are_one_line(capsys, argv, reason):
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1
    assert err.startswith('castle-lab: ') and reason in err


@pytest.mark.parametrize('argv, reason', [
    (['up', 'nosuch'], "unknown service 'nosuch'"),
    (['fault', 'nosuch', 'clear'], "unknown service 'nosuch'"),
    (['requests', 'vault'], "only proxmox has a control API, not 'vault'"),
])
def test_unknown_or_unsupported_services_are_refused(capsys, monkeypatch, tmp_path, argv, reason):
    monkeypatch.setenv('CASTLE_LAB_DIR', str(tmp_path))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and reason in err
    assert list(tmp_path.iterdir()) == []
