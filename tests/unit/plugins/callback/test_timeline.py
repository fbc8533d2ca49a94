"""The timeline callback's pure parts: which stage a play or task names, which node a result counts for, the
stages and nodes built from timed events with their records and lines, the JSON document and its SVG chart."""

import json
import pathlib
import re
import xml.etree.ElementTree as ET

import pytest
import yaml

from ansible_collections.ephemeral.castle.plugins.callback.timeline import Timeline, line, node_of, stage_of, stage_time
from ansible_collections.ephemeral.castle.plugins.module_utils.timeline_svg import render_svg, rows, tick_step

REPO = pathlib.Path(__file__).resolve().parents[4]
SVG = '{http://www.w3.org/2000/svg}'
T0 = 1_000_000.0


@pytest.mark.parametrize('variables, expected', [
    ({'castle_stage': 'S0 gate'}, 'S0 gate'),
    ({'castle_stage': ' S1 wipe '}, 'S1 wipe'),
    ({'castle_stage': ''}, ''),
    ({'castle_stage': '{{ stage }}'}, None),
    ({'castle_stage': '{% if x %}a{% endif %}'}, None),
    ({'castle_stage': 3}, None),
    ({'other': 'x'}, None),
    (None, None),
])
def test_stage_of(variables, expected):
    assert stage_of(variables) == expected


@pytest.mark.parametrize('facts, mark, expected', [
    ({'phoenix_marks': {'S0': 10.0, 'gate': 12.5}}, 'phoenix_marks.gate', 12.5),
    ({'phoenix_marks': {'gate': '12.5'}}, 'phoenix_marks.gate', 12.5),
    ({'phoenix_marks': {'S0': 10.0}}, 'phoenix_marks.gate', 99.0),
    ({'phoenix_marks': {'gate': 'soon'}}, 'phoenix_marks.gate', 99.0),
    ({'phoenix_marks': 3}, 'phoenix_marks.gate', 99.0),
    (None, 'phoenix_marks.gate', 99.0),
    ({'at': 5.0}, None, 99.0),
    ({'at': 5.0}, '{{ mark }}', 99.0),
])
def test_stage_time_reads_the_mark_the_task_names(facts, mark, expected):
    assert stage_time(facts, mark, 99.0) == expected


def test_node_of_prefers_the_item_label_then_the_include_label_naming_a_host():
    hosts = {'talos-cp-1', 'talos-w-1'}.__contains__
    assert node_of('localhost', 'talos-cp-1', 'talos-w-1', hosts) == 'talos-cp-1'
    assert node_of('localhost', 'GitRepository', 'talos-w-1', hosts) == 'talos-w-1'
    assert node_of('localhost', {'name': 'talos-cp-1'}, None, hosts) == 'localhost'
    assert node_of('localhost', None, 'not-a-host', hosts) == 'localhost'


def phoenix_like():
    """Two stages, the first with two nodes one after the other and the controller, the second with a failure."""
    timeline = Timeline(T0)
    records = timeline.begin('S0 backups', T0 + 1.0)
    records += timeline.node('localhost', T0 + 1.0, T0 + 1.2)
    records += timeline.node('talos-w-1', T0 + 1.2, T0 + 3.0)
    records += timeline.node('talos-w-1', T0 + 3.0, T0 + 3.5)
    records += timeline.node('talos-cp-1', T0 + 3.5, T0 + 6.0)
    records += timeline.begin('S0 backups', T0 + 6.1)
    records += timeline.begin('S1 wipe', T0 + 6.25)
    records += timeline.node('talos-w-1', T0 + 6.0, T0 + 7.0, failed=True)
    records += timeline.begin('', T0 + 9.0)
    records += timeline.node('localhost', T0 + 9.5, T0 + 9.6)
    return timeline, records


def test_stages_and_nodes_from_timed_events():
    timeline, records = phoenix_like()
    assert [(r['event'], r['stage'], r.get('node'), r['elapsed'], r.get('duration'), r.get('status')) for r in records] == [
        ('stage_start', 'S0 backups', None, 1.0, None, None),
        ('node_start', 'S0 backups', 'localhost', 1.0, None, None),
        ('node_start', 'S0 backups', 'talos-w-1', 1.2, None, None),
        ('node_start', 'S0 backups', 'talos-cp-1', 3.5, None, None),
        ('node_end', 'S0 backups', 'localhost', 1.2, 0.2, 'ok'),
        ('node_end', 'S0 backups', 'talos-w-1', 3.5, 2.3, 'ok'),
        ('node_end', 'S0 backups', 'talos-cp-1', 6.0, 2.5, 'ok'),
        ('stage_end', 'S0 backups', None, 6.25, 5.25, 'ok'),
        ('stage_start', 'S1 wipe', None, 6.25, None, None),
        # A task that started before the stage counts from the stage's start.
        ('node_start', 'S1 wipe', 'talos-w-1', 6.25, None, None),
        ('node_failed', 'S1 wipe', 'talos-w-1', 7.0, 0.75, 'failed'),
        ('node_end', 'S1 wipe', 'talos-w-1', 7.0, 0.75, 'failed'),
        ('stage_end', 'S1 wipe', None, 9.0, 2.75, 'failed'),
    ]
    assert timeline.current is None


def test_document_is_json_with_times_from_the_start():
    timeline, _records = phoenix_like()
    document = json.loads(json.dumps(timeline.document('phoenix.yml')))
    assert document['playbook'] == 'phoenix.yml'
    assert document['total'] == 8.0
    first, second = document['stages']
    assert (first['name'], first['start'], first['end'], first['duration'], first['status']) == ('S0 backups', 1.0, 6.25, 5.25, 'ok')
    assert [(n['name'], n['start'], n['end'], n['duration']) for n in first['nodes']] == [
        ('localhost', 1.0, 1.2, 0.2), ('talos-w-1', 1.2, 3.5, 2.3), ('talos-cp-1', 3.5, 6.0, 2.5)]
    assert (second['name'], second['duration'], second['status']) == ('S1 wipe', 2.75, 'failed')
    assert second['nodes'][0]['status'] == 'failed'


def test_lines_carry_the_records_durations():
    _timeline, records = phoenix_like()
    lines = [line(record) for record in records]
    assert lines[0] == 'timeline   +1.0 s | S0 backups started'
    assert lines[5] == 'timeline   +3.5 s | S0 backups | talos-w-1 done 2.3 s'
    assert lines[7] == 'timeline   +6.2 s | S0 backups done 5.2 s'
    assert lines[10] == 'timeline   +7.0 s | S1 wipe | talos-w-1 failed after 0.8 s'
    assert lines[12] == 'timeline   +9.0 s | S1 wipe failed, 2.8 s'


@pytest.mark.parametrize('total, step', [(0.5, 0.1), (3.0, 0.5), (9.0, 1.0), (55.0, 10.0), (1200.0, 200.0)])
def test_tick_step(total, step):
    assert tick_step(total) == pytest.approx(step)
    assert total / tick_step(total) <= 10


def test_svg_has_a_bar_per_stage_and_node_with_the_json_durations():
    timeline, _records = phoenix_like()
    document = timeline.document('phoenix.yml')
    document['stages'][0]['nodes'][0]['name'] = 'a <node> & "more"'
    root = ET.fromstring(render_svg(document, 'Timeline of phoenix.yml').encode())
    assert root.tag == SVG + 'svg'
    bars = [rect for rect in root.iter(SVG + 'rect') if rect.get('class') in ('stage', 'node')]
    assert [rect.get('class') for rect in bars] == ['stage', 'node', 'node', 'node', 'stage', 'node']
    chart = rows(document)
    for rect, (_kind, label, start, end, duration, status) in zip(bars, chart):
        assert float(rect.get('data-start')) == pytest.approx(start) and float(rect.get('data-end')) == pytest.approx(end)
        assert rect.find(SVG + 'title').text == '{0}: {1:.1f} s ({2})'.format(label, round(duration, 1), status)
    # Bars are as wide as their durations, on one scale.
    widths = [float(rect.get('width')) for rect in bars]
    assert widths[0] / widths[4] == pytest.approx(5.25 / 2.75, rel=0.01)
    texts = [t.text for t in root.iter(SVG + 'text')]
    assert texts.count('5.2 s') == 1 and '2.8 s' in texts and 'a <node> & "more"' in texts
    assert {'0 s', '2 s', '8 s'} <= set(texts)
    # Self-contained: nothing it would load from elsewhere.
    assert not [e for e in root.iter() if any(k.endswith('href') for k in e.attrib)]


def stage_marks(node):
    """Every castle_stage a playbook or task file sets, in file order."""
    if isinstance(node, list):
        return [mark for entry in node for mark in stage_marks(entry)]
    if not isinstance(node, dict):
        return []
    own = [node['vars']['castle_stage']] if isinstance(node.get('vars'), dict) and 'castle_stage' in node['vars'] else []
    return own + [mark for key, value in node.items() if key != 'vars' for mark in stage_marks(value)]


def test_phoenix_marks_the_stages_of_its_summary_in_order():
    phoenix = yaml.safe_load((REPO / 'playbooks' / 'phoenix.yml').read_text())
    prove = yaml.safe_load((REPO / 'roles' / 'phoenix_prove' / 'tasks' / 'main.yml').read_text())
    marks = stage_marks(phoenix)
    # S3 starts inside the role phoenix_prove, which the S2 play includes before the summary.
    at = marks.index('S2 join') + 1
    marks[at:at] = stage_marks(prove)
    started = [mark for i, mark in enumerate(marks) if mark and (i == 0 or marks[i - 1] != mark)]
    summary = next(task for play in phoenix for task in play.get('tasks', []) if task['name'] == "Each stage's duration")
    printed = [re.match(r'(S\d \w+) ', text).group(1) for text in summary['vars']['phoenix_summary'] if re.match(r'S\d ', text)]
    assert started == printed == ['S0 backups', 'S0 gate', 'S1 wipe', 'S1 rebuild', 'S2 join', 'S3 prove']
    # The task before the summary ends the last stage, at the summary's end mark.
    tasks = [task for play in phoenix for task in play.get('tasks', [])]
    stop = tasks[tasks.index(summary) - 1]
    assert marks[-1] == '' and stop['vars'] == {'castle_stage': '', 'castle_stage_mark': 'phoenix_marks.end'}
    assert summary['vars']['phoenix_end'] == '{{ phoenix_marks.end }}'


def test_bootstrap_plays_name_their_stages():
    marks = [stage_marks(yaml.safe_load((REPO / 'playbooks' / name).read_text()))
             for name in ('talos.yml', 'flux.yml', 'vault.yml', 'bootstrap.yml', 'rotate.yml')]
    assert marks == [['talos'], ['flux'], ['vault'], ['openclaw'], ['rotate']]
