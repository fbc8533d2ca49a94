"""The lab's service manager: runs systemd unit files (services, timers, targets) as a host's init.

`python -m castle_lab.mesh.units --log FILE [--socket PATH]`; `castle_lab.mesh.systemctl` is its client.
Semantics after systemd 252: src/core/service.c (states, restart, results), src/core/timer.c, src/core/unit.c (start
limit), systemd.service(5)/systemd.exec(5)/systemd.kill(5). Every unit file also passes `systemd-analyze verify`.
"""

import argparse
import ctypes
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import traceback
import uuid

from castle_lab.mesh import unitfile as uf

SOCKET = "/run/castle-lab/units.sock"
NOTIFY_SOCKET = "/run/systemd/notify"
BOOT_TARGETS = ("multi-user.target", "timers.target")
ACTIVE = {"dead": "inactive", "condition": "activating", "start-pre": "activating", "start": "activating",
          "start-post": "activating", "running": "active", "exited": "active", "reload": "reloading",
          "stop": "deactivating", "stop-sigterm": "deactivating", "stop-sigkill": "deactivating",
          "stop-post": "deactivating", "failed": "failed", "auto-restart": "activating",
          "waiting": "active", "elapsed": "active", "active": "active"}
CLEAN_SIGNALS = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE}
RESTART_ON = {"no": lambda result: False, "always": lambda result: True, "on-success": lambda result: result == "success",
              "on-failure": lambda result: result != "success",
              "on-abnormal": lambda result: result not in ("success", "exit-code"),
              "on-abort": lambda result: result in ("signal", "core-dump"), "on-watchdog": lambda result: result == "watchdog"}
DEPS = ("Wants", "Requires", "After", "Before")
SPAWN_ERRORS = (OSError, KeyError, uf.UnitError, subprocess.SubprocessError)


def processes():
    """(pid, parent pid, session id) of every live process."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                    fields = handle.read().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[0] != "Z":
                found.append((int(entry), int(fields[1]), int(fields[3])))
    return found


def passwd(user):
    """The passwd entry of a User= value (a name or a numeric UID); KeyError if there is none."""
    return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)


class Proc:
    """A child process of the manager; `done` is set once the reaper collected its status."""

    def __init__(self, popen):
        self.pid, self.popen, self.done, self.status = popen.pid, popen, threading.Event(), None

    def code(self):
        """("exited", code) or ("killed"/"dumped", signal number)."""
        if os.WIFSIGNALED(self.status):
            return ("dumped" if os.WCOREDUMP(self.status) else "killed"), os.WTERMSIG(self.status)
        return "exited", os.WEXITSTATUS(self.status)


class Unit:
    """A loaded unit: its settings (or load error) and runtime state."""

    def __init__(self, manager, name):
        self.m, self.name, self.job = manager, name, threading.Lock()
        self.sub, self.result, self.main, self.main_code = "dead", "success", None, ("exited", 0)
        self.n_restarts, self.starts, self.stopping, self.ready, self.status_text = 0, [], False, False, ""
        self.stamps, self.sessions, self.last_trigger, self.timer_base, self.restart_at = {}, set(), None, None, None
        self.condition_ok, self.invocation, self.last_code, self.exec_main_pid = True, "", ("exited", 0), 0
        self.load()

    # ---- loading ----
    def load(self):
        """(Re)read the unit's files; a unit that is running keeps the settings it was started with if they go bad."""
        kept = self.file if getattr(self, "file", None) and self.active not in ("inactive", "failed") else None
        self.load_state, self.load_error, self.file, self.hash = "loaded", "", kept, None
        self.utype, self.deps, self.limit = uf.split_name(self.name)[2], {k: [] for k in DEPS}, (10.0, 5)
        fragment, masked, real, dropins = uf.find_unit(self.name)
        self.fragment, self.dropins, self.names = fragment, dropins, sorted({self.name, real})
        if masked:
            self.load_state = "masked"
            return
        if fragment is None:
            if self.name in BOOT_TARGETS + ("default.target",):
                self.file = None
                return
            self.load_state, self.load_error = "not-found", f"Unit {self.name} not found."
            return
        try:
            self.hash = uf.content_hash([fragment, *dropins])
            problems = self.m.verify(fragment, dropins, self.hash)
            self.file = uf.UnitFile(self.name, fragment, dropins)
            self.check()
            if problems:
                raise uf.UnitError("; ".join(problems))
        except (uf.UnitError, OSError, UnicodeDecodeError) as exc:
            self.load_state, self.load_error, self.file = "bad-setting", str(exc), kept
            self.m.log(f"{self.name}: {exc}")

    def check(self):
        f = self.file
        self.utype = f.utype
        self.deps = {k: f.get("Unit", k, []) for k in DEPS}
        self.limit = (f.seconds("Unit", "StartLimitIntervalSec", 10.0), int(f.one("Unit", "StartLimitBurst", "5")))
        if f.utype == "timer":
            self.triggers = [(key, uf.parse_timespan(v)) for key in uf.SECTIONS["timer"]["Timer"]
                             if key.startswith("On") and key != "OnCalendar" for v in f.get("Timer", key, [])]
            self.calendar = [uf.parse_calendar(v) for v in f.get("Timer", "OnCalendar", [])]
            self.calendar_next = None
            f.flag("Timer", "RemainAfterElapse", True)
            if not self.triggers and not self.calendar:
                raise uf.UnitError(f"{self.name}: Timer unit lacks value setting. Refusing.")
            self.target = f.one("Timer", "Unit", self.name.rpartition(".")[0] + ".service")
            return
        if f.utype != "service":
            return
        self.type = f.one("Service", "Type", "simple")
        if self.type not in ("simple", "exec", "oneshot", "notify"):
            raise uf.UnitError(f"{self.name}: Type={self.type} is not supported by the lab's service manager")
        self.restart = f.one("Service", "Restart", "no")
        if self.restart not in RESTART_ON:
            raise uf.UnitError(f"{self.name}: Failed to parse service restart specifier: {self.restart}")
        if not f.get("Service", "ExecStart") and not (self.type == "oneshot" and f.get("Service", "ExecStop")):
            raise uf.UnitError(f"{self.name}: Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing.")
        if self.type != "oneshot" and len(f.get("Service", "ExecStart")) > 1:
            raise uf.UnitError(f"{self.name}: Service has more than one ExecStart= setting, which is only allowed for Type=oneshot services. Refusing.")
        timeout = f.seconds("Service", "TimeoutSec", 90.0)
        self.start_timeout = f.seconds("Service", "TimeoutStartSec", float("inf") if self.type == "oneshot" else timeout)
        self.stop_timeout = f.seconds("Service", "TimeoutStopSec", timeout)
        self.start_timeout = self.start_timeout or float("inf")
        self.stop_timeout = self.stop_timeout or float("inf")
        self.restart_sec = f.seconds("Service", "RestartSec", 0.1)
        self.kill_mode = f.one("Service", "KillMode", "control-group")
        if self.kill_mode not in ("control-group", "mixed", "process", "none"):
            raise uf.UnitError(f"{self.name}: Failed to parse kill mode: {self.kill_mode}")
        self.kill_signal = getattr(signal, f.one("Service", "KillSignal", "SIGTERM"), None)
        if not isinstance(self.kill_signal, signal.Signals):
            raise uf.UnitError(f"{self.name}: Failed to parse signal: {f.one('Service', 'KillSignal')}")
        self.success_status = self.statuses("SuccessExitStatus")
        self.prevent_status = self.statuses("RestartPreventExitStatus")
        self.force_status = self.statuses("RestartForceExitStatus")
        self.user = f.one("Service", "User")
        mode = f.one("Service", "RuntimeDirectoryMode", "0755")
        if not re.fullmatch(r"[0-7]{3,4}", mode):
            raise uf.UnitError(f"{self.name}: Invalid mode for RuntimeDirectoryMode=: {mode}")
        for key in ("RemainAfterExit", "SendSIGKILL", "GuessMainPID"):
            f.flag("Service", key)

    def statuses(self, key):
        out = set()
        for word in self.file.get("Service", key, []):
            if word.isdigit():
                out.add(("exited", int(word)))
            elif hasattr(signal, word) or hasattr(signal, "SIG" + word):
                out.add(("killed", int(getattr(signal, word if word.startswith("SIG") else "SIG" + word))))
            else:
                raise uf.UnitError(f"{self.name}: Failed to parse {key}= value: {word}")
        return out

    # ---- state ----
    @property
    def active(self):
        return ACTIVE[self.sub]

    def set_state(self, sub, result=None):
        with self.m.lock:
            old, self.sub = self.active, sub
            if result is not None:
                self.result = result
            new = self.active
            if old != new:
                stamp = (int(time.time() * 1e6), int(time.monotonic() * 1e6))
                if old in ("inactive", "failed"):
                    self.stamps["InactiveExitTimestamp"] = stamp
                if new == "active":
                    self.stamps["ActiveEnterTimestamp"] = stamp
                if old == "active":
                    self.stamps["ActiveExitTimestamp"] = stamp
                if new in ("inactive", "failed"):
                    self.stamps["InactiveEnterTimestamp"] = stamp
            self.m.changed.notify_all()

    def properties(self):
        p = {"Id": self.name, "Names": " ".join(self.names), "LoadState": self.load_state, "ActiveState": self.active,
             "SubState": self.sub, "FragmentPath": self.fragment or "", "DropInPaths": " ".join(self.dropins),
             "UnitFileState": uf.unit_file_state(self.name) if self.fragment or self.load_state == "masked" else "",
             "UnitFilePreset": "enabled", "Description": self.name, "Result": self.result,
             "CanStart": "yes", "CanStop": "yes", "CanReload": "no", "NeedDaemonReload": "no",
             "ConditionResult": "yes" if self.condition_ok else "no", "InvocationID": self.invocation}
        if p["UnitFileState"] == "not-found":
            p["UnitFileState"] = ""
        for key in ("ActiveEnterTimestamp", "ActiveExitTimestamp", "InactiveEnterTimestamp", "InactiveExitTimestamp"):
            wall, mono = self.stamps.get(key, (0, 0))
            p[key] = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(wall / 1e6)) if wall else ""
            p[key + "Monotonic"] = str(mono)
        if self.load_state != "loaded":
            if self.load_error:
                kind = "NoSuchUnit" if self.load_state == "not-found" else "BadSetting"
                p["LoadError"] = f'org.freedesktop.systemd1.{kind} "{self.load_error}"'
            return p
        if self.fragment:
            try:
                p["NeedDaemonReload"] = "yes" if uf.content_hash([self.fragment, *self.dropins]) != self.hash else "no"
            except OSError:
                p["NeedDaemonReload"] = "yes"
        if self.file:
            p["Description"] = self.file.one("Unit", "Description", self.name)
            for key in DEPS:
                p[key] = " ".join(self.deps[key])
            p["StartLimitIntervalUSec"], p["StartLimitBurst"] = str(int(self.limit[0] * 1e6)), str(self.limit[1])
        if self.file and self.utype == "service":
            code = self.main_code
            p.update({"Type": self.type, "Restart": self.restart, "RestartUSec": str(int(self.restart_sec * 1e6)),
                      "MainPID": str(self.main.pid if self.main else 0), "ExecMainPID": str(self.exec_main_pid),
                      "ExecMainCode": {"exited": "1", "killed": "2", "dumped": "3"}[code[0]],
                      "ExecMainStatus": str(code[1]), "NRestarts": str(self.n_restarts), "StatusText": self.status_text,
                      "CanReload": "yes" if self.file.get("Service", "ExecReload") else "no", "KillMode": self.kill_mode,
                      "User": self.user or "", "TimeoutStopUSec": str(int(min(self.stop_timeout, 2**60) * 1e6))})
            for key in ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost"):
                cmds = self.file.get("Service", key, [])
                p[key] = " ; ".join("{ path=%s ; argv[]=%s ; ignore_errors=%s }" % (
                    argv[0], " ".join(argv), "yes" if "-" in flags else "no") for flags, argv in cmds)
        if self.file and self.utype == "timer":
            p["Unit"] = self.target
            p["NextElapseUSecMonotonic"] = str(int((self.next_elapse() or 0) * 1e6))
            p["LastTriggerUSec"] = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(self.last_trigger_wall)) \
                if self.last_trigger else ""
        return p

    def stamp(self, key):
        """Monotonic seconds of a state change, or None."""
        return self.stamps[key][1] / 1e6 if key in self.stamps else None

    # ---- processes ----
    def environment(self, mainpid=None):
        env = {"PATH": uf.DEFAULT_PATH, "INVOCATION_ID": self.invocation, "LANG": "C.UTF-8"}
        if self.user:
            entry = passwd(self.user)
            env.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name, SHELL=entry.pw_shell)
        if self.type == "notify":
            env["NOTIFY_SOCKET"] = NOTIFY_SOCKET
        dirs = self.file.get("Service", "RuntimeDirectory", [])
        if dirs:
            env["RUNTIME_DIRECTORY"] = ":".join("/run/" + d for d in dirs)
        if mainpid:
            env["MAINPID"] = str(mainpid)
        for word in self.file.get("Service", "Environment", []):
            key, _eq, value = word.partition("=")
            env[key] = value
        for path in self.file.get("Service", "EnvironmentFile", []):
            optional, path = path.startswith("-"), path.lstrip("-")
            try:
                env.update(uf.read_env_file(path))
            except OSError as exc:
                if not optional:
                    raise uf.UnitError(f"Failed to load environment files: {exc}") from exc
        return env

    def spawn(self, flags, argv, mainpid=None):
        env = self.environment(mainpid)
        if ":" not in flags:
            argv = uf.expand_env_argv(argv, env)
        exe = argv[0] if argv[0].startswith("/") else shutil.which(argv[0], path=uf.DEFAULT_PATH) or argv[0]
        args = argv[1:] if "@" in flags else argv
        kwargs = {}
        if self.user and not flags & {"+", "!", "!!"}:
            entry = passwd(self.user)
            group = self.file.one("Service", "Group")
            gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
            extra = [g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem]
            kwargs = {"user": entry.pw_uid, "group": gid, "extra_groups": extra}
        cwd = self.file.one("Service", "WorkingDirectory")
        if cwd:
            cwd = cwd.lstrip("-")
            cwd = env.get("HOME", "/root") if cwd == "~" else cwd
            if not os.path.isdir(cwd):
                cwd = None if self.file.one("Service", "WorkingDirectory").startswith("-") else cwd
        with self.m.lock:
            popen = subprocess.Popen(args, executable=exe, env=env, cwd=cwd or "/", stdin=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
            proc = Proc(popen)
            self.m.register(proc)
            self.sessions.add(proc.pid)
            self.m.sessions.add(proc.pid)
        threading.Thread(target=self.m.pump, args=(self.name, proc.pid, popen.stdout), daemon=True).start()
        return proc

    def run_commands(self, key, state, timeout, mainpid=None):
        """Run one Exec*= list in order; the result of the first failing command that is not prefixed '-'."""
        self.set_state(state)
        for flags, argv in self.file.get("Service", key, []):
            try:
                proc = self.spawn(flags, argv, mainpid)
            except SPAWN_ERRORS as exc:
                self.m.log(f"{self.name}: Failed to execute {argv[0]}: {exc}")
                if "-" not in flags:
                    return "exit-code"
                continue
            if not proc.done.wait(None if timeout == float("inf") else timeout):
                self.kill_procs([proc.pid], signal.SIGKILL)
                proc.done.wait(5)
                return "timeout"
            self.last_code = proc.code()
            result = self.exit_result(proc.code(), command=True)
            if result != "success" and "-" not in flags:
                self.m.log(f"{self.name}: {key}={argv[0]} failed: {proc.code()[0]} {proc.code()[1]}")
                return result
        return "success"

    def exit_result(self, code, command=False):
        kind, number = code
        if kind == "exited":
            return "success" if number == 0 or code in self.success_status else "exit-code"
        if (not command and number in CLEAN_SIGNALS) or code in self.success_status:
            return "success"
        return "core-dump" if kind == "dumped" else "signal"

    def unit_pids(self):
        return [pid for pid, _ppid, sid in processes() if sid in self.sessions]

    @staticmethod
    def kill_procs(pids, sig):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    # ---- jobs ----
    def start(self, manual=True, seen=frozenset()):
        """Run a start job (and the jobs of Requires=/Wants= units first) to its end; returns the job result."""
        if self.load_state != "loaded":
            return self.load_state
        if self.file is None:
            self.set_state("active")
            return "done"
        for dep in (self.deps["Requires"] + self.deps["Wants"]) if self.utype != "target" else []:
            if dep in seen:
                continue
            unit = self.m.unit(dep)
            result = unit.start(True, seen | {self.name}) if unit.active not in ("active", "reloading") else "done"
            if result != "done" and dep in self.deps["Requires"]:
                self.set_state("failed", "dependency")
                return "dependency"
        with self.job:
            if self.active in ("active", "reloading"):
                return "done"
            self.restart_at = None
            if self.utype == "timer":
                return self.start_timer()
            if self.utype == "target":
                self.set_state("active")
                return "done"
            return self.start_service(manual)

    def auto_restart(self):
        with self.job:
            if self.sub == "auto-restart":
                self.n_restarts += 1
                self.start_service(manual=False)

    def hit_start_limit(self):
        interval, burst = self.limit
        if interval <= 0 or burst <= 0:
            return False
        mono = time.monotonic()
        self.starts = [t for t in self.starts if mono - t < interval]
        if len(self.starts) >= burst:
            return True
        self.starts.append(mono)
        return False

    def start_service(self, manual):
        for cond in self.file.get("Unit", "ConditionPathExists", []):
            negate, path = cond.lstrip("|").startswith("!"), cond.lstrip("|!")
            if os.path.exists(path) == negate:
                self.condition_ok = False
                self.m.log(f"{self.name}: condition check resulted in {self.name} being skipped (ConditionPathExists={cond})")
                self.set_state("dead")
                return "done"
        self.condition_ok = True
        if self.hit_start_limit():
            self.m.log(f"{self.name}: Start request repeated too quickly.")
            self.set_state("failed", "start-limit-hit")
            return "start-limit-hit"
        if manual:
            self.n_restarts = 0
        self.invocation, self.result, self.ready, self.status_text = uuid.uuid4().hex, "success", False, ""
        self.sessions, self.stopping = set(), False
        self.exec_main_pid = 0
        self.main_code = ("exited", 0)
        self.m.log(f"{self.name}: Starting {self.file.one('Unit', 'Description', self.name)}...")
        try:
            entry = passwd(self.user) if self.user else None
        except KeyError:
            self.m.log(f"{self.name}: Failed to determine user credentials: No such process")
            self.main_code = ("exited", 217)
            self.set_state("failed", "exit-code")
            return "exit-code"
        try:
            for name in self.file.get("Service", "RuntimeDirectory", []):
                path = os.path.join("/run", name)
                os.makedirs(path, exist_ok=True)
                os.chmod(path, int(self.file.one("Service", "RuntimeDirectoryMode", "0755"), 8))
                if entry:
                    os.chown(path, entry.pw_uid, entry.pw_gid)
        except OSError as exc:
            self.m.log(f"{self.name}: Failed to set up runtime directory: {exc}")
            self.set_state("failed", "resources")
            return "resources"
        deadline = time.monotonic() + self.start_timeout
        result = self.run_commands("ExecStartPre", "start-pre", self.start_timeout)
        if result == "success":
            result = self.start_main(deadline)
        if result == "success":
            result = self.run_commands("ExecStartPost", "start-post", self.start_timeout, self.main and self.main.pid)
        if result != "success":
            self.m.log(f"{self.name}: Failed with result '{result}'.")
            self.stop_sequence(result, restart=True)
            return result
        with self.m.lock:
            if self.type == "oneshot":
                self.set_state("exited" if self.file.flag("Service", "RemainAfterExit") else "dead")
                if self.sub == "dead":
                    self.cleanup_runtime()
            elif self.main is None:
                threading.Thread(target=self.main_exited, daemon=True).start()
                self.set_state("running")
            else:
                self.set_state("running")
        self.m.log(f"{self.name}: Started {self.file.one('Unit', 'Description', self.name)}.")
        return "done"

    def start_main(self, deadline):
        if self.type == "oneshot":
            result = self.run_commands("ExecStart", "start", deadline - time.monotonic())
            self.main_code = self.last_code
            return result
        self.set_state("start")
        flags, argv = self.file.get("Service", "ExecStart")[0]
        try:
            proc = self.spawn(flags, argv)
        except SPAWN_ERRORS as exc:
            self.m.log(f"{self.name}: Failed to execute {argv[0]}: {exc}")
            self.main_code = ("exited", 203)  # Type=simple reports the start done before its exec; the unit fails after
            return "success" if self.type == "simple" else "exit-code"
        with self.m.lock:
            self.main, self.exec_main_pid = proc, proc.pid
        threading.Thread(target=self.watch_main, args=(proc,), daemon=True).start()
        if self.type != "notify":
            return "success"
        with self.m.lock:
            while not self.ready and self.main is proc:
                if not self.m.changed.wait(max(0.0, min(deadline - time.monotonic(), 3600))) and time.monotonic() >= deadline:
                    return "timeout"
            if self.ready:
                return "success"
            return self.exit_result(self.main_code) if self.exit_result(self.main_code) != "success" else "protocol"

    def watch_main(self, proc):
        proc.done.wait()
        with self.m.lock:
            if self.main is not proc:
                return
            self.main, self.main_code = None, proc.code()
            self.m.changed.notify_all()
            if self.stopping or self.sub not in ("running", "start-post", "reload"):
                return
        self.m.log(f"{self.name}: Main process exited, code={proc.code()[0]}, status={proc.code()[1]}")
        threading.Thread(target=self.main_exited, daemon=True).start()

    def main_exited(self):
        with self.job:
            if self.stopping or self.sub not in ("running", "start-post", "reload"):
                return
            result = self.exit_result(self.main_code)
            self.stop_sequence(result, restart=True)

    def stop_sequence(self, result, restart=False):
        """ExecStop=, kill what is left per KillMode=, ExecStopPost=; then dead, failed or auto-restart."""
        self.stopping = True
        mainpid = self.main.pid if self.main else None
        if self.sub in ("running", "reload", "exited") and self.file.get("Service", "ExecStop"):
            stop_result = self.run_commands("ExecStop", "stop", self.stop_timeout, mainpid)
            result = result if result != "success" else ("success" if stop_result == "success" else stop_result)
        self.set_state("stop-sigterm")
        if self.kill_mode == "none":  # the processes are left alone, and no longer the unit's
            with self.m.lock:
                self.main = None
        self.kill_all(self.kill_signal, main_only=self.kill_mode in ("process", "mixed"))
        if not self.wait_gone(self.stop_timeout, rest_too=self.kill_mode == "control-group") or \
                (self.kill_mode == "mixed" and self.unit_pids()):
            self.set_state("stop-sigkill")
            sigkill = signal.SIGKILL if self.file.flag("Service", "SendSIGKILL", True) else None
            if sigkill:
                self.kill_all(sigkill, main_only=self.kill_mode == "process")
            if not self.wait_gone(5, sigkill) and result == "success":
                result = "timeout"
        if self.file.get("Service", "ExecStopPost"):
            self.run_commands("ExecStopPost", "stop-post", self.stop_timeout)
        self.cleanup_runtime()
        self.stopping = False
        if restart and self.should_restart(result):
            self.set_state("auto-restart", result)
            with self.m.lock:
                self.restart_at = time.monotonic() + self.restart_sec
            self.m.log(f"{self.name}: Scheduled restart job, restart counter is at {self.n_restarts + 1}.")
            return
        self.set_state("dead" if result == "success" else "failed", result)

    def should_restart(self, result):
        """service_shall_restart(): RestartPreventExitStatus=, then RestartForceExitStatus=, then Restart=."""
        code = self.main_code if self.main_code[0] == "exited" else ("killed", self.main_code[1])
        if code in self.prevent_status:
            return False
        return code in self.force_status or RESTART_ON[self.restart](result)

    def kill_all(self, sig, main_only):
        if self.kill_mode == "none":
            return
        with self.m.lock:
            pids = [self.main.pid] if self.main else []
        if not main_only:
            pids = set(pids) | set(self.unit_pids())
        self.kill_procs(pids, sig)
        if sig != signal.SIGKILL:
            self.kill_procs(pids, signal.SIGCONT)

    def wait_gone(self, timeout, resend=None, rest_too=True):
        """Wait for the main process (and, unless KillMode=process, the unit's other processes) to be gone."""
        deadline = time.monotonic() + min(timeout, 3600)
        while time.monotonic() < deadline:
            with self.m.lock:
                main = self.main
            rest = self.unit_pids() if rest_too and self.kill_mode in ("control-group", "mixed") else []
            if main is None and not rest:
                return True
            if resend:
                self.kill_procs(rest, resend)
            if main is not None:
                main.done.wait(0.02)
            else:
                time.sleep(0.02)
        return False

    def cleanup_runtime(self):
        for name in self.file.get("Service", "RuntimeDirectory", []):
            shutil.rmtree(os.path.join("/run", name), ignore_errors=True)

    def stop(self):
        with self.m.lock:
            self.restart_at = None
        if self.load_state != "loaded" and self.active in ("inactive", "failed"):
            return "done" if self.load_state != "not-found" else "not-found"
        with self.job:
            with self.m.lock:
                self.restart_at = None
            if self.utype != "service" or self.file is None:
                self.set_state("dead")
                return "done"
            if self.sub == "auto-restart":
                self.set_state("dead", "success")
            if self.active not in ("inactive", "failed"):
                self.m.log(f"{self.name}: Stopping {self.file.one('Unit', 'Description', self.name)}...")
                self.stop_sequence(self.result)
                self.m.log(f"{self.name}: Stopped {self.file.one('Unit', 'Description', self.name)}.")
            return "done"

    def reload(self):
        if self.utype != "service" or not self.file or not self.file.get("Service", "ExecReload"):
            return "not-applicable"
        with self.job:
            if self.active != "active":
                return "inactive"
            result = self.run_commands("ExecReload", "reload", self.stop_timeout, self.main and self.main.pid)
            self.set_state("running" if self.main or self.type != "oneshot" else "exited")
            return "done" if result == "success" else result

    # ---- timers ----
    def start_timer(self):
        if self.m.unit(self.target).load_state != "loaded":
            self.set_state("failed", "resources")
            return "resources"
        self.timer_base = time.monotonic()
        self.plan_calendar()
        self.set_state("waiting", "success")
        return "done"

    def plan_calendar(self):
        """The next OnCalendar= elapse, as a monotonic time."""
        walls = [w for w in (uf.next_calendar(fields, time.time()) for fields in self.calendar) if w is not None]
        self.calendar_next = time.monotonic() + min(walls) - time.time() if walls else None

    def next_elapse(self):
        target = self.m.units.get(self.target)
        best = self.calendar_next
        for key, span in self.triggers:
            if key in ("OnBootSec", "OnStartupSec"):
                base = self.m.boot
            elif key == "OnActiveSec":
                base = self.timer_base
            elif key == "OnUnitActiveSec":
                stamps = [t for t in (target and target.stamp("InactiveExitTimestamp"), self.last_trigger) if t is not None]
                base = max(stamps) if stamps else None
            else:
                base = target and target.stamp("InactiveEnterTimestamp")
            if base is None:
                continue
            when = base + span
            if self.last_trigger is not None and when <= self.last_trigger:
                continue
            best = when if best is None else min(best, when)
        return best

    def tick(self):
        """Called by the manager's clock: pending restarts and timer elapses."""
        mono = time.monotonic()
        if self.restart_at is not None and mono >= self.restart_at and self.sub == "auto-restart":
            self.restart_at = None
            threading.Thread(target=self.auto_restart, daemon=True).start()
        if self.utype == "timer" and self.file and self.sub in ("waiting", "elapsed"):
            when = self.next_elapse()
            if when is not None and mono >= when:
                self.last_trigger, self.last_trigger_wall = mono, time.time()
                self.plan_calendar()
                self.m.log(f"{self.name}: Triggering {self.target}.")
                threading.Thread(target=self.m.unit(self.target).start, args=(False,), daemon=True).start()
            elif when is None and self.sub == "waiting" and self.last_trigger is not None:
                self.set_state("elapsed" if self.file.flag("Timer", "RemainAfterElapse", True) else "dead")


class Manager:
    """Units by name, the child reaper, the notify socket, the control socket and the clock."""

    def __init__(self, log_path):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.units, self.procs, self.reaped, self.verified, self.sessions = {}, {}, {}, {}, set()
        self.log_lock, self.have_children, self.quit = threading.Lock(), threading.Event(), threading.Event()
        self.logfile = open(log_path, "a", encoding="utf-8", buffering=1)  # pylint: disable=consider-using-with
        self.boot, self.phase = time.monotonic(), "initializing"

    def log(self, message):
        with self.log_lock:
            self.logfile.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")

    def verify(self, fragment, dropins, digest):
        if digest in self.verified:
            return self.verified[digest]
        problems = uf.verify_problems(fragment, dropins)
        if not any("is not executable" in problem for problem in problems):  # the file system may still change
            self.verified[digest] = problems
        return problems

    def unit(self, name):
        if "." not in name:
            name += ".service"
        with self.lock:
            unit = self.units.get(name)
            if unit is None or unit.load_state == "not-found":
                real = uf.find_unit(name)[2]
                if real != name:
                    return self.unit(real)
                unit = self.units[name] = Unit(self, name)
            return unit

    # ---- processes ----
    def register(self, proc):
        with self.lock:
            if proc.pid in self.reaped:
                self.finish(proc, self.reaped.pop(proc.pid))
            else:
                self.procs[proc.pid] = proc
            self.have_children.set()

    @staticmethod
    def finish(proc, status):
        proc.status = status
        proc.popen.returncode = os.waitstatus_to_exitcode(status)
        proc.done.set()

    def reaper(self):
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                self.have_children.clear()
                self.have_children.wait(1)
                continue
            with self.lock:
                proc = self.procs.pop(pid, None)
                if proc:
                    self.finish(proc, status)
                else:
                    self.reaped[pid] = status
                    while len(self.reaped) > 1000:
                        self.reaped.pop(next(iter(self.reaped)))

    def pump(self, name, pid, stream):
        for line in iter(stream.readline, b""):
            self.log(f"{name}[{pid}]: {line.decode('utf-8', 'replace').rstrip()}")
        stream.close()

    def notify_server(self):
        os.makedirs(os.path.dirname(NOTIFY_SOCKET), exist_ok=True)
        if os.path.exists(NOTIFY_SOCKET):
            os.unlink(NOTIFY_SOCKET)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.bind(NOTIFY_SOCKET)
        os.chmod(NOTIFY_SOCKET, 0o777)
        while True:
            data, ancdata, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            pid = next((struct.unpack("3i", d[:12])[0] for level, kind, d in ancdata
                        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS), 0)
            self.notify(pid, data.decode("utf-8", "replace"))

    def notify(self, pid, message):
        with self.lock:
            unit = next((u for u in self.units.values() if u.main and u.main.pid == pid), None)
            if unit is None:
                try:
                    sid = os.getsid(pid)
                except OSError:
                    sid = None
                unit = next((u for u in self.units.values() if u.file and u.utype == "service" and sid in u.sessions
                             and u.file.one("Service", "NotifyAccess", "main") == "all"), None)
            if unit is None:
                self.log(f"Got notification message from PID {pid}, but reception only permitted for main PID")
                return
            for line in message.splitlines():
                key, _eq, value = line.partition("=")
                if key == "READY" and value == "1":
                    unit.ready = True
                elif key == "STATUS":
                    unit.status_text = value
                elif key == "MAINPID" and value.isdigit() and unit.main and int(value) != unit.main.pid:
                    unit.main = Foreign(int(value))
                    unit.exec_main_pid = int(value)
                    threading.Thread(target=unit.watch_main, args=(unit.main,), daemon=True).start()
            self.changed.notify_all()

    # ---- control ----
    def control_server(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        os.chmod(path, 0o600)
        server.listen(16)
        while True:
            conn, _addr = server.accept()
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        with conn:
            stream = conn.makefile("rwb")
            try:
                request = json.loads(stream.readline())
                reply = self.handle(request["cmd"], request.get("units", []), request.get("args", {}))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                reply = {"error": f"bad request: {exc}"}
            except (OSError, uf.UnitError) as exc:
                reply = {"error": f"Failed: {exc}"}
            try:
                stream.write(json.dumps(reply).encode() + b"\n")
                stream.close()
            except OSError:
                pass  # the client went away

    def handle(self, cmd, names, args):
        jobs = {"start": lambda u: u.start(), "stop": lambda u: u.stop(), "restart": self.job_restart, "reload": lambda u: u.reload(),
                "try-restart": lambda u: self.job_restart(u) if u.active in ("active", "reloading", "activating") else "done",
                "reload-or-restart": self.job_reload_or_restart,
                "try-reload-or-restart": lambda u: self.job_reload_or_restart(u) if u.active == "active" else "done"}
        if cmd in jobs:
            results = {}
            for name in names:
                unit = self.unit(name)
                if args.get("no_block") and unit.load_state == "loaded":
                    threading.Thread(target=jobs[cmd], args=(unit,), daemon=True).start()
                    results[name] = "queued"
                else:
                    results[name] = jobs[cmd](unit)
            return {"results": results, "units": {n: self.unit(n).properties() for n in names}}
        if cmd == "show":
            return {"units": {n: self.unit(n).properties() for n in names}}
        if cmd == "list":
            with self.lock:
                self.collect()
                loaded = list(self.units.values())
            return {"units": {u.name: u.properties() for u in loaded}}
        if cmd == "daemon-reload":
            self.daemon_reload()
            return {}
        if cmd == "reset-failed":
            with self.lock:
                for unit in [self.unit(n) for n in names] if names else list(self.units.values()):
                    unit.starts = []
                    if unit.active == "failed":
                        unit.set_state("dead", "success")
            return {}
        if cmd == "kill":
            sig = int(args.get("signal", signal.SIGTERM))
            for name in names:
                unit = self.unit(name)
                with self.lock:
                    pids = [unit.main.pid] if unit.main else []
                unit.kill_procs(pids if args.get("who") == "main" else set(pids) | set(unit.unit_pids()), sig)
            return {}
        if cmd == "is-system-running":
            return {"state": self.system_state()}
        return {"error": f"Unknown command verb '{cmd}'."}

    def job_restart(self, unit):
        result = unit.stop()
        return unit.start() if result == "done" else result

    def job_reload_or_restart(self, unit):
        if unit.active == "active" and unit.file and unit.utype == "service" and unit.file.get("Service", "ExecReload"):
            return unit.reload()
        return self.job_restart(unit)

    def system_state(self):
        if self.phase != "running":
            return self.phase
        with self.lock:
            return "degraded" if any(u.active == "failed" for u in self.units.values()) else "running"

    def daemon_reload(self):
        self.log("Reloading.")
        with self.lock:
            for unit in list(self.units.values()):
                unit.load()
            self.collect()
            self.changed.notify_all()

    def collect(self):
        """Forget units without a file that are dead, as systemd's garbage collection does with units nothing
        references: a removed unit leaves `list-units --all` once stopped and reloaded."""
        for name, unit in list(self.units.items()):
            if unit.load_state == "not-found" and unit.active == "inactive":
                del self.units[name]

    # ---- boot and shutdown ----
    def wanted(self):
        seen, order = set(), []

        def visit(name, depth=0):
            if name in seen or depth > 20:
                return
            seen.add(name)
            unit = self.unit(name)
            for dep in unit.deps["Requires"] + unit.deps["Wants"] + unit.deps["After"]:
                if dep in wants_all:
                    visit(dep, depth + 1)
            order.append(name)
        wants_all = []
        for target in BOOT_TARGETS:
            for unit_dir in uf.UNIT_DIRS:
                wdir = os.path.join(unit_dir, target + ".wants")
                if os.path.isdir(wdir):
                    wants_all.extend(sorted(n for n in os.listdir(wdir) if n not in wants_all))
        for name in wants_all:
            visit(name)
        return order

    def run(self, socket_path):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        os.makedirs("/run/systemd/system", exist_ok=True)
        for target in (self.reaper, self.notify_server, self.clock):
            threading.Thread(target=target, daemon=True).start()
        threading.Thread(target=self.control_server, args=(socket_path,), daemon=True).start()
        self.phase = "starting"
        self.daemon_reload()
        for name in self.wanted():
            result = self.unit(name).start(manual=False)
            if result != "done":
                self.log(f"{name}: start at boot: {result}")
        for target in BOOT_TARGETS:
            self.unit(target).start(manual=False)
        self.phase = "running"
        self.log("Startup finished.")
        self.quit.wait()
        self.shutdown()

    def clock(self):
        while True:
            with self.lock:
                units = list(self.units.values())
            for unit in units:
                unit.tick()
            time.sleep(0.05)

    def shutdown(self):
        self.phase = "stopping"
        self.log("Stopping all units.")
        with self.lock:
            units = [u for u in self.units.values() if u.active != "inactive" or u.restart_at]
        threads = [threading.Thread(target=u.stop, daemon=True) for u in units]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for sig in (signal.SIGTERM, signal.SIGKILL):  # what units left behind (KillMode=process, none) and orphans
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                left = [pid for pid, ppid, sid in processes() if (sid in self.sessions or ppid == os.getpid()) and pid != os.getpid()]
                if not left:
                    break
                Unit.kill_procs(left, sig)
                time.sleep(0.05)
        self.log("Shutdown complete.")


class Foreign:
    """A main process announced with MAINPID= that is not the manager's child: watched through /proc."""

    def __init__(self, pid):
        self.pid, self.done, self.status = pid, threading.Event(), 0
        threading.Thread(target=self.watch, daemon=True).start()

    def watch(self):
        while True:
            try:
                with open(f"/proc/{self.pid}/stat", encoding="utf-8") as handle:
                    if handle.read().rpartition(")")[2].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.05)
        self.done.set()

    def code(self):
        return "exited", 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="castle_lab.mesh.units", description="The lab's service manager (a host's init).")
    parser.add_argument("--log", required=True, help="file that gets the manager's and the services' output")
    parser.add_argument("--socket", default=SOCKET, help=f"control socket (default {SOCKET})")
    args = parser.parse_args(argv)
    manager = Manager(args.log)
    threading.excepthook = lambda hook: manager.log("".join(traceback.format_exception(hook.exc_value)))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_a: manager.quit.set())
    manager.run(args.socket)


if __name__ == "__main__":
    main()
