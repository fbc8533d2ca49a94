"""`systemctl` for hosts whose init is the lab's service manager (castle_lab.mesh.units).

Verbs, output and exit codes after systemd 252's src/systemctl (LSB codes for status and is-active: 0 active,
3 not active, 4 no such unit). Enablement (enable, disable, mask, unmask) works on the files, as systemctl does.
"""

import fnmatch
import json
import os
import socket
import sys
import time

from castle_lab.mesh import unitfile as uf
from castle_lab.mesh.units import SOCKET

VALUE_OPTIONS = {"-p": "property", "--property": "property", "-t": "type", "--type": "type", "--state": "state",
                 "-s": "signal", "--signal": "signal", "--kill-whom": "who", "-n": "lines", "--lines": "lines",
                 "-o": "output", "--output": "output", "-P": "value_property"}
FLAG_OPTIONS = {"--no-pager": "no_pager", "--no-block": "no_block", "-q": "quiet", "--quiet": "quiet", "--system": "system",
                "-a": "all", "--all": "all", "--plain": "plain", "--no-legend": "no_legend", "--value": "value",
                "--now": "now", "-l": "full", "--full": "full", "--no-reload": "no_reload", "--force": "force", "-f": "force",
                "--no-ask-password": "no_ask", "-r": "recursive", "--failed": "failed"}
UNIT_VERBS = ("start", "stop", "restart", "try-restart", "reload", "reload-or-restart", "try-reload-or-restart",
              "condrestart", "force-reload")
ENABLED = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "transient")
SHOW_ORDER = ("Type", "Restart", "MainPID", "ExecMainPID", "ExecMainCode", "ExecMainStatus", "NRestarts", "StatusText",
              "Id", "Names", "Description", "LoadState", "LoadError", "ActiveState", "SubState", "Result", "FragmentPath",
              "DropInPaths", "UnitFileState", "UnitFilePreset", "ActiveEnterTimestamp", "ActiveExitTimestamp",
              "InactiveEnterTimestamp", "InactiveExitTimestamp")


class Failure(Exception):
    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def shim_script(python_executable):
    """The two-line /usr/bin/systemctl a host bind-mounts over the real one."""
    return f'#!/bin/sh\nexec {python_executable} -m castle_lab.mesh.systemctl "$@"\n'


def call(cmd, units=(), **args):
    path = os.environ.get("CASTLE_LAB_UNITS_SOCKET", SOCKET)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            with sock.makefile("rwb") as stream:
                stream.write(json.dumps({"cmd": cmd, "units": list(units), "args": args}).encode() + b"\n")
                stream.flush()
                reply = json.loads(stream.readline())
    except (OSError, ValueError) as exc:
        raise Failure("System has not been booted with systemd as init system (PID 1). Can't operate.\n"
                      f"Failed to connect to bus: Host is down ({exc})") from exc
    if "error" in reply:
        raise Failure(reply["error"])
    return reply


def mangle(name):
    return name if uf.split_name(name)[2] in uf.UNIT_TYPES + ("socket", "mount", "path", "slice", "scope", "device") \
        else name + ".service"


def parse(argv):
    opts, args, i = {"property": []}, [], 0
    while i < len(argv):
        token = argv[i]
        key, eq, value = token.partition("=")
        if token == "--user":
            raise Failure("The lab's service manager is the system manager only: --user is not supported.")
        if token in VALUE_OPTIONS or (eq and key in VALUE_OPTIONS):
            if not eq:
                i += 1
                if i >= len(argv):
                    raise Failure(f"option '{token}' requires an argument")
                value = argv[i]
            name = VALUE_OPTIONS[key if eq else token]
            if name in ("property", "value_property"):
                opts["property"].extend(v for v in value.split(",") if v)
                opts["value"] = opts.get("value") or name == "value_property"
            else:
                opts[name] = value
        elif token.startswith("-p") and len(token) > 2:
            opts["property"].extend(token[2:].split(","))
        elif token in FLAG_OPTIONS:
            opts[FLAG_OPTIONS[token]] = True
        elif token.startswith("-") and token != "-":
            raise Failure(f"unrecognized option '{token}'")
        else:
            args.append(token)
        i += 1
    return opts, args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, args = parse(argv)
        verb, names = (args[0], [mangle(n) for n in args[1:]]) if args else ("list-units", [])
        handler = VERBS.get(verb)
        if handler is None:
            raise Failure(f"Unknown command verb '{verb}'.")
        return handler(opts, names) or 0
    except Failure as exc:
        print(str(exc), file=sys.stderr)
        return exc.code


def job(opts, names, verb):
    if not names:
        raise Failure(f"Too few arguments.")
    verb = {"condrestart": "try-restart", "force-reload": "try-reload-or-restart"}.get(verb, verb)
    reply = call(verb, names, no_block=bool(opts.get("no_block")))
    code = 0
    for name in names:
        result, props = reply["results"][name], reply["units"][name]
        warn_reload(name, props)
        what = verb.split("-")[-1] if verb != "reload-or-restart" else "reload-or-restart"
        if result in ("done", "queued"):
            continue
        code = 1
        if result == "not-found":
            print(f"Failed to {what} {name}: Unit {name} {'not found' if what != 'stop' else 'not loaded'}.", file=sys.stderr)
            code = 5
        elif result == "masked":
            print(f"Failed to {what} {name}: Unit {name} is masked.", file=sys.stderr)
        elif result == "bad-setting":
            print(f"Failed to {what} {name}: Unit {name} has a bad unit file setting.\n"
                  f"See system logs and 'systemctl status {name}' for details.", file=sys.stderr)
        elif result == "not-applicable":
            print(f"Failed to reload {name}: Job type reload is not applicable for unit {name}.", file=sys.stderr)
        elif result == "inactive":
            print(f"Job for {name} failed.\nSee \"systemctl status {name}\" and \"journalctl -xeu {name}\" for details.",
                  file=sys.stderr)
        else:
            reason = JOB_REASONS.get(result)
            text = f"Job for {name} failed" + (f" because {reason}." if reason else ".")
            text += f"\nSee \"systemctl status {name}\" and \"journalctl -xeu {name}\" for details."
            if result == "start-limit-hit":
                text += f"\nTo force a start use \"systemctl reset-failed {name}\"\nfollowed by \"systemctl start {name}\" again."
            print(text, file=sys.stderr)
    return code


JOB_REASONS = {"exit-code": "the control process exited with error code",
               "signal": "a fatal signal was delivered to the control process",
               "core-dump": "a fatal signal was delivered causing the control process to dump core",
               "timeout": "a timeout was exceeded", "start-limit-hit": "start of the service was attempted too often",
               "dependency": "a dependency job failed", "resources": "of unavailable resources or another system error",
               "protocol": "the service did not take the steps required by its unit configuration"}


def warn_reload(name, props):
    if props.get("NeedDaemonReload") == "yes":
        print(f"Warning: The unit file, source configuration file or drop-ins of {name} changed on disk. "
              "Run 'systemctl daemon-reload' to reload units.", file=sys.stderr)


def show(opts, names):
    units = call("show", names)["units"] if names else {
        "": {"Version": "252 (castle-lab)", "SystemState": call("is-system-running")["state"], "Environment": f"PATH={uf.DEFAULT_PATH}"}}
    wanted, blocks = opts["property"], []
    for name in names or [""]:
        props = units[name]
        keys = [k for k in SHOW_ORDER if k in props] + sorted(k for k in props if k not in SHOW_ORDER)
        if wanted:
            keys = wanted
        lines = [(props[k] if opts.get("value") else f"{k}={props[k]}") for k in keys if k in props]
        blocks.append("\n".join(lines))
    print("\n\n".join(blocks))


def status(opts, names):
    units = call("show", names)["units"] if names else {}
    if not names:
        state = call("is-system-running")["state"]
        print(f"● {socket.gethostname()}\n    State: {state}")
        return 0
    code = 0
    for name in names:
        p = units[name]
        if p["LoadState"] == "not-found" and p["ActiveState"] == "inactive":
            print(f"Unit {name} could not be found.", file=sys.stderr)
            code = max(code, 4)
            continue
        dot = "×" if p["ActiveState"] == "failed" else "●" if p["ActiveState"] == "active" else "○"
        print(f"{dot} {p['Id']} - {p['Description']}")
        if p["LoadState"] == "loaded":
            print(f"     Loaded: loaded ({p['FragmentPath']}; {p['UnitFileState']}; preset: {p['UnitFilePreset']})")
        elif p["LoadState"] == "masked":
            print("     Loaded: masked (Reason: Unit {0} is masked.)".format(name))
        else:
            print(f"     Loaded: {p['LoadState']} (Reason: Unit {name} has a bad unit file setting.)")
            print(f"      Error: {p.get('LoadError', '')}")
        key = "ActiveEnterTimestamp" if p["ActiveState"] == "active" else "InactiveEnterTimestamp"
        since = p[key] and f" since {p[key]}; {int(time.monotonic() - int(p[key + 'Monotonic']) / 1e6)}s ago"
        result = f" (Result: {p['Result']})" if p.get("Result", "success") != "success" else ""
        sub = f" ({p['SubState']})" if p["SubState"] != p["ActiveState"] else ""
        print(f"     Active: {p['ActiveState']}{sub if not result else result}{since}")
        if p.get("ConditionResult") == "no":
            print("  Condition: start condition failed")
        if p.get("MainPID", "0") != "0":
            print(f"   Main PID: {p['MainPID']} ({command_name(p['MainPID'])})")
        elif p.get("ExecMainPID", "0") != "0":
            print(f"    Process: {p['ExecMainPID']} ExecStart (code={ {'1': 'exited', '2': 'killed', '3': 'dumped'}[p['ExecMainCode']]}, "
                  f"status={p['ExecMainStatus']})")
        if p.get("StatusText"):
            print(f"     Status: \"{p['StatusText']}\"")
        if p.get("Unit"):
            print(f"    Trigger: {p['Unit']}")
        warn_reload(name, p)
        if p["ActiveState"] not in ("active", "reloading"):
            code = max(code, 3)
    return code


def command_name(pid):
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return "?"


def check(opts, names, good, code_bad):
    if not names:
        raise Failure("Too few arguments.")
    units = call("show", names)["units"]
    states = [units[n]["ActiveState"] for n in names]
    if not opts.get("quiet"):
        print("\n".join(states))
    if any(s in good for s in states):
        return 0
    return 4 if all(units[n]["LoadState"] == "not-found" for n in names) else code_bad  # LSB: status unknown


def is_enabled(opts, names):
    if not names:
        raise Failure("Too few arguments.")
    ok = False
    for name in names:
        state = uf.unit_file_state(name)
        if state == "not-found":
            raise Failure(f"Failed to get unit file state for {name}: No such file or directory")
        ok = ok or state in ENABLED
        if not opts.get("quiet"):
            print(state)
    return 0 if ok else 1


NO_INSTALL = """The unit files have no installation config (WantedBy=, RequiredBy=, Also=,
Alias= settings in the [Install] section, and DefaultInstance= for template
units). This means they are not meant to be enabled using systemctl.
 
Possible reasons for having this kind of units are:
• A unit may be statically enabled by being symlinked from another unit's
  .wants/ or .requires/ directory.
• A unit's purpose may be to act as a helper for some other unit which has
  a requirement dependency on it.
• A unit may be started when needed via activation (socket, path, timer,
  D-Bus, udev, scripted systemctl call, ...).
• In case of template units, the unit is meant to be enabled with some
  instance name specified."""


def enable(opts, names, verb):
    """enable/disable as systemctl does it on the files: the [Install] symlinks, pointing at the unit's fragment."""
    if not names:
        raise Failure("Too few arguments.")
    changed, todo = False, list(names)
    while todo:
        name = todo.pop(0)
        fragment, masked, real, dropins = uf.find_unit(name)
        if masked:
            path = os.path.join(uf.UNIT_DIRS[0], name)
            if verb == "enable":
                raise Failure(f"Failed to enable unit, unit {path} is masked.")
            print(f"Unit {path} is masked, ignoring.", file=sys.stderr)
            continue
        if fragment is None:
            if verb == "enable":
                raise Failure(f"Failed to enable unit, unit {name} does not exist.")
            print(f"Failed to disable unit, unit {name} does not exist.", file=sys.stderr)
            continue
        if real != name:
            name, fragment = real, os.path.realpath(fragment)
        links, also = uf.install_links(name, fragment, dropins)
        todo.extend(a for a in also if a not in names)
        if verb == "enable":
            if not links and not also:
                print(NO_INSTALL, file=sys.stderr)
            for link in links:
                if os.path.islink(link) and os.readlink(link) == fragment:
                    continue
                if os.path.lexists(link):
                    raise Failure(f'Failed to enable unit, file "{link}" already exists.')
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(fragment, link)
                print(f"Created symlink {link} → {fragment}.", file=sys.stderr)
                changed = True
        else:
            for link in sorted(set(uf.symlinks_to(name)) | {l for l in links if os.path.islink(l) and os.readlink(l) == fragment}):
                os.unlink(link)
                print(f'Removed "{link}".', file=sys.stderr)
                changed = True
    if changed and not opts.get("no_reload"):
        call("daemon-reload")
    if opts.get("now"):
        return job(opts, names, "start" if verb == "enable" else "stop")
    return 0


def mask(opts, names, verb):
    if not names:
        raise Failure("Too few arguments.")
    for name in names:
        path = os.path.join(uf.UNIT_DIRS[0], name)
        is_mask = os.path.islink(path) and os.readlink(path) == "/dev/null"
        if verb == "mask" and not is_mask:
            if os.path.lexists(path):
                raise Failure(f'Failed to mask unit, file "{path}" already exists.')
            os.makedirs(uf.UNIT_DIRS[0], exist_ok=True)
            os.symlink("/dev/null", path)
            print(f"Created symlink {path} → /dev/null.", file=sys.stderr)
        elif verb == "unmask" and is_mask:
            os.unlink(path)
            print(f'Removed "{path}".', file=sys.stderr)
    if not opts.get("no_reload"):
        call("daemon-reload")
    if opts.get("now") and verb == "mask":
        return job(opts, names, "stop")
    return 0


def table(rows, header, opts):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header) - 1)]
    lines = [] if opts.get("no_legend") else [" ".join(h.ljust(w) for h, w in zip(header, widths)) + " " + header[-1]]
    for row in rows:
        lines.append(" ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " " + str(row[-1]))
    return lines


def matches(name, patterns, opts):
    utypes = opts.get("type", "").split(",") if opts.get("type") else []
    return (not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)) and \
        (not utypes or uf.split_name(name)[2] in utypes)


def list_units(opts, names):
    names = [n[:-len(".service")] if n.endswith(".service") and any(c in n for c in "*?[") else n for n in names]
    units = call("list")["units"]
    states = opts.get("state", "").split(",") if opts.get("state") else []
    rows = []
    for name, p in sorted(units.items()):
        if not matches(name, names, opts):
            continue
        if states and not {p["LoadState"], p["ActiveState"], p["SubState"]} & set(states):
            continue
        if not states and not opts.get("all") and p["ActiveState"] in ("inactive",) and p["LoadState"] != "bad-setting":
            continue
        if opts.get("failed") and p["ActiveState"] != "failed":
            continue
        mark = "" if opts.get("plain") else ("● " if p["ActiveState"] == "failed" or p["LoadState"] != "loaded" else "  ")
        rows.append((mark + name, p["LoadState"], p["ActiveState"], p["SubState"], p["Description"]))
    header = ("UNIT" if opts.get("plain") else "  UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION")
    print("\n".join(table(rows, header, opts)))
    if not opts.get("no_legend"):
        print("\nLOAD   = Reflects whether the unit definition was properly loaded.\n"
              "ACTIVE = The high-level unit activation state, i.e. generalization of SUB.\n"
              "SUB    = The low-level unit activation state, values depend on unit type.\n"
              f"{len(rows)} loaded units listed." + ("" if opts.get("all") else " Pass --all to see loaded but inactive units, too."))


def list_unit_files(opts, names):
    names = [n[:-len(".service")] if n.endswith(".service") and any(c in n for c in "*?[") else n for n in names]
    found = set()
    for unit_dir in uf.UNIT_DIRS:
        if os.path.isdir(unit_dir):
            found.update(n for n in os.listdir(unit_dir) if uf.split_name(n)[2] in uf.UNIT_TYPES)
    rows = []
    for name in sorted(found):
        if matches(name, names, opts):
            state = uf.unit_file_state(name)
            if state != "not-found":
                rows.append((name, state, "enabled" if state not in ("static", "alias", "masked") else "-"))
    print("\n".join(table(rows, ("UNIT FILE", "STATE", "PRESET"), opts)))
    if not opts.get("no_legend"):
        print(f"\n{len(rows)} unit files listed.")
    return 0 if rows else 1


def list_timers(opts, names):
    units = call("list")["units"]
    rows, mono_now = [], time.monotonic()
    for name, p in sorted(units.items()):
        if not name.endswith(".timer") or not matches(name, names, opts) or (p["ActiveState"] != "active" and not opts.get("all")):
            continue
        nxt = int(p.get("NextElapseUSecMonotonic", "0")) / 1e6
        left = f"{max(0, nxt - mono_now):.0f}s left" if nxt else "-"
        when = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() + nxt - mono_now)) if nxt else "-"
        rows.append((when, left, p.get("LastTriggerUSec") or "-", name, p.get("Unit", "")))
    print("\n".join(table(rows, ("NEXT", "LEFT", "LAST", "UNIT", "ACTIVATES"), opts)))
    if not opts.get("no_legend"):
        print(f"\n{len(rows)} timers listed.")


def cat(opts, names):
    code = 0
    for name in names:
        fragment, masked, _real, dropins = uf.find_unit(name)
        if masked or fragment is None:
            print(f"No files found for {name}.", file=sys.stderr)
            code = 1
            continue
        for path in [fragment, *dropins]:
            with open(path, encoding="utf-8") as handle:
                print(f"# {path}\n{handle.read().rstrip()}\n")
    return code


def kill(opts, names):
    import signal  # pylint: disable=import-outside-toplevel
    sig = opts.get("signal", "SIGTERM")
    number = int(sig) if sig.isdigit() else getattr(signal, sig if sig.startswith("SIG") else "SIG" + sig, None)
    if number is None:
        raise Failure(f"Unknown signal '{sig}'.")
    call("kill", names, signal=int(number), who=opts.get("who", "all"))


def system_running(opts, _names, good="running"):
    state = call("is-system-running")["state"]
    if not opts.get("quiet"):
        print(state)
    return 0 if state == good else 1


def simple(cmd):
    def run(_opts, names):
        call(cmd, names)
    return run


VERBS = {verb: (lambda v: lambda o, n: job(o, n, v))(verb) for verb in UNIT_VERBS}
VERBS.update({"show": show, "status": status, "cat": cat, "kill": kill, "is-enabled": is_enabled,
              "is-active": lambda o, n: check(o, n, ("active", "reloading"), 3),
              "is-failed": lambda o, n: check(o, n, ("failed",), 1) if n else system_running(o, n, good="degraded"),
              "enable": lambda o, n: enable(o, n, "enable"), "disable": lambda o, n: enable(o, n, "disable"),
              "reenable": lambda o, n: enable(o, n, "disable") or enable(o, n, "enable"),
              "mask": lambda o, n: mask(o, n, "mask"), "unmask": lambda o, n: mask(o, n, "unmask"),
              "list-units": list_units, "list-unit-files": list_unit_files, "list-timers": list_timers,
              "daemon-reload": simple("daemon-reload"), "daemon-reexec": simple("daemon-reload"),
              "reset-failed": simple("reset-failed"), "is-system-running": system_running})


if __name__ == "__main__":
    sys.exit(main())
