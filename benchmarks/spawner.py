"""A small helper process that runs each measured command and times it.

Run as ``python -I -S spawner.py``; it reads requests from its standard input
and answers on its standard output, each message a 4-byte length followed by a
marshalled tuple. A request is ``(argv, environment, cwd, stdout_path,
stderr_path)``; the answer is ``(wall_seconds, wait_status, max_rss_kib)``.

Why a helper: Linux carries the forking process's peak resident set into the
child's ``ru_maxrss``, so a child forked by the harness itself would report the
harness's memory instead of its own. This helper imports only built-in modules
and stays near a bare interpreter's size, below any Python child's own peak.
"""

from __future__ import annotations

import marshal
import os
import sys
import time

_LENGTH_BYTES = 4


def main() -> None:
    """Serve requests until the harness closes the pipe."""
    while True:
        request = _receive(sys.stdin.fileno())
        if request is None:
            return
        _send(sys.stdout.fileno(), _run(*request))


def _run(
    argv: list[str], environment: dict[str, str], cwd: str, stdout: str, stderr: str
) -> tuple[float, int, int]:
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _become_child(argv, environment, cwd, stdout, stderr)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    return wall, status, usage.ru_maxrss


def _become_child(
    argv: list[str], environment: dict[str, str], cwd: str, stdout: str, stderr: str
) -> None:
    try:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
        os.dup2(os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
        os.chdir(cwd)
        os.execve(argv[0], argv, environment)
    except OSError as err:
        os.write(2, f"cannot run {argv!r}: {err}\n".encode())
    os._exit(127)


def _receive(descriptor: int) -> tuple[list[str], dict[str, str], str, str, str] | None:
    header = _read_exactly(descriptor, _LENGTH_BYTES)
    if not header:
        return None
    body = _read_exactly(descriptor, int.from_bytes(header, "big"))
    request: tuple[list[str], dict[str, str], str, str, str] = marshal.loads(body)
    return request


def _send(descriptor: int, message: tuple[float, int, int]) -> None:
    body = marshal.dumps(message)
    data = len(body).to_bytes(_LENGTH_BYTES, "big") + body
    while data:
        data = data[os.write(descriptor, data) :]


def _read_exactly(descriptor: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(descriptor, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


if __name__ == "__main__":
    main()
