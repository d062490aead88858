"""An environment of its own for every hypothesis: a layered virtualenv and a private temp directory.

Why: with one shared interpreter, every hypothesis' ``pip install -e .`` writes into the same
site-packages, so the last install wins and a hypothesis can pass by importing another one's code;
concurrent installs also corrupt each other (see ../shared/docs/real-checkouts-and-environments.md §4).

What a hypothesis gets (``isolation: venv``, the default):

* a *layer*: a virtualenv without pip, made from the **base interpreter** (the ``python3`` on the
  hypothesis' PATH, i.e. the job's Python), whose ``site-packages`` holds a ``.pth`` file naming the
  base's site directories as plain paths. Everything installed in the base stays importable; what
  the hypothesis installs goes into its layer, first on ``sys.path``, so it shadows the base per
  distribution. Plain path lines (not ``site.addsitedir``) mean the base's own ``.pth`` hooks are not
  run: an editable install of the *main checkout* in the base can never stand in for a hypothesis'
  code (measured in the doc, §4.5);
* ``PATH=<layer>/bin:<scripts>:…`` and ``VIRTUAL_ENV=<layer>``, where ``<scripts>`` (one per run,
  shared) holds copies of the base's console scripts (``pip``, ``pytest``, …) that run the first
  ``python`` on PATH, the layer's: an unchanged ``pip install …`` / ``python -m pip install …`` /
  ``uv pip install …`` installs into the layer and ``pytest`` runs in it (§4.6). ``pip`` is always
  there, so it never falls through to a shared installation's pip further down PATH;
* its own editable installs first: setuptools' flat-layout editable finders are moved ahead of the
  path finder, so a regular copy of the same project in the base cannot be imported instead;
* ``TMPDIR`` / ``TMP`` / ``TEMP`` of its own (pytest's ``tmp_path`` roots, pip build directories);
* a check after its setup that nothing was installed into the base's site directories (an install
  that escaped the layer some other way makes the hypothesis ``error`` instead of a wrong verdict).

Everything lives below one private scratch directory per run (under ``$RUNNER_TEMP`` or the system
temp dir). When a hypothesis finishes, its directory is compared with what it was when it was made
(every entry's mode, owner, links, inode, size and mtime; :mod:`runner.engine.layer_signature`): if
nothing changed (the command installed nothing and left nothing in its temp dir), a later hypothesis
gets it as it is, byte for byte what a new one would hold; otherwise it is removed at once. The scratch
directory goes at the end of the run; unchanged layers are first moved beside their template in the
layer cache, for the next run's first wave (:mod:`runner.engine.spare_layers`). Download caches
(pip's, uv's) are left where the user has them: they are safe to share between concurrent installs, an
install target is not.

Layers are cheap: the base is probed and a *template* layer is built once per run (one
``python -m venv --without-pip``); each hypothesis' layer is a copy of the template with its own
path written in (a dozen small files, about a millisecond on an idle machine; bench/isolation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from runner.engine import layer_signature
from runner.engine.layer_cache import LayerCache
from runner.engine.layer_signature import Signature
from runner.engine.process import run_captured
from runner.engine.spare_layers import SpareLayers
from runner.engine.worktrees import default_worktree_base

__all__ = [
    "ISOLATION_MODES",
    "BaseInterpreter",
    "EnvironmentPool",
    "EnvironmentSetupError",
    "HypothesisEnvironment",
    "Isolation",
    "find_base_python",
    "probe_interpreter",
]

Isolation = Literal["venv", "none"]
ISOLATION_MODES: tuple[Isolation, ...] = ("venv", "none")

# Sorts after every name an installer writes ('~' is the last printable ASCII character), so that
# site.py puts a hypothesis' own editable paths (``__editable__.x.pth``, ``_x.pth``) before the base.
PARENT_PTH = "~worktree-runner-base.pth"
# Processed after every other .pth (it sorts after PARENT_PTH too). setuptools' editable install of a
# flat-layout project appends its finder to sys.meta_path, behind the path finder, so a regular copy
# of the same package in the base would be imported instead of the hypothesis' worktree: move the
# editable finders (only the layer's own exist: the base's .pth hooks never run) to the front.
EDITABLES_FIRST_PTH = "~~worktree-runner-editables-first.pth"
_EDITABLES_FIRST = (  # one line: site.py runs a .pth line that starts with "import"
    "import sys; sys.meta_path.sort("
    "key=lambda f: not str(getattr(f, '__module__', '')).startswith('__editable__'))\n"
)
_PROBE_TIMEOUT = 60.0
_VENV_TIMEOUT = 120.0
# How a copied console script finds its interpreter: the first ``python`` on PATH, the layer's.
# ``env`` would pass "python -E" as one word, so scripts with interpreter options go through sh
# (the trampoline pip itself writes for long paths; its second line is a no-op string to Python).
_SHEBANG = b"#!/usr/bin/env python\n"
_SHEBANG_WITH_ARGS = b"#!/bin/sh\n'''exec' python %s \"$0\" \"$@\"\n' '''\n"
_PIP_FALLBACK = b"""import sys
try:
    from pip._internal.cli.main import main
except ImportError:
    sys.exit("worktree-runner: no pip in this hypothesis' environment: its base interpreter has none")
sys.exit(main())
"""
# What tells that something was installed into (or removed from) a site directory.
_INSTALL_MARKS = (".dist-info", ".egg-info", ".egg-link", ".pth")
_HEAD_BYTES = 512

# Kept compatible with old interpreters (no f-strings, no walrus): it runs in whatever python3 is on PATH.
_PROBE = r"""
import json, os, site, sys, sysconfig
try:
    venv_error
except NameError:
    venv_error = None
known = []
if hasattr(site, "getsitepackages"):
    known.extend(site.getsitepackages())
if getattr(site, "ENABLE_USER_SITE", False):
    known.append(site.getusersitepackages())
norm = set(os.path.normcase(os.path.abspath(p)) for p in known)
dirs = []
for p in sys.path:
    if p and os.path.normcase(os.path.abspath(p)) in norm and os.path.isdir(p) and p not in dirs:
        dirs.append(p)
print(json.dumps({
    "executable": sys.executable,
    "prefix": sys.prefix,
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "version": "%d.%d" % sys.version_info[:2],
    "site": dirs,
    "scripts": sysconfig.get_path("scripts"),
    "base_executable": getattr(sys, "_base_executable", sys.executable),
    "base_scripts": sysconfig.get_path("scripts", vars={
        "base": getattr(sys, "base_prefix", sys.prefix),
        "platbase": getattr(sys, "base_exec_prefix", sys.prefix),
    }),
    "venv_error": venv_error,
    "user_site": site.getusersitepackages() if getattr(site, "ENABLE_USER_SITE", False) else None,
}))
"""
# Appended to _PROBE when the probe also makes the template layer (argv[1]): one interpreter start, not two.
_MAKE_VENV = r"""
import os, sys
venv_error = None
if len(sys.argv) > 1:
    try:
        import venv
        venv.EnvBuilder(with_pip=False, symlinks=(os.name != "nt")).create(sys.argv[1])
    except Exception as exc:
        venv_error = "%s: %s" % (type(exc).__name__, exc)
"""


class EnvironmentSetupError(RuntimeError):
    """A hypothesis' environment could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class BaseInterpreter:
    """The interpreter (and environment) hypotheses' layers are made from."""

    executable: str
    prefix: str
    base_prefix: str
    version: str
    site_dirs: tuple[str, ...]
    scripts_dir: str
    # A venv's underlying installation: its pip installs into a shared place too, visible or not.
    base_executable: str = ""
    base_scripts_dir: str = ""
    user_site: str = ""  # where its user site directory is (or would be), "" without one

    @property
    def is_venv(self) -> bool:
        return os.path.realpath(self.prefix) != os.path.realpath(self.base_prefix)


def find_base_python(search_path: str | None) -> str:
    """The job's Python: ``python3`` (else ``python``) on ``search_path``, else the runner's own.

    In the action image the runner lives in a virtualenv of its own that is not on PATH, so this is
    the image's interpreter (pip, pytest, coverage, nothing of ours); on the command line it is the
    user's ``python3``.
    """
    for name in ("python3", "python"):
        found = shutil.which(name, path=search_path)
        if found:
            return found
    return sys.executable


async def probe_interpreter(
    python: str, env: Mapping[str, str], *, make_venv: Path | None = None
) -> BaseInterpreter:
    """Ask ``python`` (which may be a pyenv shim or a venv's) where it and its packages live.

    With ``make_venv``, the same process also makes a virtualenv without pip there (as
    ``python -m venv --without-pip`` would).
    """
    argv = [python, "-c", _MAKE_VENV + _PROBE, str(make_venv)] if make_venv else [python, "-c", _PROBE]
    try:
        result = await run_captured(argv, cwd=None, env=env, timeout=_PROBE_TIMEOUT + _VENV_TIMEOUT)
    except OSError as exc:
        raise EnvironmentSetupError(f"cannot run the base interpreter {python}: {exc}") from None
    if result.returncode != 0:
        last = result.output.strip().splitlines()[-1:] or [""]
        raise EnvironmentSetupError(
            f"the base interpreter {python} exited with code {result.returncode}: {last[0][:200]}"
        )
    try:
        answer = [line for line in result.output.splitlines() if line.startswith("{")]
        data = json.loads(answer[-1]) if answer else {}
        if data.get("venv_error"):
            raise EnvironmentSetupError(
                f"cannot make a virtualenv with {data['executable']}: {str(data['venv_error'])[:300]}"
            )
        return BaseInterpreter(
            executable=str(data["executable"]), prefix=str(data["prefix"]),
            base_prefix=str(data["base_prefix"]), version=str(data["version"]),
            site_dirs=tuple(str(d) for d in data["site"]), scripts_dir=str(data["scripts"] or ""),
            base_executable=str(data.get("base_executable") or data["executable"]),
            base_scripts_dir=str(data.get("base_scripts") or ""), user_site=str(data.get("user_site") or ""),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise EnvironmentSetupError(
            f"the base interpreter {python} does not answer like Python 3: {exc}"
        ) from None


# -- the template layer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    relpath: str
    kind: Literal["dir", "link", "file"]
    data: bytes = b""  # file content with the template path as it was (replaced on copy)
    target: str = ""  # symlink target
    mode: int = 0o644


@dataclass
class _Template:
    path: Path
    scripts: Path
    entries: list[_Entry] = field(default_factory=list)
    watched: tuple[tuple[str, frozenset[str]], ...] = ()
    spares: Path | None = None  # where layers of it wait for later runs (in its layer-cache entry)

    def layer_names(self) -> tuple[str, ...]:
        """The entries of a hypothesis' directory made from it (:func:`_make_layer`), in signature order."""
        return tuple(sorted([".", "tmp", "venv", *(os.path.join("venv", e.relpath) for e in self.entries)]))

    def relocatable(self) -> bool:
        """Do its layers hold no path of their own (so they can be moved as they are)?"""
        old = os.fsencode(self.path)
        return not any(old in e.data or str(self.path) in e.target for e in self.entries)

    def instantiate(self, dest: Path) -> None:
        """Write a copy of the template at ``dest`` with every mention of its path re-pointed."""
        old, new = os.fsencode(self.path), os.fsencode(dest)
        dest.mkdir(parents=True)
        for entry in self.entries:
            where = dest / entry.relpath
            if entry.kind == "dir":
                where.mkdir(parents=True, exist_ok=True)
            elif entry.kind == "link":
                target = entry.target.replace(str(self.path), str(dest))
                os.symlink(target, where)
            else:
                data = entry.data.replace(old, new) if old in entry.data else entry.data
                fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, entry.mode)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)


def _snapshot(root: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames):
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(full):
                entries.append(_Entry(rel, "link", target=os.readlink(full)))
            else:
                entries.append(_Entry(rel, "dir"))
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(full):
                entries.append(_Entry(rel, "link", target=os.readlink(full)))
            else:
                with open(full, "rb") as fh:
                    data = fh.read()
                entries.append(_Entry(rel, "file", data=data, mode=stat.S_IMODE(os.stat(full).st_mode)))
    return entries


def _shebang_interpreter(head: bytes) -> tuple[str, bytes, bytes] | None:
    """(interpreter, arguments, rest of the file) of a script that names its interpreter by path.

    Knows the plain ``#!/path/python [args]`` line and the ``/bin/sh`` trampoline pip/distlib write
    when that path is too long or has spaces. ``#!/usr/bin/env python3`` scripts need no copy: PATH
    already finds the layer's python first.
    """
    if not head.startswith(b"#!"):
        return None
    first, _, rest = head.partition(b"\n")
    words = first[2:].strip().split(None, 1)
    if not words:
        return None
    if words[0] == b"/bin/sh":
        match = re.match(rb"'''exec' \"?([^\"\n]+?)\"? \"\$0\" \"\$@\"\n' '''\n", rest)
        if match is None:
            return None
        return os.fsdecode(match.group(1)), b"", rest[match.end() :]
    if words[0].endswith(b"/env"):
        return None
    return os.fsdecode(words[0]), words[1] if len(words) > 1 else b"", rest


def _in_venv(interpreter: str) -> bool:
    bindir = os.path.dirname(interpreter)
    return any(os.path.isfile(os.path.join(d, "pyvenv.cfg")) for d in (bindir, os.path.dirname(bindir)))


def _belongs_to(base: BaseInterpreter, interpreter: str) -> bool:
    """Would a script with this interpreter run in (and install into) a shared environment of the base?

    That is the base's own ``bin/python*``, and its underlying installation's interpreter wherever it is
    reached without a virtualenv (``/usr/bin/pip`` of the base's ``/usr/bin/python3``). The same binary
    in *another* virtualenv is another environment: its programs are left alone.
    """
    if not os.path.basename(interpreter).startswith("python"):
        return False
    if os.path.normpath(os.path.dirname(interpreter)) == os.path.normpath(base.scripts_dir):
        return True
    for candidate in {base.executable, base.base_executable} - {""}:
        try:
            if os.path.samefile(interpreter, candidate) and not _in_venv(interpreter):
                return True
        except OSError:
            continue
    return False


_NOT_SCRIPTS = ("python", "activate", "Activate")  # names _copy_scripts never copies


def _copy_scripts(base: BaseInterpreter, shims: Path, search_path: str | None) -> list[str]:
    """Copy every console script of the base environment into ``shims``, run by the ``python`` on PATH.

    ``shims`` is shared by the run's layers and put on PATH right after a layer's ``bin``, whose
    ``python`` is what ``#!/usr/bin/env python`` then finds: ``pytest`` runs in the hypothesis'
    layer and ``pip`` installs into it, and a layer needs no script copies of its own (its own
    installs still come first, from its ``bin``). The base's scripts directory is read first
    (pyenv's shims are bash scripts that would run the base's ``pytest``); then PATH, in order,
    where the first program of a name is the one a command runs, so only that one is considered.
    """
    taken: set[str] = set()
    copied: list[str] = []
    dirs = [d for d in (base.scripts_dir, base.base_scripts_dir) if d]
    first_path_entry = len(dirs)
    dirs += [d for d in (search_path or "").split(os.pathsep) if d]
    seen_dirs: set[str] = set()
    for index, directory in enumerate(dirs):
        real = os.path.realpath(directory)
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if name in taken or name.startswith(_NOT_SCRIPTS):
                continue
            full = os.path.join(directory, name)
            try:
                if not os.path.isfile(full) or not os.access(full, os.X_OK):
                    continue
                with open(full, "rb") as fh:
                    parsed = _shebang_interpreter(fh.read(_HEAD_BYTES))
                    rest = parsed[2] + fh.read() if parsed is not None else b""
                if parsed is None or not _belongs_to(base, parsed[0]):
                    if index >= first_path_entry:  # on PATH: this name is someone else's program
                        taken.add(name)
                    continue
            except OSError:
                continue
            taken.add(name)
            copied.append(full)
            fd = os.open(shims / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o755)
            with os.fdopen(fd, "wb") as out:
                out.write(_SHEBANG_WITH_ARGS % parsed[1] if parsed[1] else _SHEBANG)
                out.write(rest)
    # `pip` must never fall through to PATH (a pyenv shim, /usr/bin/pip of another interpreter, ...):
    # whatever it finds there installs into a shared environment. Without a pip script in the base,
    # the layer's own pip module (the base's, if it has one) answers, or a clear error.
    for name in ("pip", "pip3", f"pip{base.version}"):
        if not (shims / name).exists():
            fd = os.open(shims / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o755)
            with os.fdopen(fd, "wb") as out:
                out.write(_SHEBANG + _PIP_FALLBACK)
    return copied


def _site_packages(venv: Path) -> Path:
    found = [p for p in venv.glob("lib*/python*/site-packages") if not p.parent.parent.is_symlink()]
    if len(found) != 1:
        raise EnvironmentSetupError(f"cannot find the site-packages directory of {venv}")
    return found[0]


# pyvenv.cfg keys a layer does without: ``command`` only records how the template was made, with the
# template's path, which would tie every layer to the place it was made (spare layers move).
_DROPPED_CONFIG_KEYS = ("command",)


def _drop_config_keys(config: Path) -> None:
    lines = config.read_text(encoding="utf-8").splitlines(keepends=True)
    keep = [line for line in lines if line.partition("=")[0].strip() not in _DROPPED_CONFIG_KEYS]
    config.write_text("".join(keep), encoding="utf-8")


# What makes a layer: a cached template made by other code is not trusted (runner.engine.layer_cache).
_LAYER_CODE = (_PROBE, _MAKE_VENV, _EDITABLES_FIRST, PARENT_PTH, EDITABLES_FIRST_PTH, _SHEBANG.decode(),
               _SHEBANG_WITH_ARGS.decode(), _PIP_FALLBACK.decode(), ",".join(_NOT_SCRIPTS),
               ",".join(_DROPPED_CONFIG_KEYS))  # fmt: skip

Publish = Callable[[], "Path | None"]  # publishes a new template; its cache entry, or None
SPARES = "spares"  # the directory of spare layers in a template's layer-cache entry


async def _build_template(
    root: Path, python: str, env: Mapping[str, str]
) -> tuple[_Template, Publish | None]:
    """The template layer of ``python`` (from the user's layer cache when it can be trusted, else made
    in ``root``), and what publishes a new one to that cache (to run later, off the critical path)."""
    search_path = env.get("PATH")
    cache = LayerCache.for_base(python, env, _LAYER_CODE)
    if cache is not None:
        found = cache.load()
        if found is not None:
            entry, record = found
            try:
                base = BaseInterpreter(**record["data"]["base"])
                template = _Template(entry / "layer" / "template", entry / "layer" / "scripts")
                template.entries = _snapshot(template.path)
                template.watched = tuple((d, _installed(d)) for d in base.site_dirs)
                template.spares = entry / SPARES
                return template, None
            except (TypeError, KeyError, OSError):
                pass  # an entry this version cannot read: make a new one
    root.mkdir()
    path = root / "template"
    base = await probe_interpreter(python, env, make_venv=path)

    def finish() -> tuple[_Template, list[str]]:
        for activate in (path / "bin").glob("[Aa]ctivate*"):
            activate.unlink()  # nobody activates a layer: its PATH and VIRTUAL_ENV are set for it
        # Empty until something installs headers (pip makes include/site/... then): two fewer directories
        # to make per hypothesis.
        shutil.rmtree(path / "include", ignore_errors=True)
        _drop_config_keys(path / "pyvenv.cfg")
        site_packages = _site_packages(path)
        (site_packages / PARENT_PTH).write_text("".join(d + "\n" for d in base.site_dirs), encoding="utf-8")
        (site_packages / EDITABLES_FIRST_PTH).write_text(_EDITABLES_FIRST, encoding="utf-8")
        shims = root / "scripts"
        shims.mkdir()
        copied = _copy_scripts(base, shims, search_path)
        watched = tuple((d, _installed(d)) for d in base.site_dirs)
        return _Template(path, shims, _snapshot(path), watched), copied

    template, copied = finish()  # on the loop: once, and only when the layer cache had no template
    if cache is None:
        return template, None
    watch = [base.scripts_dir, base.base_scripts_dir, base.user_site, *base.site_dirs, *copied]
    data = {"base": dataclasses.asdict(base)}
    return template, functools.partial(cache.publish, root, data, [w for w in watch if w])


# -- per hypothesis -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HypothesisEnvironment:
    """Where one hypothesis' commands run: its layer (None with ``isolation: none``) and temp dir."""

    venv: Path | None = None
    tmp: Path | None = None
    scripts: Path | None = None  # the base's console scripts, shared by the run's layers
    # The base's site directories and what was installed in them when the run started.
    watched: tuple[tuple[str, frozenset[str]], ...] = ()

    @property
    def python(self) -> str | None:
        return str(self.venv / "bin" / "python") if self.venv is not None else None

    def apply(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with the layer first on PATH and the private temp dir."""
        out = dict(env)
        if self.venv is not None:
            first = [str(self.venv / "bin")] + ([str(self.scripts)] if self.scripts is not None else [])
            out["PATH"] = os.pathsep.join([*first, out.get("PATH", os.defpath)])
            out["VIRTUAL_ENV"] = str(self.venv)
            out.pop("PYTHONHOME", None)  # it would point the layer's python at another stdlib
            out.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        if self.tmp is not None:
            for name in ("TMPDIR", "TMP", "TEMP"):
                out[name] = str(self.tmp)
        return out

    def base_changed(self) -> str | None:
        """Why the base environment no longer looks as it did (something installed into it), or None.

        A last line of defence after a setup: an install that escaped the layer (a script by an
        absolute path, an unusual installer) must not let hypotheses pass with each other's code.
        """
        for directory, before in self.watched:
            now = _installed(directory)
            if now != before:
                changed = sorted(now ^ before)
                return (
                    f"the shared environment {directory} changed during setup ({', '.join(changed[:3])}): "
                    "something installed outside the hypothesis' own environment"
                )
        return None


def _installed(directory: str) -> frozenset[str]:
    try:
        return frozenset(n for n in os.listdir(directory) if n.endswith(_INSTALL_MARKS))
    except OSError:
        return frozenset()


def _force_rmtree(path: Path) -> None:
    """Remove ``path`` even if a test left read-only directories behind in it."""

    def fix(func: object, name: str, exc: object) -> None:
        parent = os.path.dirname(name)
        with contextlib.suppress(OSError):
            os.chmod(parent, 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
                shutil.rmtree(name, ignore_errors=True)
            else:
                os.unlink(name)

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=fix)  # onexc would need 3.12


async def _remove(path: Path) -> None:
    """``rm -rf`` off the loop (a layer an install filled can hold thousands of files), then make sure."""
    with contextlib.suppress(OSError):
        await run_captured(["rm", "-rf", "--", str(path)], cwd=None, env={"PATH": os.defpath}, timeout=300)
    _force_rmtree(path)  # what rm could not remove (read-only directories a test left behind)


def _make_layer(template: _Template, home: Path) -> Signature | None:
    """A new layer of ``template`` at ``home`` (with its temp dir), backdated; its signature.

    Two dozen file system calls on the loop (0.5-10 ms on this machine's disk): in a first wave each
    hypothesis makes its own layer and starts its command before the next one's is made.
    """
    home.mkdir()
    template.instantiate(home / "venv")
    (home / "tmp").mkdir()
    layer_signature.backdate(home)
    return layer_signature.signature(home)


class EnvironmentPool:
    """The environments of one run: a private scratch directory, one template per base interpreter."""

    def __init__(self, isolation: Isolation = "venv", *, base_dir: Path | None = None) -> None:
        self.isolation: Isolation = isolation
        self._base_dir = base_dir
        self.root: Path | None = None
        self._templates: dict[str, asyncio.Task[_Template]] = {}
        # New templates to copy to the layer cache at close(), and the templates this run used.
        self._publishing: list[tuple[_Template, Publish]] = []
        self._used: dict[int, _Template] = {}
        self._spares: dict[int, SpareLayers | None] = {}  # per template, None: it keeps none
        # Directories a finished hypothesis left exactly as made, per template, with their signature.
        self._unused: dict[int, list[tuple[Path, tuple[str, ...], Signature]]] = {}
        self._made = 0
        self._pythons: dict[str | None, str] = {}  # the base python found on each PATH, once per run
        self.reused = 0  # how many hypotheses got an unchanged directory (for tests and benchmarks)
        self.spared = 0  # how many of them were left by an earlier run (spare_layers)

    def _root(self) -> Path:
        if self.root is None:
            base = self._base_dir or default_worktree_base()
            self.root = Path(tempfile.mkdtemp(prefix="worktree-runner-env-", dir=base))
        return self.root

    async def _template(self, env: Mapping[str, str]) -> _Template:
        search_path = env.get("PATH")
        python = self._pythons.get(search_path)
        if python is None:
            python = self._pythons[search_path] = find_base_python(search_path)
        key = f"{python}\0{search_path}"
        task = self._templates.get(key)
        if task is None:
            root = self._root() / f"t{len(self._templates)}"  # made only when it is built here
            task = asyncio.ensure_future(self._build(root, python, env))
            self._templates[key] = task
        # One build serves every hypothesis; a hypothesis cancelled while waiting must not cancel it.
        return await asyncio.shield(task)

    async def _build(self, root: Path, python: str, env: Mapping[str, str]) -> _Template:
        template, publish = await _build_template(root, python, env)
        if publish is not None:  # when the run is over (close), not while hypotheses wait
            self._publishing.append((template, publish))
        return template

    @contextlib.asynccontextmanager
    async def environment(self, index: int, env: Mapping[str, str]) -> AsyncIterator[HypothesisEnvironment]:
        """An environment for hypothesis ``index`` (``env``: its variables, for PATH).

        New, or one an earlier hypothesis of this run left exactly as it was made; on exit it is kept for
        the next hypothesis if it is still unchanged, else removed. Directories are named by the pool,
        not by ``index`` (kept in the signature for its callers: layers no longer belong to one index).
        """
        if self.isolation == "none":
            yield HypothesisEnvironment()
            return
        try:
            template = await self._template(env)
        except EnvironmentSetupError as exc:
            raise EnvironmentSetupError(
                f"{exc} (isolation: none runs without an environment of its own)"
            ) from None
        free = self._unused.setdefault(id(template), [])
        self._used[id(template)] = template
        signature: Signature | None
        if free:
            home, names, signature = free.pop()
            self.reused += 1
        else:
            home = self._root() / f"{self._made:03d}"
            self._made += 1
            spares = self._spares_of(template)
            signature = spares.claim(home, template.layer_names()) if spares is not None else None
            if signature is not None:  # left exactly as made by an earlier run
                self.reused += 1
                self.spared += 1
            else:
                try:
                    signature = _make_layer(template, home)
                except OSError as exc:
                    await asyncio.shield(_remove(home))
                    raise EnvironmentSetupError(
                        f"cannot make the hypothesis' environment in {home}: {exc}"
                    ) from None
            names = tuple(e[0] for e in signature or ())
        environment = HypothesisEnvironment(
            venv=home / "venv", tmp=home / "tmp", scripts=template.scripts, watched=template.watched
        )
        try:
            yield environment
        finally:
            # Only a directory that is exactly as it was made serves again; anything else (an install,
            # a file in its temp dir, a changed mode) is removed now, as a new hypothesis must not see it.
            if (
                signature is not None
                and self.root is not None
                and layer_signature.signature(home, names) == signature
            ):
                free.append((home, names, signature))
            else:
                await asyncio.shield(_remove(home))

    def spare_unused(self) -> None:
        """Move the unchanged layers no hypothesis uses now to the layer cache, for later runs (when
        this run will not start another hypothesis; those a move failed for stay in the scratch dir)."""
        for key, free in self._unused.items():
            spares = self._spares_of(self._used[key])
            if spares is not None:
                free[:] = [unused for unused in free if not spares.keep(unused[0], unused[2])]

    def _spares_of(self, template: _Template) -> SpareLayers | None:
        key = id(template)
        if key not in self._spares:
            where = template.spares
            self._spares[key] = SpareLayers(where) if where is not None and template.relocatable() else None
        return self._spares[key]

    async def close(self) -> None:
        """Remove the scratch directory (templates and anything left). Safe to call twice."""
        for task in self._templates.values():
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._templates.values(), return_exceptions=True)
        self._templates.clear()
        for template, publish in self._publishing:  # before the scratch directory it copies from goes
            entry = publish()
            if entry is not None:
                template.spares = entry / SPARES
        self._publishing.clear()
        self._spares.clear()  # a template published just now has a place for spares now
        self.spare_unused()  # moved out of the scratch directory before it goes
        self._unused.clear()
        self._used.clear()
        self._spares.clear()
        if self.root is not None:
            root, self.root = self.root, None
            try:
                os.rmdir(root)  # empty when every layer was kept as a spare: no `rm` to start
            except OSError:
                await _remove(root)
