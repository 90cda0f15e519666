"""`meson install --destdir` lays out an appliance (docs/operations.md, "Installing"): the daemons
in sbin, weirctl and the tools in bin, every binary printing one version and revision, the example
/etc/weir/weir.yaml valid, systemd units that systemd-analyze accepts and whose command lines name
the installed files, the tmpfiles.d entry for /run/weir, and man pages that render. No root: the
install goes to a temporary directory.

systemd is not PID 1 here, and `systemd-analyze verify` needs none: with --root it reads the units
from the destdir as a root file system, after the test copies in what a real system has and the
destdir lacks (systemd's own units, /bin/kill)."""

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from service_support import version_of

BUILD_ROOT = Path(os.environ.get("WEIR_BUILD_ROOT", "build")).resolve()
SOURCE_ROOT = Path(os.environ.get("WEIR_SOURCE_ROOT", ".")).resolve()
# man and systemd warnings from wide tables are layout advice, not errors in the page.
LAYOUT_WARNING = re.compile(r"table wider than line width|cannot adjust line|can't break line"
                            r"|^warning: file '.*', around line \d+:$")


def introspect(what: str):
    result = subprocess.run(["meson", "introspect", what, str(BUILD_ROOT)], capture_output=True,
                            text=True, check=True, timeout=60)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def layout():
    options = {o["name"]: o["value"] for o in introspect("--buildoptions")}
    prefix = Path(options["prefix"])
    unit_dir = options["systemdsystemunitdir"]
    if not unit_dir:
        unit_dir = ("/lib/systemd/system" if str(prefix) == "/usr"
                    else str(prefix / "lib" / "systemd" / "system"))
    with tempfile.TemporaryDirectory(prefix="weir-install-") as destdir:
        result = subprocess.run(["meson", "install", "-C", str(BUILD_ROOT), "--destdir", destdir,
                                 "--no-rebuild", "--quiet"],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        yield {
            "root": Path(destdir),
            "prefix": prefix,
            "bin": prefix / options["bindir"],
            "sbin": prefix / options["sbindir"],
            "libexec": prefix / options["libexecdir"] / "weir",
            "etc": prefix / options["sysconfdir"],  # /etc when the prefix is /usr
            "man": prefix / options["mandir"],
            "doc": prefix / options["datadir"] / "doc" / "weir",
            "units": Path(unit_dir),
            "tmpfiles": (Path("/usr/lib/tmpfiles.d") if str(prefix) == "/usr"
                         else prefix / "lib" / "tmpfiles.d"),
            "version": introspect("--projectinfo")["version"],
        }


def inside(layout, path: Path) -> Path:
    """Where the absolute installed path lies in the destdir."""
    return layout["root"] / path.relative_to("/")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


DAEMONS = ["weir-dataplane", "weir-control"]
COMMANDS = ["weirctl", "weir-frame-echo", "weir-frame-load"]
HELPERS = ["weir-tls-worker"]  # started by weir-control only: libexec/weir, off PATH


def test_binaries_in_sbin_and_bin_executable_by_all(layout):
    installed = {p.name for p in inside(layout, layout["bin"]).iterdir()} | \
        {p.name for p in inside(layout, layout["sbin"]).iterdir()}
    assert installed == set(DAEMONS + COMMANDS), installed  # build aids (weir-metrics-doc) stay
    for name in DAEMONS:
        path = inside(layout, layout["sbin"] / name)
        assert path.is_file() and mode(path) == 0o755, (path, oct(mode(path)))
    for name in COMMANDS:
        path = inside(layout, layout["bin"] / name)
        assert path.is_file() and mode(path) == 0o755, (path, oct(mode(path)))
    assert {p.name for p in inside(layout, layout["libexec"]).iterdir()} == set(HELPERS)
    for name in HELPERS:
        path = inside(layout, layout["libexec"] / name)
        assert path.is_file() and mode(path) == 0o755, (path, oct(mode(path)))


def test_weir_control_starts_the_installed_tls_worker_by_default(layout):
    """Installed, weir-control has no weir-tls-worker beside it in sbin: its default is the path
    `meson install` put the worker at."""
    control = inside(layout, layout["sbin"] / "weir-control")
    usage = subprocess.run([str(control), "--help"], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0, usage.stderr
    assert f"else {layout['libexec'] / 'weir-tls-worker'})" in usage.stdout, usage.stdout


def test_every_installed_binary_prints_the_same_version_and_revision(layout):
    reports = {}
    for directory, names in ((layout["sbin"], DAEMONS), (layout["bin"], COMMANDS),
                             (layout["libexec"], HELPERS)):
        for name in names:
            reports[name] = version_of(inside(layout, directory / name))
    assert {r["program"] for r in reports.values()} == set(reports), reports
    assert {r["version"] for r in reports.values()} == {layout["version"]}, reports
    revisions = {r["revision"] for r in reports.values()}
    assert len(revisions) == 1, reports
    if (SOURCE_ROOT / ".git").exists():
        # The tree's revision now: a build older than the last commit or edit fails here, as it
        # should (meson test rebuilds first, and vcs_tag runs at every build).
        described = subprocess.run(
            ["git", "-C", str(SOURCE_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        assert revisions == {described}, (reports, "git describe says", described)
    else:
        assert revisions == {"unknown"}, reports


def test_example_configuration_is_installed_and_valid(layout):
    config = inside(layout, layout["etc"] / "weir" / "weir.yaml")
    assert config.is_file() and mode(config) == 0o644, oct(mode(config))
    example = SOURCE_ROOT / "config" / "examples" / "appliance.yaml"
    assert config.read_bytes() == example.read_bytes()
    dataplane = inside(layout, layout["sbin"] / "weir-dataplane")
    result = subprocess.run([str(dataplane), "--check-config", str(config)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == "", result.stdout + result.stderr
    assert result.stdout == f"{config}: configuration is valid\n"


def test_licence_and_docs_the_man_pages_name_are_installed(layout):
    doc = inside(layout, layout["doc"])
    assert (doc / "LICENSE").read_bytes() == (SOURCE_ROOT / "LICENSE").read_bytes()
    for name in ("operations.md", "metrics.md", "configuration.md", "tls.md"):
        assert (doc / "docs" / name).read_bytes() == (SOURCE_ROOT / "docs" / name).read_bytes()
    rules = Path("prometheus") / "weir-rules.yml"  # docs/operations.md, "Alerts" names this path
    assert (doc / "docs" / rules).read_bytes() == (SOURCE_ROOT / "docs" / rules).read_bytes()
    page = inside(layout, layout["man"] / "man8" / "weir-dataplane.8").read_text()
    assert str(layout["doc"] / "docs") in page


def test_licence_file_is_the_licence_meson_declares():
    declared = re.search(r"^\s*license:\s*'([^']+)'", (SOURCE_ROOT / "meson.build").read_text(),
                         re.MULTILINE)
    assert declared, "meson.build's project() declares no license"
    # Debian ships the text of each common licence under its SPDX name.
    reference = Path("/usr/share/common-licenses") / declared[1]
    assert reference.is_file(), f"no reference text for {declared[1]}"
    assert (SOURCE_ROOT / "LICENSE").read_bytes() == reference.read_bytes()


def test_debian_package_version_is_meson_version(layout):
    # debian/changelog's top entry names the package's version; meson's project() is the source.
    top = (SOURCE_ROOT / "debian" / "changelog").read_text().splitlines()[0]
    match = re.fullmatch(r"weir \((?P<version>[^)]+)\) \S+; urgency=\S+", top)
    assert match, top
    assert match["version"].split("-")[0] == layout["version"], (top, layout["version"])


def unit_entries(text: str) -> dict:
    """KEY -> [values] of a unit file (every section; comments and blank lines dropped)."""
    entries = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            entries.setdefault(key, []).append(value)
    return entries


def test_units_run_the_installed_binaries_on_the_installed_configuration(layout):
    config = layout["etc"] / "weir" / "weir.yaml"
    for daemon in DAEMONS:
        path = inside(layout, layout["units"] / f"{daemon}.service")
        assert path.is_file() and mode(path) == 0o644, path
        entries = unit_entries(path.read_text())
        assert entries["ExecStart"] == [f"{layout['sbin'] / daemon} --config {config}"], entries
        assert entries["Type"] == ["notify"], "built with libsystemd, the units wait for READY=1"
        assert entries["RuntimeDirectory"] == ["weir"]
        # Both units share /run/weir: without Preserve one unit's stop would delete the other's
        # socket.
        assert entries["RuntimeDirectoryPreserve"] == ["yes"]
        assert entries["WantedBy"] == ["multi-user.target"]
    dataplane = unit_entries(inside(layout, layout["units"] / "weir-dataplane.service").read_text())
    assert dataplane["LimitMEMLOCK"] == ["infinity"]
    control = unit_entries(inside(layout, layout["units"] / "weir-control.service").read_text())
    assert "weir-dataplane.service" in control["After"][0].split()
    assert control["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


@pytest.fixture(scope="module")
def system_root(layout):
    """The destdir plus what the target system has that the destdir lacks, for systemd's tools."""
    with tempfile.TemporaryDirectory(prefix="weir-root-") as root:
        root = Path(root)
        shutil.copytree(layout["root"], root, dirs_exist_ok=True, symlinks=True)
        for system_units in ("/lib/systemd/system", "/usr/lib/systemd/system"):
            if Path(system_units).is_dir():
                shutil.copytree(system_units, root / system_units.lstrip("/"), symlinks=True,
                                dirs_exist_ok=True)
                break
        (root / "bin").mkdir(exist_ok=True)
        shutil.copy2(shutil.which("kill") or "/bin/kill", root / "bin" / "kill")
        yield root


def systemd_tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} (Debian's systemd package, installed by scripts/deps) is missing"
    return path


def test_systemd_analyze_accepts_the_units_found_by_name(layout, system_root):
    # By name, not path: systemd finds them only in a directory of its unit search path.
    result = subprocess.run(
        [systemd_tool("systemd-analyze"), "verify", "--man=no", f"--root={system_root}",
         "weir-dataplane.service", "weir-control.service"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout + result.stderr == "", \
        result.stdout + result.stderr


def test_systemd_analyze_reports_a_broken_unit(layout, system_root):
    # The check above can fail: a unit with an unknown key and a bad value is reported.
    unit = system_root / layout["units"].relative_to("/") / "weir-broken.service"
    text = inside(layout, layout["units"] / "weir-dataplane.service").read_text()
    unit.write_text(text.replace("LimitMEMLOCK=infinity", "LimitMEMLOCK=lots\nTypo=1"))
    try:
        result = subprocess.run(
            [systemd_tool("systemd-analyze"), "verify", "--man=no", f"--root={system_root}",
             "weir-broken.service"], capture_output=True, text=True, timeout=120)
    finally:
        unit.unlink()
    output = result.stdout + result.stderr
    assert "Unknown key" in output and "Typo" in output and "lots" in output, output


def test_tmpfiles_entry_creates_run_weir_and_var_lib_weir(layout, system_root):
    entry = inside(layout, layout["tmpfiles"] / "weir.conf")
    assert entry.is_file() and mode(entry) == 0o644
    # By name: systemd-tmpfiles looks it up in its search path under the root.
    result = subprocess.run([systemd_tool("systemd-tmpfiles"), f"--root={system_root}",
                             "--create", "weir.conf"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    run_weir = system_root / "run" / "weir"
    assert run_weir.is_dir() and mode(run_weir) == 0o755
    state = system_root / "var" / "lib" / "weir"  # weir-control's state file (control.state_file)
    assert state.is_dir() and mode(state) == 0o755


MAN_PAGES = {
    # page: text its rendering must contain (from the page's own head, and from the docs it embeds)
    "man8/weir-dataplane.8": ["weir-dataplane --check-config FILE", "SIGUSR1", "NOTIFY_SOCKET"],
    "man8/weir-control.8": ["weir-control --config FILE", "SIGHUP", "weir_build_info"],
    "man8/weirctl.8": ["check-config", "--socket PATH", "Exit codes"],
    "man8/weir-tls-worker.8": ["weir-tls-worker - TLS termination", "--ticket-keys", "SIGTERM"],
    "man5/weir.yaml.5": ["dataplane.control_socket", "control.metrics", "Cross-checks"],
    "man1/weir-frame-echo.1": ["weir-frame-echo - a verifying echo", "--listen", "--reconnect"],
    "man1/weir-frame-load.1": ["weir-frame-load - a load generator", "--listen", "--reconnect"],
}


@pytest.mark.parametrize("page", sorted(MAN_PAGES))
def test_man_page_renders(layout, page):
    path = inside(layout, layout["man"] / page)
    assert path.is_file() and mode(path) == 0o644, path
    result = subprocess.run(["man", "-l", str(path)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "0",
                                 "MANPAGER": "cat", "PAGER": "cat", "LANG": "C.UTF-8"})
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines()
                if line.strip() and not LAYOUT_WARNING.search(line)
                and not line.startswith("  table wider")]
    assert problems == [], problems
    text = re.sub(r".\x08", "", result.stdout)  # overstrike bold and underline
    name = Path(page).stem.upper()
    assert text.startswith(f"{name}(") and "NAME" in text and "SEE ALSO" in text, text[:400]
    assert f"Weir {layout['version']}" in text
    words = " ".join(text.split())  # justified lines have runs of spaces
    for expected in MAN_PAGES[page]:
        assert expected in words, (page, expected)
    for markdown in ("```", "|---|", "**", "@BODY@", "@VERSION@", "@DOCDIR@"):
        assert markdown not in text, (page, markdown)
