#!/usr/bin/env python3
"""A man page from Markdown, at build time (docs/man/meson.build):

    md2man.py GO_MD2MAN VERSION DOCDIR SOURCE [BODY] OUTPUT

SOURCE is a page in go-md2man's Markdown (a `%` title line, then `# NAME`, ...) with @VERSION@
for the project's version and @DOCDIR@ for where the docs are installed. A page that documents
what a longer document in docs/ already says has the line @BODY@ where that document (BODY) goes,
without its own `# Title` line, so that docs/configuration.md and docs/weirctl.md are the one
text of weir.yaml(5) and weirctl(8)."""

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) not in (6, 7):
        print(__doc__, file=sys.stderr)
        return 2
    go_md2man, version, docdir, source = argv[1], argv[2], argv[3], Path(argv[4])
    body = Path(argv[5]) if len(argv) == 7 else None
    output = Path(argv[-1])
    text = source.read_text().replace("@VERSION@", version).replace("@DOCDIR@", docdir)
    if body is not None:
        if "@BODY@" not in text:
            print(f"md2man.py: {source}: no @BODY@ line to put {body} at", file=sys.stderr)
            return 1
        lines = body.read_text().splitlines(keepends=True)
        if not lines or not lines[0].startswith("# "):
            print(f"md2man.py: {body}:1: expected the document's `# Title` line", file=sys.stderr)
            return 1
        text = text.replace("@BODY@", "".join(lines[1:]).strip())
    elif "@BODY@" in text:
        print(f"md2man.py: {source}: @BODY@ but no BODY document given", file=sys.stderr)
        return 1
    page = subprocess.run([go_md2man], input=text, capture_output=True, text=True)
    if page.returncode != 0 or not page.stdout.startswith((".nh", ".TH")):
        print(f"md2man.py: {go_md2man} failed on {source}: {page.stderr}", file=sys.stderr)
        return 1
    output.write_text(page.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
