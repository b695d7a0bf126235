# Pre-scan collector, run on the managed host by the patch role's prescan tasks (one command per host).
# argv[1]: JSON {"pkg_mgr": "apt"|"dnf"|"zypper", "refresh": bool, "packages": [{"name", "version"}]},
# names and versions already checked against the package grammar by the role. Refreshes the index (when
# asked), downloads the exact candidates into a private scratch folder, prints each candidate's maintainer
# scripts as "<package> <script name> <base64>" lines and removes the folder. Nothing is installed.
# Every tool runs from an argv list (no shell). Python 3.6+ standard library only.
import base64
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile

DEB_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config", "triggers")


def run(argv, cwd=None):
    """Run a tool; on failure, say which and stop with its exit code (the task fails on this host)."""
    proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode("utf-8", "replace"))
        sys.stderr.write(f"prescan: {argv[0]} exited {proc.returncode}\n")
        sys.exit(proc.returncode)
    return proc.stdout


def download(mgr, refresh, packages, tmp):
    """Refresh (when asked) and download the exact candidates into `tmp`."""
    if mgr == "apt":
        if refresh:
            run(["apt-get", "-q", "update"])
        run(["apt-get", "-q", "download"] + [f"{p['name']}={p['version']}" for p in packages], cwd=tmp)
    elif mgr == "dnf":
        argv = ["dnf", "-q", "-y", "install", "--downloadonly", "--downloaddir", tmp]
        run(argv + (["--refresh"] if refresh else []) + [f"{p['name']}-{p['version']}" for p in packages])
    elif mgr == "zypper":
        if refresh:
            run(["zypper", "--non-interactive", "refresh"])
        names = [p["name"] for p in packages]
        run(["zypper", "--non-interactive", "--pkg-cache-dir", tmp, "download", *names])
    else:
        sys.exit(f"prescan: unknown package manager {mgr!r}")


def first_file(tmp, name):
    """The first downloaded file of package `name` (`NAME_*.deb` or `NAME-[0-9]*.rpm`, any depth)."""
    for root, _dirs, files in sorted(os.walk(tmp)):
        for f in sorted(files):
            if fnmatch.fnmatchcase(f, f"{name}_*.deb") or fnmatch.fnmatchcase(f, f"{name}-[0-9]*.rpm"):
                return os.path.join(root, f)
    return None


def scripts_of(path, tmp):
    """[(script name, bytes)] of one package file."""
    if path.endswith(".deb"):
        control = tempfile.mkdtemp(dir=tmp)
        run(["dpkg-deb", "-e", path, control])
        out = []
        for s in DEB_SCRIPTS:
            f = os.path.join(control, s)
            if os.path.isfile(f):
                with open(f, "rb") as fh:
                    out.append((s, fh.read()))
        return out
    return [("scripts", run(["rpm", "-qp", "--scripts", "--triggers", path]))]


def main():
    spec = json.loads(sys.argv[1])
    packages = spec["packages"]
    if not packages:
        return 0
    os.environ["LC_ALL"] = "C"
    tmp = tempfile.mkdtemp(prefix="patch_prescan.")
    try:
        download(spec["pkg_mgr"], bool(spec.get("refresh")), packages, tmp)
        lines = []
        for p in packages:
            path = first_file(tmp, p["name"])
            if path is None:
                continue
            for script, body in scripts_of(path, tmp):
                lines.append(f"{p['name']} {script} {base64.b64encode(body).decode('ascii')}")
        sys.stdout.write("\n".join(lines))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
