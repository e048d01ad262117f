"""The sandbox's system-call filter: a seccomp program that refuses what student code has no use for.

Student code of every run executes as the same user (uid 65534 where the grader is root),
so kernel state kept per user or for the whole host outlives a run and is shared with
other submissions' runs: a key added to the user's keyring with ``add_key`` is readable by
the next run, and a persistent keyring lasts days. The filter refuses, with ``EPERM``:

- the keyrings: ``add_key``, ``request_key``, ``keyctl``;
- loading code into the kernel or watching it: ``bpf``, ``perf_event_open``,
  ``userfaultfd``, ``io_uring_*``, ``kexec_*``, ``init_module``, ``finit_module``,
  ``delete_module``;
- mounts: ``mount``, ``umount2``, ``pivot_root``, ``chroot`` and the new mount API
  (``open_tree``, ``move_mount``, ``fsopen``, ``fsconfig``, ``fsmount``, ``fspick``,
  ``mount_setattr``);
- namespaces: ``setns``, and ``clone`` or ``unshare`` asking for a new namespace (any
  ``CLONE_NEW*`` flag; threads, ``fork``, ``vfork`` and ``posix_spawn`` pass);
- other processes' memory: ``ptrace``, ``process_vm_readv``, ``process_vm_writev``,
  ``pidfd_getfd``;
- the host: ``swapon``, ``swapoff``, ``reboot``, ``acct``, ``quotactl``, ``quotactl_fd``,
  ``settimeofday``, ``clock_settime``, ``adjtimex``, ``clock_adjtime``, ``sethostname``,
  ``setdomainname``, ``syslog`` (the kernel log), ``fanotify_init``, ``open_by_handle_at``,
  and on x86-64 ``iopl`` and ``ioperm``.

``EPERM`` is what a process without privileges gets from most of these anyway, and what
Docker's and Podman's default filters answer, so programs already handle it. Two answers
are ``ENOSYS`` instead, as from a kernel that lacks the call: ``clone3`` (its flags are in
memory, where a filter cannot look; glibc, Go and Rust then fall back to ``clone``, whose
flags are checked), and every call through another ABI than the machine's own (32-bit
``int 0x80`` or x32 on x86-64, AArch32 on aarch64), which would otherwise reach the same
kernel functions by other numbers. Everything else is allowed: the filter is a short
deny list, not an allow list, so new system calls that libraries adopt keep working.

The program is classic BPF (``struct sock_filter``, 8 bytes per instruction, 113 on x86-64).
Its cost: nothing measurable at a run's start, and some 100 ns per system call (measured
with ``getppid``: 490 ns unfiltered, 590 ns filtered), the same as a filter that allows
everything: the kernel caches the answer for calls whose answer does not depend on their
arguments, so the price is that of having a filter at all, not of its length.
bubblewrap installs it (``--seccomp FD``) just before it executes the sandbox's first
program, and in its own PID-1 init; unsandboxed, :func:`installer` installs it between
fork and exec. A filter cannot be removed, and every child inherits it.
"""
from __future__ import annotations

import ctypes
import errno
import platform
import struct
from collections.abc import Callable

_CLONE_NEW_FLAGS = 0x7E020000
"""CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET."""
_CLONE_NEWTIME = 0x80
"""unshare only: in ``clone``'s flags that bit belongs to the exit signal."""

_DENIED = (
    "add_key", "request_key", "keyctl",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr",
    "setns",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    "swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "settimeofday", "clock_settime", "adjtimex",
    "clock_adjtime", "sethostname", "setdomainname", "syslog", "fanotify_init", "open_by_handle_at", "iopl", "ioperm",
)
"""System calls refused with EPERM whatever their arguments (where the machine has them)."""
_FLAGS_CHECKED = {"clone": _CLONE_NEW_FLAGS, "unshare": _CLONE_NEW_FLAGS | _CLONE_NEWTIME}
"""System calls refused with EPERM when their first argument has any of these bits."""
_NOT_IMPLEMENTED = ("clone3",)
"""System calls answered ENOSYS, so that callers fall back to one the filter can inspect."""


class _Machine:
    """One architecture: its audit number, its system call numbers, the numbers of another ABI it shares."""

    def __init__(self, audit_arch: int, numbers: dict[str, int], foreign_from: int | None = None):
        self.audit_arch = audit_arch
        self.numbers = numbers
        self.foreign_from = foreign_from
        """System call numbers from here up belong to another ABI under the same audit number (x32)."""


# From the kernel's tables (arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h);
# tests/test_seccomp.py checks them against libseccomp's.
_MACHINES = {
    "x86_64": _Machine(0xC000003E, {
        "add_key": 248, "request_key": 249, "keyctl": 250, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 246,
        "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176, "mount": 165,
        "umount2": 166, "pivot_root": 155, "chroot": 161, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "setns": 308, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438, "swapon": 167, "swapoff": 168,
        "reboot": 169, "acct": 163, "quotactl": 179, "quotactl_fd": 443, "settimeofday": 164, "clock_settime": 227,
        "adjtimex": 159, "clock_adjtime": 305, "sethostname": 170, "setdomainname": 171, "syslog": 103,
        "fanotify_init": 300, "open_by_handle_at": 304, "iopl": 172, "ioperm": 173,
        "clone": 56, "unshare": 272, "clone3": 435,
    }, foreign_from=0x40000000),
    "aarch64": _Machine(0xC00000B7, {
        "add_key": 217, "request_key": 218, "keyctl": 219, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 104,
        "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106, "mount": 40,
        "umount2": 39, "pivot_root": 41, "chroot": 51, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "setns": 268, "ptrace": 117,
        "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438, "swapon": 224, "swapoff": 225,
        "reboot": 142, "acct": 89, "quotactl": 60, "quotactl_fd": 443, "settimeofday": 170, "clock_settime": 112,
        "adjtimex": 171, "clock_adjtime": 266, "sethostname": 161, "setdomainname": 162, "syslog": 116,
        "fanotify_init": 262, "open_by_handle_at": 265,
        "clone": 220, "unshare": 97, "clone3": 435,
    }),
}

# classic BPF and seccomp (linux/filter.h, linux/seccomp.h)
_LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JUMP_EQUAL, _JUMP_AT_LEAST, _JUMP_ANY_BIT = 0x15, 0x35, 0x45  # BPF_JMP | BPF_JEQ / BPF_JGE / BPF_JSET, BPF_K
_RETURN = 0x06  # BPF_RET | BPF_K
_NUMBER, _ARCH, _FIRST_ARGUMENT_LOW = 0, 4, 16  # offsets in struct seccomp_data (little-endian machines)
_ALLOW = 0x7FFF0000
_REFUSE = 0x00050000 | errno.EPERM  # SECCOMP_RET_ERRNO
_NOT_THERE = 0x00050000 | errno.ENOSYS
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


class UnsupportedMachine(RuntimeError):
    """No filter is known for this machine's architecture."""


def program(machine: str | None = None) -> bytes:
    """The filter for ``machine`` (``platform.machine()`` by default), as bubblewrap's ``--seccomp`` reads it:
    the ``struct sock_filter`` instructions in the machine's byte order.

    Raises:
        UnsupportedMachine: an architecture other than x86_64 and aarch64.
    """
    machine = machine or platform.machine()
    if machine not in _MACHINES:
        raise UnsupportedMachine(f"the sandbox's system-call filter knows x86_64 and aarch64, not {machine}; "
                                 "student code cannot be run safely on this machine")
    target = _MACHINES[machine]
    code = [(_LOAD_WORD, 0, 0, _ARCH), (_JUMP_EQUAL, 1, 0, target.audit_arch), (_RETURN, 0, 0, _NOT_THERE),
            (_LOAD_WORD, 0, 0, _NUMBER)]
    if target.foreign_from is not None:
        code += [(_JUMP_AT_LEAST, 0, 1, target.foreign_from), (_RETURN, 0, 0, _NOT_THERE)]
    for name in _DENIED:
        if name in target.numbers:
            code += [(_JUMP_EQUAL, 0, 1, target.numbers[name]), (_RETURN, 0, 0, _REFUSE)]
    for name in _NOT_IMPLEMENTED:
        code += [(_JUMP_EQUAL, 0, 1, target.numbers[name]), (_RETURN, 0, 0, _NOT_THERE)]
    for name, flags in _FLAGS_CHECKED.items():
        code += [(_JUMP_EQUAL, 0, 4, target.numbers[name]), (_LOAD_WORD, 0, 0, _FIRST_ARGUMENT_LOW),
                 (_JUMP_ANY_BIT, 0, 1, flags), (_RETURN, 0, 0, _REFUSE), (_RETURN, 0, 0, _ALLOW)]
    code.append((_RETURN, 0, 0, _ALLOW))
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in code)


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]  # struct sock_fprog; ctypes keeps the bytes alive


def installer(filter_program: bytes) -> Callable[[], None]:
    """A function that installs ``filter_program`` in the process that calls it, for ``preexec_fn``.

    Everything is prepared here, in the parent; the child only makes two ``prctl`` calls
    (``no_new_privs``, which an unprivileged process needs before a filter, then the filter).
    The function raises OSError where the kernel refuses (one built without seccomp).
    """
    fprog = _Program(len(filter_program) // 8, filter_program)
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

    def install() -> None:
        if (prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
                or prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0)):
            number = ctypes.get_errno()
            raise OSError(number, f"cannot install the system-call filter: {errno.errorcode.get(number, number)}")

    return install
