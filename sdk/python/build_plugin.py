#!/usr/bin/env python3
"""Builds Python plugin scripts into executable files, the way `make build`
installs bin/sockplay-pyNAME:

    python3 sdk/python/build_plugin.py bin pyecho=examples/python/echo.py ...

writes bin/sockplay-pyecho from examples/python/echo.py, and so on.

The output is a zipapp (PEP 441): a "#!/usr/bin/python3" line followed by a
zip archive holding the script as __main__.py and the sockplay SDK package.
One self-contained file, because the host finds plugins as single executables
and checks each one's SHA-256 before starting it (go-plugin's SecureConfig):
with the SDK inside, that checksum covers all the code that runs, and the
file can be copied to any plugin directory. A launcher pointing at the source
tree would leave the SDK outside the checksum and break when moved.

The interpreter is Debian's /usr/bin/python3, since the SDK's dependencies are
Debian packages (python3-grpcio, ...) that only it sees: a python3 found
first on PATH (pyenv, a virtualenv) would not have them. --python changes it.
The archive is reproducible: entries sorted, timestamps fixed, so the same
sources give the same bytes and the same SHA-256.
"""

import argparse
import os
import sys
import tempfile
import zipfile

SDK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sockplay")
EPOCH = (1980, 1, 1, 0, 0, 0)


def sdk_files():
    """Yields (archive name, path) for every module of the sockplay package."""
    for root, dirs, files in os.walk(SDK):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(root, f)
                yield os.path.relpath(path, os.path.dirname(SDK)), path


def build(script, out, python="/usr/bin/python3"):
    entries = [("__main__.py", script)] + list(sdk_files())
    d = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".build-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(f"#!{python}\n".encode())
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
                for name, path in sorted(entries):
                    info = zipfile.ZipInfo(name, EPOCH)
                    info.external_attr = 0o644 << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with open(path, "rb") as src:
                        z.writestr(info, src.read())
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv):
    ap = argparse.ArgumentParser(description="Build Python sockplay plugins into executable files.")
    ap.add_argument("--python", default="/usr/bin/python3", help="the interpreter in the #! line")
    ap.add_argument("dir", help="where to write sockplay-NAME, such as bin")
    ap.add_argument("plugins", nargs="+", metavar="NAME=SCRIPT",
                    help="a plugin's name and its script (which calls plugin.main())")
    a = ap.parse_args(argv)
    for p in a.plugins:
        name, sep, script = p.partition("=")
        if not sep or not name or not script:
            ap.error(f"{p!r}: want NAME=SCRIPT")
        build(script, os.path.join(a.dir, "sockplay-" + name), a.python)


if __name__ == "__main__":
    main(sys.argv[1:])
