"""The timeline callback (ephemeral.castle.timeline) through ansible-playbook beside the default stdout callback,
and through ansible-runner's event stream, without the lab: a playbook shaped like phoenix.yml (stage marks on
plays, tasks, an import_playbook and an include's loop; stage durations printed from now() marks as phoenix.yml
prints its summary) in tmp_path, with only ansible.builtin modules."""

import json
import os
import re
import xml.etree.ElementTree as ET

import pytest
from harness import play_recap, run_playbook

from conftest import REPO

SVG = '{http://www.w3.org/2000/svg}'

INVENTORY = """\
all:
  hosts:
    localhost: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
  children:
    nodes:
      hosts:
        node-a: {}
        node-b: {}
"""

MAIN = """\
- name: Before the stages
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Outside every stage
      ansible.builtin.command: sleep 0.3
      changed_when: false

- name: First two stages
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Start the clock
      ansible.builtin.set_fact:
        marks: {first: "{{ now(utc=true).timestamp() }}"}
      vars:
        castle_stage: S0 first
        castle_stage_mark: marks.first
    - name: Each node in turn
      ansible.builtin.command: sleep 0.3
      loop: [node-a, node-b]
      changed_when: false
    - name: Start the second stage
      ansible.builtin.set_fact:
        marks: "{{ marks | combine({'second': now(utc=true).timestamp()}) }}"
      vars:
        castle_stage: S1 second
        castle_stage_mark: marks.second
    - name: One include per node
      ansible.builtin.include_tasks: turn.yml
      loop: [{name: node-a}, {name: node-b}]
      loop_control:
        label: "{{ item.name }}"

- name: Imported, its own stage overridden
  ansible.builtin.import_playbook: sub.yml
  vars:
    castle_stage: S1 second

- name: Last stage and the summary
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Start the last stage
      ansible.builtin.set_fact:
        marks: "{{ marks | combine({'third': now(utc=true).timestamp()}) }}"
      vars:
        castle_stage: S2 third
        castle_stage_mark: marks.third
    - name: A failure the play ignores
      ansible.builtin.command: sh -c 'sleep 0.3; exit 1'
      ignore_errors: true
      changed_when: false
    - name: Stop the clock
      ansible.builtin.set_fact:
        marks: "{{ marks | combine({'end': now(utc=true).timestamp()}) }}"
      vars:
        castle_stage: ''
        castle_stage_mark: marks.end
    - name: Each stage's duration
      ansible.builtin.debug:
        msg: "{{ {'S0 first': marks.second | float - marks.first | float,
                  'S1 second': marks.third | float - marks.second | float,
                  'S2 third': marks.end | float - marks.third | float} | to_json }}"
"""

TURN = """\
- name: Turn of {{ item.name }}
  ansible.builtin.command: sleep 0.3
  changed_when: false
"""

SUB = """\
- name: A play with a stage of its own
  hosts: localhost
  gather_facts: false
  vars:
    castle_stage: sub
  tasks:
    - name: Imported work
      ansible.builtin.command: sleep 0.3
      changed_when: false
"""

LINE = re.compile(r'^timeline +\+(\d+\.\d) s \| ([^|]+?)(?: \| (\S+))? (started|done|failed,|failed after)(?: (\d+\.\d) s)?$')


@pytest.fixture
def playbook(tmp_path):
    for name, text in (('inventory.yml', INVENTORY), ('main.yml', MAIN), ('turn.yml', TURN), ('sub.yml', SUB)):
        (tmp_path / name).write_text(text)
    return tmp_path


def callback_env(tmp_path, **extra):
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_LOCALHOST_WARNING='false',
                ANSIBLE_NOCOLOR='1', ANSIBLE_CALLBACKS_ENABLED='ephemeral.castle.timeline',
                CASTLE_TIMELINE_DIR=str(tmp_path / 'out'), CASTLE_TIMELINE_RECORDS=str(tmp_path / 'records.jsonl'),
                **extra)


def summary(stdout):
    """The durations the playbook itself printed from its now() marks."""
    return json.loads(re.search(r'"msg": "(\{.*\})"', stdout).group(1).replace('\\"', '"'))


def check_timeline(tmp_path, lines, printed):
    document = json.loads((tmp_path / 'out' / 'main-timeline.json').read_text())
    stages = {stage['name']: stage for stage in document['stages']}
    assert [stage['name'] for stage in document['stages']] == ['S0 first', 'S1 second', 'S2 third']
    # The stages start and end at the playbook's own marks (castle_stage_mark), to the JSON's millisecond. A task
    # counted in the wrong stage would move one by 0.3 s.
    for name, seconds in printed.items():
        assert abs(stages[name]['duration'] - seconds) < 0.002, (name, stages[name], seconds)
    assert {node['name'] for node in stages['S0 first']['nodes']} == {'localhost', 'node-a', 'node-b'}
    assert {node['name'] for node in stages['S1 second']['nodes']} == {'localhost', 'node-a', 'node-b'}
    assert stages['S2 third']['status'] == 'ok'
    first = {node['name']: node for node in stages['S0 first']['nodes']}
    # node-b's item ran after node-a's.
    assert first['node-b']['start'] >= first['node-a']['end'] - 0.001
    # The lines give each stage and node with the JSON's durations.
    ends = {(m.group(2), m.group(3)): m.group(5) for m in map(LINE.match, lines) if m and m.group(4) == 'done'}
    for stage in document['stages']:
        assert ends[(stage['name'], None)] == '{0:.1f}'.format(round(stage['duration'], 1))
        for node in stage['nodes']:
            assert ends[(stage['name'], node['name'])] == '{0:.1f}'.format(round(node['duration'], 1))
    records = [json.loads(text) for text in (tmp_path / 'records.jsonl').read_text().splitlines()]
    assert [r['stage'] for r in records if r['event'] == 'stage_start'] == ['S0 first', 'S1 second', 'S2 third']
    assert len(records) == len(lines)
    # The chart: one bar per stage and node, each labelled with the JSON's duration.
    root = ET.parse(tmp_path / 'out' / 'main-timeline.svg').getroot()
    bars = [rect for rect in root.iter(SVG + 'rect') if rect.get('class') in ('stage', 'node')]
    assert len(bars) == sum(1 + len(stage['nodes']) for stage in document['stages'])
    texts = [t.text for t in root.iter(SVG + 'text')]
    for stage in document['stages']:
        assert '{0:.1f} s'.format(round(stage['duration'], 1)) in texts


def test_stages_and_nodes_beside_the_default_callback(playbook):
    proc = run_playbook(callback_env(playbook), playbook / 'main.yml', '-i', str(playbook / 'inventory.yml'), cwd=playbook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The default callback's output is all there, the timeline's lines between.
    assert play_recap(proc)['localhost']['ignored'] == 1
    assert 'TASK [Each node in turn]' in proc.stdout
    lines = [text for text in proc.stdout.splitlines() if text.startswith('timeline ')]
    assert all(LINE.match(text) for text in lines), lines
    assert lines[0].endswith('S0 first started')
    assert 'sub' not in {LINE.match(text).group(2) for text in lines}
    check_timeline(playbook, lines, summary(proc.stdout))
    assert 'timeline: written to {0}.json'.format(playbook / 'out' / 'main-timeline') in proc.stdout


def test_live_lines_off_still_writes_the_timeline(playbook):
    env = callback_env(playbook, CASTLE_TIMELINE_LIVE='false', CASTLE_TIMELINE_NAME='run')
    proc = run_playbook(env, playbook / 'main.yml', '-i', str(playbook / 'inventory.yml'), cwd=playbook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [text for text in proc.stdout.splitlines() if text.startswith('timeline ')]
    assert json.loads((playbook / 'out' / 'run.json').read_text())['stages']
    assert (playbook / 'out' / 'run.svg').exists()
    assert (playbook / 'records.jsonl').read_text()


def test_lines_are_events_of_ansible_runner(playbook):
    ansible_runner = pytest.importorskip('ansible_runner')
    env = callback_env(playbook)
    runner_env = {key: env[key] for key in env if key.startswith(('ANSIBLE_', 'CASTLE_'))}
    (playbook / 'runner').mkdir()
    result = ansible_runner.run(private_data_dir=str(playbook / 'runner'), playbook=str(playbook / 'main.yml'),
                                inventory=str(playbook / 'inventory.yml'), envvars=runner_env, quiet=True,
                                project_dir=str(playbook))
    assert result.rc == 0, result.stdout.read()
    events = list(result.events)
    lines = [line for event in events for line in event.get('stdout', '').splitlines() if line.startswith('timeline ')]
    assert lines and all(LINE.match(text) for text in lines), lines
    # They arrive as events of their own, in order with the task events.
    kinds = [event['event'] for event in events if LINE.match(event.get('stdout', ''))]
    assert set(kinds) == {'verbose'}
    assert 'runner_on_ok' in {event['event'] for event in events}
    printed = next(json.loads(event['event_data']['res']['msg']) for event in events
                   if event['event'] == 'runner_on_ok' and event['event_data'].get('task') == "Each stage's duration")
    check_timeline(playbook, lines, printed)


def test_phoenix_of_a_machine_gives_the_stages_and_durations_of_its_summary(tmp_path):
    """phoenix.yml itself, without the lab: a machine target outside the clusters, overridden at the gate, runs
    every play (the rebuild's tasks skipped); its timeline sits beside the fleet file and its journal."""
    directory = tmp_path / 'inventory'
    directory.mkdir()
    (directory / 'site.fleet.yml').write_text(json.dumps({'plugin': 'ephemeral.castle.fleet', 'live': False, 'fleet': {
        'machines': [{'name': 'pve-old', 'role': 'frozen', 'state': 'draining'}],
        'clusters': [{'name': 'castle', 'nodes': [{'name': 'cp-1', 'role': 'controlplane'}]}]}}))
    (directory / 'hosts.yml').write_text(json.dumps({'all': {'children': {'controller': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}'}}}}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'CASTLE_', 'PROXMOX_'))}
    env.update(ANSIBLE_CALLBACKS_ENABLED='ephemeral.castle.timeline', ANSIBLE_NOCOLOR='1')
    proc = run_playbook(env, REPO / 'playbooks' / 'phoenix.yml', '-e', 'target=pve-old', '-e',
                        'phoenix_override_reason=no workloads left', inventory=directory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    summary = dict(re.findall(r'"(S\d \w+|total) ([0-9.]+) s"', proc.stdout.rsplit("TASK [Each stage's duration]", 1)[1]))
    document = json.loads((directory / 'phoenix-timeline.json').read_text())
    assert (directory / 'phoenix-journal.md').exists()
    # A machine has no S3 (its summary prints 0.0 s for it): every other stage, with the summary's durations.
    assert [stage['name'] for stage in document['stages']] == ['S0 backups', 'S0 gate', 'S1 wipe', 'S1 rebuild', 'S2 join']
    assert summary['S3 prove'] == '0.0'
    for stage in document['stages']:
        assert '{0:.1f}'.format(round(stage['duration'], 1)) == summary[stage['name']], (stage, summary)
    assert '{0:.1f}'.format(round(document['total'], 1)) == summary['total']
    done = {m.group(2): m.group(5) for m in map(LINE.match, proc.stdout.splitlines()) if m and not m.group(3) and m.group(4) == 'done'}
    assert done == {stage['name']: '{0:.1f}'.format(round(stage['duration'], 1)) for stage in document['stages']}
    texts = {t.text for t in ET.parse(directory / 'phoenix-timeline.svg').getroot().iter(SVG + 'text')}
    assert {'S0 backups', 'S2 join', 'localhost'} <= texts
