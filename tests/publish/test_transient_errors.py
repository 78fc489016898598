"""Which failures a publish job is run again for: the database's and the network's, not a full
disk or a missing permission, which would fail the same way every time."""

from __future__ import annotations

import errno
import socket

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from generator.jobs import is_transient


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        TimeoutError(),
        socket.gaierror(socket.EAI_AGAIN, "temporary failure in name resolution"),
        OSError(errno.ENETUNREACH, "network is unreachable"),
        OSError(errno.EHOSTUNREACH, "no route to host"),
        OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    ],
    ids=repr,
)
def test_a_network_or_database_that_did_not_answer_is_retried(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        PermissionError(errno.EACCES, "Permission denied"),
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
        IntegrityError("INSERT", {}, Exception("duplicate key")),
        ValueError("a bug"),
    ],
    ids=repr,
)
def test_what_would_fail_again_is_not_retried(error: BaseException) -> None:
    assert not is_transient(error)
