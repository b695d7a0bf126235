"""A small SSH server (paramiko's server side) on 127.0.0.1 for the verifier's unit tests.

It answers exec requests from a table {command line: (rc, stdout, stderr)} and records every command line
it receives; anything not in the table exits 127 as a missing tool would. Lab tests use real sshd.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import paramiko


class _Server(paramiko.ServerInterface):
    def __init__(self, owner: LocalSshd) -> None:
        self.owner = owner

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return (
            paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        )

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == "root" and key.asbytes() == self.owner.client_key.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        line = command.decode()
        self.owner.commands.append(line)
        rc, out, err = self.owner.answers.get(line, (127, "", f"env: '{line}': No such file or directory\n"))

        # Everything is sent before paramiko sends the exec reply (same thread), then EOF: the client
        # reads it all after the reply; closing here instead would race the reply.
        channel.sendall(out.encode())
        channel.sendall_stderr(err.encode())
        channel.send_exit_status(rc)
        channel.shutdown_write()
        return True


class LocalSshd:
    """Listens on 127.0.0.1:<port> with an Ed25519 host key; `known_hosts_line()` for the client."""

    def __init__(self, tmp: Path, answers: dict[str, tuple[int, str, str]] | None = None) -> None:
        self.host_key = paramiko.Ed25519Key.from_private_key_file(keygen(tmp / "host"))
        self.client_key_file = Path(keygen(tmp / "client"))
        self.client_key = paramiko.Ed25519Key.from_private_key_file(str(self.client_key_file))
        self.answers = answers or {}
        self.commands: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def known_hosts_line(self, key: paramiko.PKey | None = None) -> str:
        key = key or self.host_key
        return f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}\n"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(self.host_key)
            self.transports.append(t)
            try:
                t.start_server(server=_Server(self))
            except (paramiko.SSHException, EOFError, OSError):
                continue

    def close(self) -> None:
        self.sock.close()
        for t in self.transports:
            t.close()


def keygen(path: Path) -> str:
    """An Ed25519 private key file made by ssh-keygen (paramiko cannot generate Ed25519 keys)."""
    import subprocess

    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, capture_output=True
    )
    return str(path)
