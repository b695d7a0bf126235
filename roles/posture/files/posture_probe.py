# Read-only posture probe, run on the managed host by the posture role (one run per snapshot).
# argv[1]: JSON {"commands": [{"name", "argv"}], "files": [{"name", "path"}]}, from the role's vars.
# Prints one JSON object {name: {"rc", "stdout", "stderr", "missing"}} in the shape the role returned when
# it ran every probe as its own module call: stdout/stderr of commands without trailing newlines (as the
# command module strips them), files read whole; a tool or file that is absent is marked missing.
# Nothing here writes anything. Python 3.6+ standard library only.
import errno
import json
import os
import subprocess
import sys

TIMEOUT_S = 300


def _text(data):
    return data.decode("utf-8", "replace")


def run_command(argv, env):
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
    except OSError as exc:
        # as the command module reported an executable it cannot run: its errno, no output
        return {"rc": exc.errno, "stdout": "", "stderr": "", "missing": True}
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {
            "rc": None,
            "stdout": _text(out).rstrip("\r\n"),
            "stderr": f"timed out after {TIMEOUT_S} s",
            "missing": False,
        }
    return {
        "rc": proc.returncode,
        "stdout": _text(out).rstrip("\r\n"),
        "stderr": _text(err).rstrip("\r\n"),
        "missing": False,
    }


def read_file(path):
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        # as slurp reported it
        msg = f"File not found: {path}" if exc.errno == errno.ENOENT else str(exc)
        return {"rc": None, "stdout": "", "stderr": msg, "missing": True}
    return {"rc": 0, "stdout": _text(data), "stderr": "", "missing": False}


def main():
    spec = json.loads(sys.argv[1])
    env = dict(os.environ, LC_ALL="C")
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    result = {}
    for probe in spec.get("commands", []):
        result[probe["name"]] = run_command([str(a) for a in probe["argv"]], env)
    for item in spec.get("files", []):
        result[item["name"]] = read_file(item["path"])
    sys.stdout.write(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
