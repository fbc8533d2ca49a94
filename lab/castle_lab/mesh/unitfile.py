"""systemd unit files: search path, parsing, specifiers, command lines, time spans, install symlinks.

Semantics follow systemd 252 (systemd.unit(5), systemd.service(5), systemd.exec(5), systemd.timer(5),
systemd.time(7)); keys the lab does not implement are refused instead of ignored.
"""

import hashlib
import os
import re
import socket
import subprocess
import time

UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNIT_TYPES = ("service", "timer", "target")

# key -> kind: "one" (last assignment wins), "list" (whitespace-separated words, appended), "exec" (command lines),
# "env" (quoted NAME=VALUE words), "many" (one entry per assignment). An empty assignment resets the key.
_UNIT_KEYS = dict.fromkeys(("Description", "StartLimitIntervalSec", "StartLimitBurst", "DefaultDependencies",
                            "AllowIsolate", "IgnoreOnIsolate"), "one")
_UNIT_KEYS.update(dict.fromkeys(("Documentation", "After", "Before", "Wants", "Requires", "Conflicts", "PartOf",
                                 "BindsTo", "Requisite", "WantedBy"), "list"))
_UNIT_KEYS.update(dict.fromkeys(("ConditionPathExists", "AssertPathExists"), "many"))
_SERVICE_KEYS = dict.fromkeys((
    "Type", "RemainAfterExit", "User", "Group", "WorkingDirectory", "RuntimeDirectoryMode", "Restart", "RestartSec",
    "TimeoutStartSec", "TimeoutStopSec", "TimeoutSec", "KillMode", "KillSignal", "SendSIGKILL", "NotifyAccess",
    "PIDFile", "UMask", "StandardOutput", "StandardError", "StandardInput", "GuessMainPID"), "one")
_SERVICE_KEYS.update(dict.fromkeys(("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop",
                                    "ExecStopPost"), "exec"))
_SERVICE_KEYS.update(dict.fromkeys(("RuntimeDirectory", "SuccessExitStatus", "RestartPreventExitStatus",
                                    "RestartForceExitStatus", "SupplementaryGroups"), "list"))
_SERVICE_KEYS.update({"Environment": "env", "EnvironmentFile": "many"})
_TIMER_KEYS = dict.fromkeys(("OnBootSec", "OnStartupSec", "OnActiveSec", "OnUnitActiveSec", "OnUnitInactiveSec", "OnCalendar"),
                            "many")
_TIMER_KEYS.update(dict.fromkeys(("Unit", "AccuracySec", "RandomizedDelaySec", "RemainAfterElapse"), "one"))
_INSTALL_KEYS = dict.fromkeys(("WantedBy", "RequiredBy", "Alias", "Also"), "list")
_INSTALL_KEYS["DefaultInstance"] = "one"
SECTIONS = {"service": {"Unit": _UNIT_KEYS, "Service": _SERVICE_KEYS, "Install": _INSTALL_KEYS},
            "timer": {"Unit": _UNIT_KEYS, "Timer": _TIMER_KEYS, "Install": _INSTALL_KEYS},
            "target": {"Unit": _UNIT_KEYS, "Install": _INSTALL_KEYS}}
UNSUPPORTED = {"Persistent": "Persistent= is not supported by the lab's service manager"}
CALENDAR_SHORTHANDS = {"minutely": "*:*:00", "hourly": "*:00:00", "daily": "00:00:00"}
_UNITS = {"usec": 1e-6, "us": 1e-6, "µs": 1e-6, "msec": 1e-3, "ms": 1e-3, "seconds": 1, "second": 1, "sec": 1, "s": 1,
          "minutes": 60, "minute": 60, "min": 60, "m": 60, "hours": 3600, "hour": 3600, "hr": 3600, "h": 3600,
          "days": 86400, "day": 86400, "d": 86400, "weeks": 604800, "week": 604800, "w": 604800,
          "months": 2629800, "month": 2629800, "M": 2629800, "years": 31557600, "year": 31557600, "y": 31557600}
_CESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"',
             "'": "'", "s": " ", "$": "$"}


class UnitError(ValueError):
    """A setting that systemd would reject (or the lab does not implement)."""


def parse_timespan(text):
    """Seconds from a systemd time span ("5min 30s", "1h", "500ms"; a bare number is seconds)."""
    text = text.strip()
    if text == "infinity":
        return float("inf")
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-zA-Zµ]*)", text)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([a-zA-Zµ]*)|\s+", "", text):
        raise UnitError(f"Failed to parse time span '{text}'")
    total = 0.0
    for number, unit in parts:
        if unit not in _UNITS and unit:
            raise UnitError(f"Failed to parse time span '{text}': unknown unit '{unit}'")
        total += float(number) * _UNITS.get(unit, 1)
    return total


def parse_calendar(text):
    """The time-of-day subset of systemd.time(7) calendar events ("hourly", "*:0/15", "*-*-* 04:30:00"): the sets of
    hours, minutes and seconds that match."""
    spec = CALENDAR_SHORTHANDS.get(text.strip(), text.strip())
    spec = spec[len("*-*-* "):] if spec.startswith("*-*-* ") else spec
    parts = spec.split(":")
    parts += ["00"] if len(parts) == 2 else []
    if len(parts) != 3 or not all(re.fullmatch(r"(\*|\d+)(/\d+)?(,(\*|\d+)(/\d+)?)*", p) for p in parts):
        raise UnitError(f"OnCalendar={text}: the lab supports only times of day (HH:MM[:SS] with *, lists and /steps, "
                        "minutely, hourly, daily)")
    fields = []
    for part, limit in zip(parts, (24, 60, 60)):
        values = set()
        for item in part.split(","):
            base, _slash, step = item.partition("/")
            start = 0 if base == "*" else int(base)
            if step and int(step) == 0:
                raise UnitError(f"OnCalendar={text}: a repetition of 0")
            values.update(range(start, limit, int(step)) if step else range(limit) if base == "*" else {start})
        if not values or max(values) >= limit:
            raise UnitError(f"OnCalendar={text}: value out of range")
        fields.append(frozenset(values))
    return fields


def next_calendar(fields, after):
    """The first wall-clock second (epoch, local time) later than `after` that the calendar event matches."""
    hours, minutes, seconds = fields
    moment = int(after) + 1
    for _minute in range(2 * 24 * 60):
        now = time.localtime(moment)
        later = [s for s in sorted(seconds) if s >= now.tm_sec]
        if now.tm_hour in hours and now.tm_min in minutes and later:
            return moment - now.tm_sec + later[0]
        moment += 60 - now.tm_sec
    return None


def parse_bool(text, key):
    low = text.strip().lower()
    if low in ("1", "yes", "y", "true", "t", "on"):
        return True
    if low in ("0", "no", "n", "false", "f", "off"):
        return False
    raise UnitError(f"Failed to parse boolean value for {key}=: {text}")


def split_words(text, cunescape=True):
    """systemd's extract_first_word with quotes and C escapes: the words of a value."""
    words, cur, quote, i, started = [], [], None, 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and cunescape:
            nxt = text[i + 1]
            if nxt == "x" and re.match(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
                cur.append(chr(int(text[i + 2:i + 4], 16)))
                i += 4
            elif nxt in _CESCAPES:
                cur.append(_CESCAPES[nxt])
                i += 2
            else:
                raise UnitError(f"Invalid escape sequence in '{text}'")
            started = True
            continue
        if quote:
            if ch == quote:
                quote = None
            else:
                cur.append(ch)
        elif ch in "\"'":
            quote, started = ch, True
        elif ch.isspace():
            if started:
                words.append("".join(cur))
                cur, started = [], False
        else:
            cur.append(ch)
            started = True
        i += 1
    if quote:
        raise UnitError(f"Unbalanced quotes in '{text}'")
    if started:
        words.append("".join(cur))
    return words


def split_name(name):
    """(prefix, instance or None, type) of a unit name."""
    base, _dot, utype = name.rpartition(".")
    prefix, at, instance = base.partition("@")
    return prefix, (instance if at else None), utype


def unescape(text):
    """A unit name part with systemd's path escaping undone: "-" is "/", "\\xNN" is that character."""
    return re.sub(r"\\x([0-9a-fA-F]{2})|-", lambda m: chr(int(m.group(1), 16)) if m.group(1) else "/", text)


def specifiers(name, path):
    prefix, instance, _utype = split_name(name)
    base = name.rpartition(".")[0]
    return {"n": name, "N": base, "p": prefix, "P": unescape(prefix), "i": instance or "", "I": unescape(instance or ""),
            "f": "/" + unescape(instance if instance is not None else prefix).lstrip("/"), "j": prefix.rpartition("-")[2],
            "h": "/root", "u": "root", "U": "0", "g": "root", "G": "0", "s": "/bin/sh", "H": socket.gethostname(),
            "l": socket.gethostname().split(".")[0], "t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log",
            "E": "/etc", "T": "/tmp", "V": "/var/tmp", "y": path or "", "Y": os.path.dirname(path or ""),
            "v": os.uname().release, "%": "%"}


def expand_specifiers(value, table):
    def one(match):
        if match.group(1) not in table:
            raise UnitError(f"Failed to resolve unit specifiers in '{value}': unknown specifier %{match.group(1)}")
        return table[match.group(1)]
    return re.sub(r"%(.)", one, value)


def parse_exec(value):
    """One command line: (flags, argv) with flags from the prefixes "-", "@", ":", "+", "!", "!!"."""
    flags, rest = set(), value.lstrip()
    while rest and rest[0] in "-@:+!":
        flag = "!!" if rest.startswith("!!") else rest[0]
        if flag in flags:
            raise UnitError(f"Duplicate prefix '{flag}' in command line '{value}'")
        flags.add(flag)
        rest = rest[len(flag):]
    argv = split_words(rest)
    if not argv:
        raise UnitError(f"Empty executable name or zero arguments in '{value}'")
    if "/" in argv[0] and not argv[0].startswith("/"):
        raise UnitError(f"Neither a valid executable name nor an absolute path: {argv[0]}")
    return flags, argv


def expand_env_argv(argv, env):
    """Command-line variable expansion: a word "$NAME" splits on whitespace, "${NAME}" expands within a word."""
    out = []
    for word in argv:
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            out.extend(env.get(whole.group(1), "").split())
            continue
        out.append(re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                          lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), ""), word))
    return out


def read_env_file(path):
    """NAME=VALUE lines of an EnvironmentFile= (comments with # or ;, shell-style quotes, backslash continuation)."""
    env = {}
    with open(path, encoding="utf-8") as handle:
        text = handle.read().replace("\\\n", "")
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key] = value
    return env


def parse_text(text, sections, filename="<unit>"):
    """Raw assignments [(section, key, value, lineno)] of one file, with systemd's line syntax."""
    out, section, pending, start = [], None, None, 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if pending is not None:
            if line[:1] in ("#", ";"):
                continue
        elif not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = (pending if pending is not None else "") + line[:-1] + " "
            start = start or lineno
            continue
        if pending is not None:
            line, pending, lineno, start = pending + line, None, start, 0
        if line.startswith("["):
            if not line.endswith("]"):
                raise UnitError(f"{filename}:{lineno}: Invalid section header '{line}'")
            section = line[1:-1]
            if sections is not None and section not in sections and not section.startswith("X-"):
                raise UnitError(f"{filename}:{lineno}: Unknown section '{section}'")
            continue
        if "=" not in line:
            raise UnitError(f"{filename}:{lineno}: Missing '=', ignoring line.")
        if section is None:
            raise UnitError(f"{filename}:{lineno}: Assignment outside of section.")
        key, _eq, value = line.partition("=")
        out.append((section, key.strip(), value.strip(), lineno))
    return out


class UnitFile:
    """The merged settings of one unit: fragment plus drop-ins, specifiers expanded."""

    def __init__(self, name, fragment, dropins=(), texts=None):
        self.name, self.fragment, self.dropins = name, fragment, list(dropins)
        self.utype = split_name(name)[2]
        if self.utype not in SECTIONS:
            raise UnitError(f"Unit type .{self.utype} is not supported by the lab's service manager")
        self.values = {}
        table = specifiers(name, fragment)
        for path in [fragment, *self.dropins]:
            text = texts[path] if texts else open(path, encoding="utf-8").read()  # pylint: disable=consider-using-with
            for section, key, value, lineno in parse_text(text, SECTIONS[self.utype], path):
                self.assign(section, key, value, f"{path}:{lineno}", table)

    def assign(self, section, key, value, where, table):
        if section.startswith("X-"):
            return
        if key in UNSUPPORTED:
            raise UnitError(f"{where}: {UNSUPPORTED[key]}")
        kind = SECTIONS[self.utype][section].get(key)
        if kind is None:
            raise UnitError(f"{where}: Unknown key '{key}' in section [{section}]")
        try:
            value = expand_specifiers(value, table) if section != "Install" or key != "Alias" else value
            if kind == "exec" and value:
                value = parse_exec(value)
        except UnitError as exc:
            raise UnitError(f"{where}: {exc}") from exc
        slot = (section, key)
        if kind == "one":
            self.values[slot] = value
        elif not value:
            self.values[slot] = []
        elif kind == "list":
            self.values.setdefault(slot, []).extend(value.split())
        elif kind == "env":
            try:
                words = split_words(value)
            except UnitError as exc:
                raise UnitError(f"{where}: {exc}") from exc
            for word in words:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word, re.S):
                    raise UnitError(f"{where}: Invalid environment assignment, ignoring: {word}")
            self.values.setdefault(slot, []).extend(words)
        else:
            self.values.setdefault(slot, []).append(value)

    def get(self, section, key, default=None):
        return self.values.get((section, key), default)

    def one(self, section, key, default=None):
        value = self.values.get((section, key))
        return default if value in (None, "") else value

    def seconds(self, section, key, default):
        value = self.one(section, key)
        return default if value is None else parse_timespan(value)

    def flag(self, section, key, default=False):
        value = self.one(section, key)
        return default if value is None else parse_bool(value, key)


# ---- search path, aliases, install symlinks ----

def find_unit(name, dirs=UNIT_DIRS):
    """(fragment path or None, masked, the name the fragment has, drop-in paths) with aliases and templates resolved."""
    prefix, instance, utype = split_name(name)
    candidates = [name] + ([f"{prefix}@.{utype}"] if instance else [])
    fragment, masked, real = None, False, name
    for cand in candidates:
        for unit_dir in dirs:
            path = os.path.join(unit_dir, cand)
            if os.path.islink(path) and os.readlink(path) == "/dev/null":
                return None, True, name, []
            if os.path.isfile(path):
                fragment = path
                target = os.path.realpath(path)
                if os.path.islink(path) and os.path.basename(target) != cand:
                    real = os.path.basename(target)
                    if instance and "@." in real:
                        real = real.replace("@.", f"@{instance}.")
                break
        if fragment:
            break
    names = {name, real} | ({f"{prefix}@.{utype}"} if instance else set())
    chosen = {}
    for unit_dir in reversed(dirs):
        for unit_name in names:
            ddir = os.path.join(unit_dir, unit_name + ".d")
            if os.path.isdir(ddir):
                for entry in os.listdir(ddir):
                    if entry.endswith(".conf"):
                        chosen[entry] = os.path.join(ddir, entry)
    return fragment, masked, real, [chosen[k] for k in sorted(chosen)]


def content_hash(paths):
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def verify_problems(fragment, dropins=()):
    """Problems `systemd-analyze verify` reports about a unit file (it exits 0 on warnings: its output is parsed)."""
    base = os.path.basename(fragment)
    if re.search(r"@\.[a-z]+$", base):
        return []
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", fragment], capture_output=True, text=True,
                          check=False, env={"PATH": DEFAULT_PATH, "SYSTEMD_LOG_COLOR": "0"})
    mine = (fragment + ":", base + ":", *(path + ":" for path in dropins))
    return [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.startswith(mine)]


def install_section(paths):
    """The [Install] words of a unit's files (other sections are not looked at, as systemctl enable does)."""
    info = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for section, key, value, _lineno in parse_text(handle.read(), None, path):
                if section == "Install" and key in _INSTALL_KEYS:
                    info[key] = info.get(key, []) + value.split() if value else []
    return info


def install_links(name, fragment, dropins):
    """Symlink paths `systemctl enable` creates (WantedBy=, RequiredBy=, Alias=), all pointing at the fragment."""
    info = install_section([fragment, *dropins])
    links = [os.path.join(UNIT_DIRS[0], target + suffix, name)
             for key, suffix in (("WantedBy", ".wants"), ("RequiredBy", ".requires")) for target in info.get(key, [])]
    return [os.path.join(UNIT_DIRS[0], alias) for alias in info.get("Alias", [])] + links, info.get("Also", [])


def symlinks_to(name, dirs=UNIT_DIRS[:2]):
    """Enablement symlinks in the config dirs that point at the unit (by name or fragment)."""
    found = []
    for unit_dir in dirs:
        if not os.path.isdir(unit_dir):
            continue
        for root, subdirs, files in os.walk(unit_dir):
            for entry in files + subdirs:
                path = os.path.join(root, entry)
                if not os.path.islink(path) or os.readlink(path) == "/dev/null" or (root == unit_dir and entry == name):
                    continue
                if os.path.basename(os.readlink(path)) == name or (entry == name and root != unit_dir):
                    found.append(path)
    return sorted(found)


def unit_file_state(name):
    """is-enabled's answer for a unit file: enabled, disabled, static, masked, alias, linked, not-found ..."""
    for unit_dir in UNIT_DIRS:
        path = os.path.join(unit_dir, name)
        if os.path.islink(path) and os.readlink(path) == "/dev/null":
            return "masked" if unit_dir == UNIT_DIRS[0] else "masked-runtime"
    fragment, _masked, real, dropins = find_unit(name)
    if fragment is None:
        return "not-found"
    if real != name:
        return "alias"
    if os.path.islink(fragment) and os.path.dirname(fragment) in UNIT_DIRS[:2]:
        return "linked"
    info = install_section([fragment, *dropins])
    wanted = [p for p in symlinks_to(name)
              if os.path.basename(os.path.dirname(p)).endswith((".wants", ".requires"))]
    if any(p.startswith(UNIT_DIRS[0] + "/") for p in wanted):
        return "enabled"
    if wanted:
        return "enabled-runtime"
    if not any(info.get(k) for k in ("WantedBy", "RequiredBy", "Alias")):
        return "indirect" if info.get("Also") else "static"
    return "disabled"

