"""The system-call filter on its own: its numbers against libseccomp's tables, and what the kernel answers
a process that has it (no bubblewrap needed: installed between fork and exec, as the unsandboxed mode does)."""
from __future__ import annotations

import ctypes
import ctypes.util
import platform
import subprocess
import sys
import textwrap

import pytest

from grader.sandbox import seccomp

LISTED = (*seccomp._DENIED, *seccomp._FLAGS_CHECKED, *seccomp._NOT_IMPLEMENTED)


@pytest.mark.parametrize("machine", sorted(seccomp._MACHINES))
def test_system_call_numbers_are_libseccomps(machine):
    """libseccomp (Debian's libseccomp2, which systemd needs) resolves names for every architecture."""
    library = ctypes.util.find_library("seccomp")
    if library is None:
        pytest.skip("libseccomp is not installed, so there is no table to compare with")
    resolve = ctypes.CDLL(library).seccomp_syscall_resolve_name_arch
    resolve.argtypes, resolve.restype = [ctypes.c_uint32, ctypes.c_char_p], ctypes.c_int
    target = seccomp._MACHINES[machine]
    theirs = {name: resolve(target.audit_arch, name.encode()) for name in LISTED}
    assert target.numbers == {name: number for name, number in theirs.items() if number >= 0}  # < 0: not there


CHILD = textwrap.dedent("""
    import ctypes, errno, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def call(number, *arguments):
        result = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(argument) for argument in arguments))
        return errno.errorcode[ctypes.get_errno()] if result < 0 else "ok"

    print(call(248, 0, 0, 0, 0, -4))  # add_key
    print(call(250, 0, -4))  # keyctl(KEYCTL_GET_KEYRING_ID, user keyring)
    print(call(435, 0, 0))  # clone3
    print(call(272, 0x10000000), call(272, 0x80))  # unshare(CLONE_NEWUSER), unshare(CLONE_NEWTIME)
    print(call(272, 0x200))  # unshare(CLONE_FS): no namespace
    print(call(0x40000000 + 39))  # getpid through the x32 ABI
    print(call(39))  # getpid
""")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the child's system-call numbers are x86_64's")
def test_the_kernel_answers_as_the_filter_says():
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=30,
                           preexec_fn=seccomp.installer(seccomp.program()))
    assert child.returncode == 0, child.stderr
    assert child.stdout.splitlines() == ["EPERM", "EPERM", "ENOSYS", "EPERM EPERM", "ok", "ENOSYS", "ok"]


def test_an_unknown_machine_is_refused_with_its_name():
    with pytest.raises(seccomp.UnsupportedMachine, match="riscv64"):
        seccomp.program("riscv64")
