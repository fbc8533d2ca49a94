"""Unit file syntax as systemd reads it: continuations, repeated keys, empty assignments, quoting, specifiers,
command-line variable expansion, time spans, and refusal of what the lab does not implement."""

import time

import pytest
from castle_lab.mesh import unitfile as uf
from castle_lab.mesh.systemctl import parse, shim_script


def load(name, text, *dropins):
    texts = {'/etc/systemd/system/' + name: text}
    texts.update({'/etc/systemd/system/{0}.d/{1}.conf'.format(name, i): t for i, t in enumerate(dropins)})
    paths = list(texts)
    return uf.UnitFile(name, paths[0], paths[1:], texts=texts)


def test_continuation_lines_join_with_a_space_and_skip_comments():
    unit = load('a.service', '[Service]\nExecStart=/bin/echo one \\\n# a comment inside\n  two\\\nthree\n')
    assert unit.get('Service', 'ExecStart') == [(set(), ['/bin/echo', 'one', 'two', 'three'])]


def test_repeated_keys_append_or_override_and_empty_assignment_resets():
    unit = load('a.service', '[Unit]\nDescription=first\nDescription=second\nAfter=x.service y.service\nAfter=z.service\n'
                '[Service]\nExecStart=/bin/true\nExecStartPre=/bin/a\nExecStartPre=\nExecStartPre=/bin/b\n'
                'ExecReload=/bin/r1\nExecReload=/bin/r2\nEnvironment=A=1\n',
                '[Service]\nEnvironment=\nEnvironment=B=2\nExecStart=\nExecStart=/bin/false\n')
    assert unit.one('Unit', 'Description') == 'second'
    assert unit.get('Unit', 'After') == ['x.service', 'y.service', 'z.service']
    assert [argv for _flags, argv in unit.get('Service', 'ExecStartPre')] == [['/bin/b']]
    assert [argv for _flags, argv in unit.get('Service', 'ExecReload')] == [['/bin/r1'], ['/bin/r2']]
    assert unit.get('Service', 'Environment') == ['B=2']
    assert unit.get('Service', 'ExecStart') == [(set(), ['/bin/false'])]


def test_quoting_and_escapes():
    unit = load('a.service', '[Service]\nEnvironment="GREETING=hello world" \'X=a"b\' Y=1\n'
                'ExecStart=-@/bin/echo argv0 "two words" \'single quoted\' tab\\there \\x41\n')
    assert unit.get('Service', 'Environment') == ['GREETING=hello world', 'X=a"b', 'Y=1']
    flags, argv = unit.get('Service', 'ExecStart')[0]
    assert flags == {'-', '@'}
    assert argv == ['/bin/echo', 'argv0', 'two words', 'single quoted', 'tab\there', 'A']
    with pytest.raises(uf.UnitError, match='Unbalanced quotes'):
        load('a.service', '[Service]\nExecStart=/bin/echo "open\n')
    with pytest.raises(uf.UnitError, match='Neither a valid executable name nor an absolute path'):
        load('a.service', '[Service]\nExecStart=./relative\n')


def test_specifiers_of_an_instance():
    unit = load('tunnel@blog\\x2dweb-1.service', '[Unit]\nDescription=%n|%N|%p|%i|%I|%f|%u|%h|%%\n[Service]\nExecStart=/bin/echo %i\n')
    assert unit.one('Unit', 'Description') == 'tunnel@blog\\x2dweb-1.service|tunnel@blog\\x2dweb-1|tunnel|blog\\x2dweb-1|blog-web/1|/blog-web/1|root|/root|%'
    with pytest.raises(uf.UnitError, match='unknown specifier %z'):
        load('a.service', '[Service]\nExecStart=/bin/echo %z\n')


def test_command_line_variable_expansion():
    env = {'OPTS': '-a  -b', 'ONE': 'x y'}
    assert uf.expand_env_argv(['/bin/cmd', '$OPTS', '--v=${ONE}', '${ONE}', '$UNSET', '$$OPTS', 'a$OPTS'], env) == \
        ['/bin/cmd', '-a', '-b', '--v=x y', 'x y', '$OPTS', 'a$OPTS']


def test_environment_file(tmp_path):
    path = tmp_path / 'default'
    path.write_text('# comment\n; other comment\nSSHD_OPTS="-o LogLevel=VERBOSE"\nLONG=a\\\nb\n')
    assert uf.read_env_file(str(path)) == {'SSHD_OPTS': '-o LogLevel=VERBOSE', 'LONG': 'ab'}


@pytest.mark.parametrize('text,seconds', [('5min 30s', 330), ('1h', 3600), ('500ms', 0.5), ('10', 10), ('2 h 1m', 7260),
                                          ('1d', 86400), ('infinity', float('inf'))])
def test_time_spans(text, seconds):
    assert uf.parse_timespan(text) == seconds


@pytest.mark.parametrize('text', ['soon', '5 parsecs', '1h x'])
def test_bad_time_spans(text):
    with pytest.raises(uf.UnitError):
        uf.parse_timespan(text)


@pytest.mark.parametrize('text,message', [
    ('[Service]\nExecStart=/bin/true\nProtectSystem=full\n', "Unknown key 'ProtectSystem' in section \\[Service\\]"),
    ('[Servce]\nExecStart=/bin/true\n', "Unknown section 'Servce'"),
    ('ExecStart=/bin/true\n', 'Assignment outside of section'),
    ('[Service]\nExecStart /bin/true\n', "Missing '='"),
    ('[Service]\nExecStart=/bin/true\nEnvironment=not-an-assignment\n', 'Invalid environment assignment'),
])
def test_what_the_parser_does_not_understand_is_refused(text, message):
    with pytest.raises(uf.UnitError, match=message):
        load('a.service', text)


def test_calendar_events_of_the_time_of_day():
    timer = load('a.timer', '[Timer]\nOnBootSec=5min\nOnUnitActiveSec=1h\nOnCalendar=*:0/15\n[Install]\nWantedBy=timers.target\n')
    assert timer.get('Timer', 'OnUnitActiveSec') == ['1h'] and timer.get('Timer', 'OnCalendar') == ['*:0/15']
    base = time.mktime((2026, 12, 4, 23, 7, 30, 0, 0, -1))
    for spec, expected in (('*:0/15', (23, 15, 0)), ('hourly', (0, 0, 0)), ('daily', (0, 0, 0)), ('*-*-* 23:07:45', (23, 7, 45)),
                           ('0,23:10,40', (23, 10, 0)), ('*:*:0/20', (23, 7, 40)), ('minutely', (23, 8, 0))):
        due = time.localtime(uf.next_calendar(uf.parse_calendar(spec), base))
        assert (due.tm_hour, due.tm_min, due.tm_sec) == expected, spec
    for spec in ('Mon *-*-* 00:00', 'weekly', '25:00', '*:0/0', '2026-12-24 18:00'):
        with pytest.raises(uf.UnitError, match='OnCalendar='):
            uf.parse_calendar(spec)
    with pytest.raises(uf.UnitError, match='Persistent= is not supported'):
        load('a.timer', '[Timer]\nOnCalendar=daily\nPersistent=true\n')


def test_systemctl_options_and_shim():
    opts, args = parse(['show', 'ssh', '-p', 'MainPID', '--property=ActiveState,SubState', '--value', '--no-pager'])
    assert args == ['show', 'ssh'] and opts['property'] == ['MainPID', 'ActiveState', 'SubState'] and opts['value']
    assert shim_script('/venv/bin/python') == '#!/bin/sh\nexec /venv/bin/python -m castle_lab.mesh.systemctl "$@"\n'
