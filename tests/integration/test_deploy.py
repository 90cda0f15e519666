"""The Debian package and the Ansible roles (ansible/), on freshly made bookworm roots.

One .deb serves every test: $WEIR_DEB when set (a package built already), else scripts/package
builds it once here (a clone of the committed tree), started in the background before the first
test, together with mmdebstrap making one bookworm root as a tarball: every root of the suite is
a fresh copy of it. While they run: ansible-lint and --syntax-check pass on ansible/, and the weir
role's reload-or-restart decision is checked for one change of each kind. Then
scripts/package-install-check installs the package with apt into a copy of the root of its own,
in the background, while ansible/site.yml, with the example inventory's lb1 and mon1 pointed at the fresh root
through Ansible's chroot connection (community.general.chroot), fails clearly without an IOMMU,
applies, applies again with changed=0, and shows nothing to change under --check --diff;
python3-testinfra checks what it left; a configuration that does not validate is refused with the
file on the box unchanged; and the root's binaries, started chrooted with the units' command lines
in the namespace test bed, carry traffic.

There is no systemd as PID 1 in a chroot: the roles see ansible_facts.is_chroot and change files
only (ansible/README.md, "On a real host"), so their handlers (start, reload, drained restart) do
not run here. Needs root, mmdebstrap and Debian's apt mirror."""

import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import testinfra
import yaml

from netbed import (  # noqa: F401 (fixtures)
    ADDRESSES,
    LISTENER_ADDRESS,
    DataplaneProcess,
    poll_until,
    testbed_factory,
)

SOURCE_ROOT = Path(os.environ.get("WEIR_SOURCE_ROOT", ".")).resolve()
ANSIBLE_DIR = SOURCE_ROOT / "ansible"
EXAMPLE_INVENTORY = ANSIBLE_DIR / "inventory" / "example" / "hosts.yml"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                   re.MULTILINE)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap and chroot need root")


def run(argv, timeout, cwd=None, env=None):
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


class Background:
    """A command started in the background with its output in a log; wait() asserts it
    succeeded. Stopped if still running when the suite ends."""

    def __init__(self, argv, log: Path, cwd=None):
        self.argv, self.log = argv, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

    def wait(self, timeout):
        code = self.proc.wait(timeout)
        assert code == 0, f"{self.argv} exited with {code}:\n" + \
            self.log.read_text(errors="replace")[-6000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


WORK_PREFIX = "weir-deploy."


def sweep_stale_work_dirs():
    """Removes the work directories of runs that were killed (meson test's SIGKILL, half a second
    after its SIGTERM, leaves no time for the fixtures' cleanup): those whose owner process is
    gone, with any mount left in their roots."""
    for path in Path(tempfile.gettempdir()).glob(WORK_PREFIX + "*"):
        try:
            pid = int((path / "owner").read_text())
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{pid}").exists():
            continue
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(f"{path}/")), reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, timeout=30)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def work_dir():
    """The suite's temporary files: the bookworm tarball, the package, the roots, the logs."""
    sweep_stale_work_dirs()
    path = Path(tempfile.mkdtemp(prefix=WORK_PREFIX))
    (path / "owner").write_text(str(os.getpid()))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def bookworm_base(work_dir):
    """mmdebstrap making a bookworm root as a new box has it (systemd, python3 for Ansible's
    modules, man-db for the man pages), once, as a tarball: each root is a copy of it."""
    tarball = work_dir / "bookworm.tar"
    made = Background(["mmdebstrap", "--quiet", "--variant=apt",
                       "--include=systemd,python3,man-db", "bookworm", str(tarball)],
                      work_dir / "mmdebstrap.log")
    try:
        yield made, tarball
    finally:
        made.stop()


@pytest.fixture(scope="module")
def package_build(work_dir):
    """scripts/package into work_dir/deb, in the background (None with $WEIR_DEB)."""
    if os.environ.get("WEIR_DEB"):
        yield None
        return
    build = Background([str(SOURCE_ROOT / "scripts" / "package"), str(work_dir / "deb")],
                       work_dir / "package.log", cwd=SOURCE_ROOT)
    try:
        yield build
    finally:
        build.stop()


@pytest.fixture(scope="module", autouse=True)
def started_first(bookworm_base, package_build):
    """The root and the package are made while the tests that need neither run."""


@pytest.fixture(scope="module")
def deb(package_build, work_dir):
    given = os.environ.get("WEIR_DEB")
    if given:
        return Path(given).resolve()
    package_build.wait(1800)
    debs = list((work_dir / "deb").glob("weir_*_amd64.deb"))
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="module")
def base_tarball(bookworm_base):
    made, tarball = bookworm_base
    made.wait(900)
    return tarball


def deb_version(deb: Path) -> str:
    return run(["dpkg-deb", "-f", str(deb), "Version"], timeout=30).stdout.strip()


def test_ansible_lint_is_clean():
    result = run(["ansible-lint", "--offline"], timeout=300, cwd=ANSIBLE_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_syntax_check():
    result = run(["ansible-playbook", "--syntax-check", "site.yml"], timeout=120, cwd=ANSIBLE_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def inventory_config(box: str) -> dict:
    """/etc/weir/weir.yaml as the example inventory gives it for box."""
    group = yaml.safe_load((EXAMPLE_INVENTORY.parent / "group_vars" / "weir.yml").read_text())
    own = yaml.safe_load((EXAMPLE_INVENTORY.parent / "host_vars" / f"{box}.yml").read_text())
    return {"node_id": own["weir_node_id"], "dataplane": own["weir_dataplane"],
            "tcp": group["weir_tcp"], "listeners": group["weir_listeners"],
            "pools": group["weir_pools"], "control": own["weir_control"]}


def edited(section: str, edit) -> dict:
    """An extra-vars dict changing one section of lb1's configuration by edit(copy)."""
    config = inventory_config("lb1")
    names = {"node_id": "weir_node_id", "dataplane": "weir_dataplane", "tcp": "weir_tcp",
             "listeners": "weir_listeners", "pools": "weir_pools", "control": "weir_control"}
    value = edit(config[section])
    return {names[section]: value}


def setting(path: list, value):
    """An edit setting the item at path (keys and indexes) of a section to value."""

    def edit(section):
        section = copy.deepcopy(section)
        target = section
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return section
    return edit


# (what changes, extra vars, (restart the dataplane, restart weir-control)); neither: a reload.
DECISIONS = [
    ("nothing", {}, (False, False)),
    ("a backend's weight", edited("pools", setting([0, "backends", 0, "weight"], 3)),
     (False, False)),
    ("a backend removed", edited("pools", setting([0, "backends"], [
        {"name": "web1", "address": "198.51.100.11", "port": 8080}])), (False, False)),
    ("a listener's port", edited("listeners", setting([0, "port"], 8080)), (False, False)),
    ("the health checks", edited("pools", setting([0, "health", "fall"], 5)), (False, False)),
    ("a port's address", edited("dataplane", setting(["ports", 0, "address"], "192.0.2.21/24")),
     (True, False)),
    ("the EAL arguments", edited("dataplane", setting(["eal", 1], "2-5")), (True, False)),
    ("node_id", edited("node_id", lambda _: 9), (True, False)),
    ("the tcp section removed", {"weir_tcp": {}}, (True, False)),
    ("the metrics address", edited("control", setting(["metrics", "listen"], "10.10.0.11:9500")),
     (False, True)),
]


@pytest.mark.parametrize("what,extra,expected", DECISIONS, ids=[d[0] for d in DECISIONS])
def test_a_change_gets_a_reload_or_the_restart_it_needs(tmp_path, what, extra, expected):
    """The weir role's decision (roles/weir/tasks/decide.yml), which its handlers act on: run on
    the controller against lb1's current file, with one section changed in the inventory."""
    on_box = tmp_path / "weir.yaml"
    on_box.write_text(yaml.safe_dump(inventory_config("lb1"), sort_keys=False))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_ROLES_PATH=str(ANSIBLE_DIR / "roles"))
    result = run(["ansible-playbook", "-i", str(EXAMPLE_INVENTORY), "--limit", "lb1",
                  "-e", "ansible_connection=local",
                  "-e", "ansible_python_interpreter=/usr/bin/python3",
                  "-e", f"weir_config_path={on_box}", "-e", json.dumps(extra),
                  str(SOURCE_ROOT / "tests" / "ansible" / "decide.yml")], timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    decision = json.loads(re.search(r'"DECISION (.*)"', result.stdout)[1].replace('\\"', '"'))
    assert (decision["dataplane"], decision["control"]) == expected, what


@pytest.fixture(scope="module")
def root(base_tarball, work_dir):
    """The root the roles are applied to: a fresh copy of the bookworm root."""
    path = work_dir / "ansible-root"
    path.mkdir()
    subprocess.run(["tar", "-C", str(path), "-xf", str(base_tarball)], check=True, timeout=300)
    return path


@pytest.fixture(scope="module")
def install_check(deb, base_tarball, work_dir):
    """scripts/package-install-check on the package, in the background while the roles are
    tested (into a copy of the bookworm root of its own); test_package_installs_on_a_fresh_root
    waits for it."""
    check = Background([str(SOURCE_ROOT / "scripts" / "package-install-check"),
                        "--base", str(base_tarball), str(deb)], work_dir / "install-check.log")
    try:
        yield check
    finally:
        check.stop()


@pytest.fixture(scope="module")
def play(deb, root, install_check, tmp_path_factory):
    """Runs site.yml for lb1 and mon1 of the example inventory, both in the root."""
    overrides = tmp_path_factory.mktemp("inventory") / "chroot.yml"
    box = {"ansible_connection": "community.general.chroot", "ansible_host": str(root)}
    overrides.write_text(yaml.safe_dump({"all": {"hosts": {"lb1": box, "mon1": box}}}))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")

    def play_(*extra, limit="lb1,mon1", iommu_check=False):
        argv = ["ansible-playbook", "-i", str(EXAMPLE_INVENTORY), "-i", str(overrides),
                "--limit", limit, "-e", f"weir_package_deb={deb}",
                "-e", f"dpdk_host_check_iommu={iommu_check}",
                # The example's NIC driver, and af_packet for the test bed's port.
                "-e", '{"weir_pmd_packages": ["librte-net-ixgbe23", "librte-net-af-packet23"]}',
                *extra, "site.yml"]
        result = run(argv, timeout=1200, cwd=ANSIBLE_DIR, env=env)
        recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]),
                        "failed": int(m[4])} for m in RECAP.findall(result.stdout)}
        return result, recap

    return play_


def in_root(root, *argv, timeout=60):
    return run(["chroot", str(root), "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8", *argv], timeout=timeout)


def test_without_an_iommu_the_play_stops_before_changing_anything(play, root):
    # A chroot has no /sys/kernel/iommu_groups: the same as a host booted without the IOMMU.
    result, recap = play(iommu_check=True)
    assert result.returncode != 0
    assert "shows no IOMMU group in /sys/kernel/iommu_groups" in result.stdout
    assert "vfio-pci cannot take 0000:01:00.0" in result.stdout
    assert recap["lb1"]["failed"] == 1 and recap["lb1"]["changed"] == 0, recap
    assert not (root / "etc" / "dpdk").exists(), "the dpdk package was installed anyway"


def test_first_apply_changes_the_box(play):
    result, recap = play()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    assert recap["lb1"]["failed"] == 0 and recap["lb1"]["changed"] > 0, recap
    assert recap["mon1"]["failed"] == 0 and recap["mon1"]["changed"] > 0, recap


def test_second_apply_changes_nothing(play):
    result, recap = play()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    changed = {host: counts["changed"] for host, counts in recap.items()}
    assert changed == {"lb1": 0, "mon1": 0}, result.stdout[-6000:]


def test_check_mode_shows_nothing_to_change(play):
    result, recap = play("--check", "--diff")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    assert {host: counts["changed"] for host, counts in recap.items()} == {"lb1": 0, "mon1": 0}
    assert "--- before" not in result.stdout and "+++ after" not in result.stdout, result.stdout


@pytest.fixture(scope="module")
def host():
    return testinfra.get_host("local://")


def test_the_package_is_installed(host, root, deb):
    status = host.run("chroot %s dpkg-query -W -f '${Status} ${Version}' weir", str(root))
    assert status.stdout == f"install ok installed {deb_version(deb)}"
    # EAL's plugins: the mbuf pools' ring handler (the package's dependency) and the PMDs
    # asked for in weir_pmd_packages.
    for plugin in ["librte-mempool-ring23", "librte-net-ixgbe23", "librte-net-af-packet23"]:
        state = host.run("chroot %s dpkg-query -W -f '${Status}' %s", str(root), plugin)
        assert state.stdout == "install ok installed", plugin
    for binary in ["usr/sbin/weir-dataplane", "usr/sbin/weir-control", "usr/bin/weirctl"]:
        assert host.file(str(root / binary)).mode == 0o755


def test_the_configuration_is_the_inventorys_and_valid(host, root):
    config = host.file(str(root / "etc/weir/weir.yaml"))
    assert (config.user, config.group, config.mode) == ("root", "root", 0o644)
    assert yaml.safe_load(config.content_string) == inventory_config("lb1")
    checked = in_root(root, "weir-dataplane", "--check-config", "/etc/weir/weir.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_units_are_enabled_and_verify(host, root):
    wants = root / "etc/systemd/system/multi-user.target.wants"
    for unit in ["weir-dataplane.service", "weir-control.service", "dpdk.service",
                 "prometheus.service"]:
        link = host.file(str(wants / unit))
        assert link.is_symlink, unit
        assert host.file(str(root / link.linked_to.lstrip("/"))).is_file, unit
    dropin = host.file(str(root / "etc/systemd/system/weir-dataplane.service.d/cpus.conf"))
    assert "CPUAffinity=1-4" in dropin.content_string and dropin.mode == 0o644
    # systemd-analyze reads /proc; --man=no: scripts/package-install-check opens the man pages.
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True, timeout=30)
    try:
        verified = in_root(root, "systemd-analyze", "verify", "--man=no",
                           "weir-dataplane.service", "weir-control.service")
    finally:
        subprocess.run(["umount", str(root / "proc")], check=True, timeout=30)
    assert verified.returncode == 0 and verified.stdout + verified.stderr == "", \
        verified.stdout + verified.stderr


def test_the_dpdk_host_files(host, root):
    conf = host.file(str(root / "etc/dpdk/dpdk.conf")).content_string
    assert re.findall(r"^NR_2M_PAGES=.*$", conf, re.MULTILINE) == ['NR_2M_PAGES="1024"']
    interfaces = host.file(str(root / "etc/dpdk/interfaces")).content_string
    assert re.findall(r"^pci.*$", interfaces, re.MULTILINE) == ["pci\t0000:01:00.0\tvfio-pci"]
    assert host.file(str(root / "etc/modules-load.d/dpdk-host-vfio-pci.conf")) \
        .content_string.splitlines()[-1] == "vfio-pci"
    grub = host.file(str(root / "etc/default/grub.d/dpdk-host.cfg")).content_string
    assert 'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX intel_iommu=on iommu=pt isolcpus=2-4 ' \
        'nohz_full=2-4 rcu_nocbs=2-4"' in grub
    manager = host.file(str(root / "etc/systemd/system.conf.d/dpdk-host-cpus.conf"))
    assert "CPUAffinity=0-1" in manager.content_string.splitlines()


def test_prometheus_scrapes_both_boxes_with_checked_rules(host, root):
    config = yaml.safe_load(host.file(str(root / "etc/prometheus/prometheus.yml")).content_string)
    weir_job = [job for job in config["scrape_configs"] if job["job_name"] == "weir"]
    assert weir_job and weir_job[0]["static_configs"] == [
        {"targets": ["10.10.0.11:9464"], "labels": {"box": "lb1"}},
        {"targets": ["10.10.0.12:9464"], "labels": {"box": "lb2"}}]
    rules = in_root(root, "promtool", "check", "rules", "/etc/prometheus/rules/weir.rules.yml")
    assert rules.returncode == 0 and "SUCCESS: 10 rules found" in rules.stdout, rules.stdout
    checked = in_root(root, "promtool", "check", "config", "/etc/prometheus/prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_grafana_provisions_the_repositorys_dashboard(host, root):
    dashboard = host.file(str(root / "var/lib/grafana/dashboards/weir/weir.json")).content_string
    source = (SOURCE_ROOT / "docs" / "grafana" / "weir.json").read_text()
    assert "${DS_PROMETHEUS}" in source and "${DS_PROMETHEUS}" not in dashboard
    assert dashboard.rstrip("\n") == source.rstrip("\n").replace("${DS_PROMETHEUS}",
                                                                 "weir-prometheus")
    provider = yaml.safe_load(
        host.file(str(root / "etc/grafana/provisioning/dashboards/weir.yaml")).content_string)
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/weir"


def test_an_invalid_configuration_is_refused_and_the_box_keeps_its_file(play, root):
    before = (root / "etc/weir/weir.yaml").read_bytes()
    bad = '{"weir_pools": [{"name": "web", "backends": [{"name": "web1", ' \
          '"address": "198.51.100.11", "port": 70000}]}]}'
    result, recap = play("-e", bad, limit="lb1")
    assert result.returncode != 0
    assert recap["lb1"]["failed"] == 1, recap
    assert "pools[0].backends[0].port: 70000 is out of range" in result.stdout, result.stdout
    assert (root / "etc/weir/weir.yaml").read_bytes() == before


def exec_start(root: Path, unit: str) -> list[str]:
    """The unit's ExecStart= command line, as installed in the root."""
    lines = (root / "lib/systemd/system" / unit).read_text().splitlines()
    starts = [line.split("=", 1)[1].split() for line in lines if line.startswith("ExecStart=")]
    assert len(starts) == 1, starts
    return starts[0]


class InstalledProcess(DataplaneProcess):
    """A command of the root's, started chrooted in one of the test bed's namespaces, with its
    output in the test bed's work directory (DataplaneProcess's readiness and counters)."""

    def __init__(self, testbed, root: Path, role: str, argv: list[str], config: dict, name: str):
        super().__init__(testbed, config, name=name)
        self.root, self.role, self.argv = root, role, argv

    def start(self):
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = self.testbed.popen(self.role, ["chroot", str(self.root), *self.argv],
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        return self


def test_the_installed_daemons_carry_traffic(root, testbed_factory):
    """The root's binaries, started with the units' own command lines, in the namespace test bed:
    the dataplane echoes a client's data on its af_packet port, and weir-control (in the ctl
    namespace) reaches it through /run/weir and answers weirctl. The root's /etc/weir/weir.yaml
    becomes the test bed's configuration: this test runs last."""
    tb = testbed_factory()
    config = tb.dataplane_config()
    config["dataplane"]["control_socket"] = "/run/weir/dataplane.sock"
    config["control"] = {"socket": "/run/weir/control.sock",
                         "metrics": {"listen": f"{ADDRESSES['ctl']}:9464"}}
    dataplane_argv = exec_start(root, "weir-dataplane.service")
    control_argv = exec_start(root, "weir-control.service")
    assert dataplane_argv[-2:] == control_argv[-2:] == ["--config", "/etc/weir/weir.yaml"]
    (root / "etc/weir/weir.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # EAL reads the CPUs from /sys, /proc/self; a box has both, the chroot gets them mounted.
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True, timeout=30)
    subprocess.run(["mount", "-o", "bind,ro", "/sys", str(root / "sys")], check=True, timeout=30)
    try:
        # /run/weir as systemd-tmpfiles makes it at boot from the package's entry.
        made = in_root(root, "systemd-tmpfiles", "--create", "weir.conf")
        assert made.returncode == 0 and (root / "run/weir").is_dir(), made.stderr
        with InstalledProcess(tb, root, "dp", dataplane_argv, config, "installed-dataplane") as dp:
            dp.wait_ready(timeout_s=30.0)
            reply = tb.python("client", ECHO_ONCE, {"address": LISTENER_ADDRESS, "size": 1 << 20})
            assert reply == {"sent": 1 << 20, "echoed_equal": True}, reply
            with InstalledProcess(tb, root, "ctl", control_argv, config,
                                  "installed-control") as ctl:
                status = poll_until(
                    lambda: (lambda r: r if r.returncode == 0 and "connected" in r.stdout
                             and "not connected" not in r.stdout else None)(
                        in_root(root, "weirctl", "--config", "/etc/weir/weir.yaml", "status")),
                    20.0, what="weirctl status to show the dataplane connected",
                    describe=ctl.output)
                assert "/etc/weir/weir.yaml" in status.stdout
                assert ctl.stop() == 0, ctl.output()
            assert dp.stop() == 0, dp.output()
    finally:
        subprocess.run(["umount", str(root / "sys")], check=True, timeout=30)
        subprocess.run(["umount", str(root / "proc")], check=True, timeout=30)


ECHO_ONCE = """
import os, socket
data = os.urandom(ARGS["size"])
with socket.create_connection((ARGS["address"], 7), timeout=20) as sock:
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
    got = recv_all(sock)
emit({"sent": len(data), "echoed_equal": got == data})
"""


def test_package_installs_on_a_fresh_root(install_check):
    install_check.wait(900)
