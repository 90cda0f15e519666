"""The include rules of the folders' READMEs, checked on every build: a folder may include only
the folders it stands on. common/ stands on nothing of Weir's; config/ on common/; dataplane/,
control/, tools/ (and tls/) stand side by side on common/ and config/ and never include each other.
Inside the dataplane, the protocol folders (net/, tcp/) never include the layers above them."""
import os
import pathlib
import re

ROOT = pathlib.Path(os.environ.get("WEIR_SOURCE_ROOT", pathlib.Path(__file__).resolve().parents[2]))
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

# folder -> the Weir folders its files may include (besides themselves)
ALLOWED = {
    "common": set(),
    "config": {"common"},
    "dataplane": {"common", "config"},
    "control": {"common", "config"},
    "tools": {"common"},
    "tls": {"common", "config"},
}
# Inside dataplane/: these subfolders must not include the listed ones.
DATAPLANE_FORBIDDEN = {
    "dataplane/net": ("dataplane/tcp/", "dataplane/proxy/", "dataplane/main_lcore/"),
    "dataplane/tcp": ("dataplane/proxy/", "dataplane/main_lcore/"),
    "dataplane/proxy": ("dataplane/main_lcore/",),
}


def sources():
    for folder in ALLOWED:
        base = ROOT / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.suffix in (".h", ".cc"):
                yield folder, path


def includes(path):
    return INCLUDE.findall(path.read_text(encoding="utf-8"))


def test_the_folders_are_there():
    found = {folder for folder, _ in sources()}
    assert {"common", "config", "dataplane", "control", "tools"} <= found


def test_no_folder_includes_one_it_does_not_stand_on():
    offences = []
    for folder, path in sources():
        for header in includes(path):
            top = header.split("/", 1)[0]
            if top in ALLOWED and top != folder and top not in ALLOWED[folder]:
                offences.append(f"{path.relative_to(ROOT)} includes {header}")
    assert offences == [], "\n".join(offences)


def test_protocol_code_never_includes_the_layers_above_it():
    offences = []
    for sub, forbidden in DATAPLANE_FORBIDDEN.items():
        for path in sorted((ROOT / sub).rglob("*")):
            if path.suffix not in (".h", ".cc"):
                continue
            for header in includes(path):
                if header.startswith(forbidden):
                    offences.append(f"{path.relative_to(ROOT)} includes {header}")
    assert offences == [], "\n".join(offences)


def test_the_rule_catches_an_offence(tmp_path, monkeypatch):
    """The checker itself: a config/ file including dataplane/ must be reported."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "bad.h").write_text('#include "dataplane/net/stack.h"\n')
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    try:
        test_no_folder_includes_one_it_does_not_stand_on()
    except AssertionError as failure:
        assert "config/bad.h includes dataplane/net/stack.h" in str(failure)
    else:
        raise AssertionError("an include of dataplane/ from config/ went unnoticed")
