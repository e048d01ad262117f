"""The sandbox against hostile programs: real bubblewrap, real processes, small limits.

Run as root (this project's CI) the runs use cgroups and uid 65534; the test that drops
privileges proves the user-namespace mode that a laptop without root gets.
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from grader import sandbox
from grader.environment import bundled
from grader.limits import RunLimits
from grader.sandbox import Verdict, launch
from grader.sandbox.cgroups import Cgroups
from grader.sandbox.host import this_host
from reference import PROJECT_ROOT

ENVIRONMENT = bundled()
pytestmark = [pytest.mark.skipif(sandbox.BWRAP is None, reason="bubblewrap (bwrap) is not installed"),
              pytest.mark.skipif(not ENVIRONMENT.ready, reason="the course environment is not built (make setup)")]
SMALL = RunLimits(wall_seconds=20, memory_bytes=512 * 2**20, processes=64, output_bytes=1_000_000)
AS_ROOT = os.geteuid() == 0


def python(code: str) -> list[str]:
    """A command running ``code`` (dedented) with the student environment's Python inside the sandbox."""
    return ["python", "-c", textwrap.dedent(code)]


def processes_running(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def heartbeat_stopped(path: Path) -> bool:
    """True when the file a looping process rewrites every 20 ms stops changing."""
    if not path.exists():
        return True
    before = path.read_text()
    time.sleep(0.3)
    return path.read_text() == before


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


# --------------------------------------------------------------------------- verdicts

def test_exit_code_and_output_are_reported(workdir):
    result = sandbox.run(["sh", "-c", "echo out; echo err >&2; exit 3"], workdir, limits=SMALL)
    assert result.verdict is Verdict.EXIT_CODE
    assert (result.exit_code, result.signal) == (3, None)
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert result.sandboxed and "bubblewrap" in result.isolation
    assert result.wall_seconds > 0
    if AS_ROOT:  # measured by the cgroups
        assert result.cpu_seconds is not None and result.peak_memory_bytes > 0


def test_ok_run_in_the_work_folder_with_python_from_the_student_environment(workdir):
    (workdir / "script.py").write_text("import sys, os\nprint(sys.prefix, os.getcwd(), os.path.realpath('/content'))\n"
                                       "open('out.txt', 'w').write('hi')\n")
    result = sandbox.run("python script.py", workdir, limits=SMALL)
    assert result.ok, result.stderr
    assert result.stdout.split() == [str(ENVIRONMENT.prefix), str(sandbox.WORKDIR_INSIDE), str(sandbox.WORKDIR_INSIDE)]
    assert sandbox.output_file(workdir, "out.txt").read_text() == "hi"
    assert result.environment == ENVIRONMENT.describe() and "torch 2.13.0" in result.environment


def test_memory_hog_is_out_of_memory(workdir):
    hog = python("""
        import numpy as np
        blocks = [np.ones(2**27 // 8) for _ in range(64)]  # 8 GiB, 128 MiB at a time
    """)
    result = sandbox.run(hog, workdir, limits=SMALL.with_overrides({"memory_bytes": 256 * 2**20}))
    assert result.verdict is Verdict.OUT_OF_MEMORY, result
    assert "memory_bytes" in result.message


def test_endless_loop_is_timeout_and_leaves_nothing_behind(workdir):
    marker = f"endless-{uuid.uuid4().hex}"
    result = sandbox.run(python(f"""
        import os, time
        if os.fork() == 0:  # a child in a loop too
            while True: time.sleep(0.01)
        while True: pass  # {marker}
    """), workdir, limits=SMALL.with_overrides({"wall_seconds": 1.5}))
    assert result.verdict is Verdict.TIMEOUT
    assert "wall_seconds" in result.message and result.wall_seconds >= 1.5
    assert processes_running(marker) == []


def test_cpu_time_limit_is_timeout(workdir):
    result = sandbox.run(python("while True: pass"), workdir, limits=SMALL.with_overrides({"cpu_seconds": 1}))
    assert result.verdict is Verdict.TIMEOUT
    assert result.signal == signal.SIGXCPU and "cpu_seconds" in result.message


def test_two_gigabyte_print_is_stopped_at_the_output_limit(workdir):
    printer = python("""
        import sys
        block = "x" * 2**20
        for _ in range(2048):  # 2 GiB
            sys.stdout.write(block)
    """)
    result = sandbox.run(printer, workdir, limits=SMALL.with_overrides({"output_bytes": 2**20, "captured_bytes": 4096}))
    assert result.verdict is Verdict.OUTPUT_LIMIT
    assert "output_bytes" in result.message
    assert result.output_bytes < 64 * 2**20  # stopped early, not after 2 GiB
    assert result.stdout_truncated and len(result.stdout) < 4096 + 100
    assert result.stdout.startswith("xxx") and "bytes cut" in result.stdout


def test_writing_too_much_to_the_work_folder_is_output_limit(workdir):
    writer = python("""
        import time
        with open("big.bin", "wb") as file:
            for _ in range(200):
                file.write(b"x" * 2**20)
                file.flush()
                time.sleep(0.01)
    """)
    result = sandbox.run(writer, workdir, limits=SMALL.with_overrides({"disk_bytes": 20 * 2**20}))
    assert result.verdict is Verdict.OUTPUT_LIMIT and "disk_bytes" in result.message


@pytest.mark.parametrize("depth", [0, 20], ids=["at the top", "deeper than PATH_MAX"])
def test_blocks_held_with_fallocate_count_against_disk_bytes(workdir, depth):
    """200 MB reserved with FALLOC_FL_KEEP_SIZE: no file size shows them, the blocks do; 20 folders of
    250-character names put the file past PATH_MAX, where no walk by path could reach it."""
    holder = python(f"""
        import ctypes, os, time
        for _ in range({depth}):
            os.mkdir("d" * 250)
            os.chdir("d" * 250)
        fd = os.open("held.bin", os.O_CREAT | os.O_WRONLY)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(200 * 2**20)):  # 1: FALLOC_FL_KEEP_SIZE
            raise OSError(ctypes.get_errno(), "fallocate")
        print(os.fstat(fd).st_size, flush=True)
        time.sleep(15)
    """)
    result = sandbox.run(holder, workdir, limits=SMALL.with_overrides({"disk_bytes": 20 * 2**20}))
    assert result.verdict is Verdict.OUTPUT_LIMIT and "disk_bytes" in result.message, result
    # stopped by a poll, not at its end; on a busy machine the poll may come before the size is printed
    assert result.stdout in ("0\n", "") and result.wall_seconds < 5


def test_files_past_disk_inodes_are_output_limit(workdir):
    maker = python("""
        import time
        for number in range(1000):
            open(f"empty-{number}", "w").close()
        time.sleep(15)
    """)
    result = sandbox.run(maker, workdir, limits=SMALL.with_overrides({"disk_inodes": 200}))
    assert result.verdict is Verdict.OUTPUT_LIMIT and "disk_inodes" in result.message, result
    assert result.wall_seconds < 5


@contextlib.contextmanager
def tmpfs(folder: Path, size_bytes: int, inodes: int):
    """``folder`` as a small tmpfs of its own for the duration (root only; skips the test where it cannot)."""
    if not AS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},nr_inodes={inodes}", "tmpfs",
                              str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.mark.parametrize(("key", "filler"), [
    ("disk_bytes", "open('big.bin', 'wb').write(b'x' * 2 * 2**20)"),
    ("disk_inodes", "[open(f'empty-{number}', 'w').close() for number in range(100)]"),
])
def test_a_full_work_folder_of_its_own_is_output_limit_whatever_the_exit_code(workdir, key, filler):
    """The root grader's work folder is a size- and inode-limited tmpfs: the kernel refuses the write
    (ENOSPC), the program exits with a code of its own, and statvfs names the limit."""
    with tmpfs(workdir, 2**20, 64):
        result = sandbox.run(python(f"""
            try:
                {filler}
            except OSError as error:
                print(error.strerror)
                raise SystemExit(3)
        """), workdir, limits=SMALL.with_overrides({"disk_bytes": 2**20, "disk_inodes": 64}))
    assert result.stdout == "No space left on device\n"
    assert result.verdict is Verdict.OUTPUT_LIMIT and key in result.message and "full" in result.message, result


def test_a_folder_1200_deep_is_handed_over_without_recursion(workdir):
    """os.walk recurses in Python 3.11 and raised RecursionError here. The chain is made through
    descriptors, on a tmpfs (1,200 folders on this disk take a second) that the unmount removes."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    with tmpfs(workdir, 2**24, 2000):
        deepest = os.open(workdir, flags)
        try:
            for _ in range(1200):
                os.mkdir("d", dir_fd=deepest)
                deepest, above = os.open("d", flags, dir_fd=deepest), deepest
                os.close(above)
            result = sandbox.run(["sh", "-c", "touch " + "d/" * 1200 + "written"], workdir, limits=SMALL)
            assert result.ok, result
            assert os.stat("written", dir_fd=deepest).st_uid == sandbox.SANDBOX_UID
        finally:
            os.close(deepest)


def test_file_size_limit_stops_a_large_write(workdir):
    result = sandbox.run(["sh", "-c", "head -c 3000000 /dev/zero > big.bin"], workdir,
                         limits=SMALL.with_overrides({"file_size_bytes": 1_000_000}))
    assert result.verdict is Verdict.OUTPUT_LIMIT and "file_size_bytes" in result.message
    assert (workdir / "big.bin").stat().st_size <= 1_000_000


def test_open_files_are_limited(workdir):
    opener = python("""
        files = []
        try:
            while True:
                files.append(open("/dev/null"))
        except OSError as error:
            print(len(files), error.strerror)
    """)
    result = sandbox.run(opener, workdir, limits=SMALL.with_overrides({"open_files": 64}))
    count, reason = result.stdout.split(maxsplit=1)
    assert int(count) < 64 and reason.strip() == "Too many open files"


def test_crash_is_killed_by_signal(workdir):
    result = sandbox.run(python("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"), workdir, limits=SMALL)
    assert result.verdict is Verdict.KILLED_BY_SIGNAL
    assert result.signal == signal.SIGSEGV and "SIGSEGV" in result.message


# --------------------------------------------------------------------------- the process tree

def test_fork_bomb_is_contained_and_the_machine_stays_responsive(workdir):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    bomb = python(f"""
        import os
        while True:  # {marker}
            try:
                os.fork()
            except OSError:
                pass
    """)
    host_answered = []

    def spawn_on_the_host():
        time.sleep(1.0)  # the bomb is at its limit by now
        host_answered.append(subprocess.run(["true"], timeout=30).returncode)

    helper = threading.Thread(target=spawn_on_the_host)
    helper.start()
    result = sandbox.run(bomb, workdir, limits=SMALL.with_overrides({"processes": 32, "wall_seconds": 2.5}))
    helper.join()
    assert result.verdict is Verdict.TIMEOUT
    assert host_answered == [0]
    if AS_ROOT:
        assert result.process_limit_hit
    assert processes_running(marker) == []


def test_double_forked_daemon_does_not_survive_the_run(workdir):
    daemon = python("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for fd in (0, 1, 2):
                    os.close(fd)
                while True:  # the daemon: a heartbeat every 20 ms
                    with open("/submission/heartbeat", "w") as file:
                        file.write(str(time.time()))
                    time.sleep(0.02)
            os._exit(0)
        time.sleep(0.3)  # let the daemon beat, then leave it behind
    """)
    result = sandbox.run(daemon, workdir, limits=SMALL)
    assert result.ok, result.stderr
    assert (workdir / "heartbeat").exists()
    assert heartbeat_stopped(workdir / "heartbeat")


def test_killing_its_parent_from_inside_does_not_hurt_the_grader(workdir):
    killer = python(f"""
        import os, signal
        for target in (os.getppid(), 1, -1, {os.getpid()}):
            try:
                os.kill(target, signal.SIGKILL)
                print(target, "signalled")
            except ProcessLookupError:
                print(target, "invisible")
            except PermissionError:
                print(target, "refused")
        print("still here")
    """)
    result = sandbox.run(killer, workdir, limits=SMALL)
    assert f"{os.getpid()} invisible" in result.stdout  # the grader's pid does not exist in there
    assert sandbox.run(["true"], workdir, limits=SMALL).ok  # and the grader carries on


def test_the_run_dies_with_the_grader(tmp_path):
    """A grader killed with SIGKILL takes its sandboxed runs with it (--die-with-parent)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    grader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from grader import sandbox
        sandbox.run(["sh", "-c", "while true; do date +%s%N > heartbeat; sleep 0.02; done"], {str(workdir)!r})
    """)], cwd=PROJECT_ROOT)
    heartbeat = workdir / "heartbeat"
    deadline = time.monotonic() + 30
    while not heartbeat.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert heartbeat.exists(), "the sandboxed loop never started"
    grader.kill()
    grader.wait()
    time.sleep(0.2)
    assert heartbeat_stopped(heartbeat)


# --------------------------------------------------------------------------- what it can see and touch

def test_no_network_but_loopback(workdir):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result = sandbox.run(python(f"""
            import socket
            print([name for _, name in socket.if_nameindex()])
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print("connected")
            except OSError as error:
                print("refused", type(error).__name__)
        """), workdir, limits=SMALL)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the host's listener
    finally:
        listener.close()
    assert result.ok, result.stderr
    interfaces, outcome = result.stdout.splitlines()
    assert interfaces == "['lo']"
    assert outcome.startswith("refused")


def test_held_out_clips_rubrics_reference_home_and_other_submissions_are_invisible(tmp_path, workdir):
    secrets = []
    for folder in (PROJECT_ROOT / "data", PROJECT_ROOT / "rubrics", Path.home(), tmp_path / "other-submission"):
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        secret = folder / f".sandbox-probe-{uuid.uuid4().hex}"
        secret.write_text("secret")
        secrets.append((secret, folder if created else None))
    heldout = sorted((PROJECT_ROOT / "data").glob("embedded/heldout/*.wav"))[:1]
    solution = [PROJECT_ROOT / "reference" / "wavenet.py",
                *sorted((PROJECT_ROOT / "reference").glob("checkpoints/*"))[:1]]
    try:
        paths = [str(secret) for secret, _ in secrets] + [str(path) for path in heldout + solution]
        result = sandbox.run(python(f"""
            import os
            for path in {paths!r}:
                try:
                    open(path).read()
                    print("READ", path)
                except OSError:
                    print("hidden", path)
            try:
                import reference
                print("READ the reference solution")
            except ImportError:
                print("hidden reference")
            print(sorted(os.listdir("/")))
        """), workdir, limits=SMALL)
    finally:
        for secret, created_folder in secrets:
            secret.unlink()
            if created_folder is not None:
                with contextlib.suppress(OSError):  # someone may have filled it meanwhile (make data)
                    created_folder.rmdir()
    assert result.ok, result.stderr
    *lines, top = result.stdout.splitlines()
    assert lines and all(line.startswith("hidden") for line in lines), result.stdout
    assert "home" not in top and "root" not in top


def test_writes_outside_the_work_folder_fail(tmp_path, workdir):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.txt").write_text("input")
    clips.chmod(0o755)
    marker = f"sandbox-probe-{uuid.uuid4().hex}"
    targets = ["/", "/usr", "/etc", "/var", str(ENVIRONMENT.prefix), str(ENVIRONMENT.site_packages),
               str(PROJECT_ROOT), "/inputs/clips", "/var/cache/numba-warm", "/opt/grader-site"]
    result = sandbox.run(python(f"""
        import os
        for folder in {targets!r}:
            try:
                open(os.path.join(folder, {marker!r}), "w").write("x")
                print("WROTE", folder)
            except OSError:
                print("refused", folder)
        open("/tmp/{marker}", "w").write("private")
        open("/submission/{marker}", "w").write("allowed")
        print(open("{{clips}}/a.txt").read())
    """), workdir, inputs={"clips": clips}, limits=SMALL)
    assert result.ok, result.stderr
    *refusals, read_back = result.stdout.splitlines()
    assert refusals == [f"refused {target}" for target in targets]
    assert read_back == "input"
    assert (workdir / marker).read_text() == "allowed"
    assert not Path("/tmp", marker).exists()  # its /tmp was its own
    assert not (PROJECT_ROOT / marker).exists() and not (clips / marker).exists()


def test_no_descriptor_of_the_grader_is_inherited(tmp_path, workdir):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    leaked = os.open(secret, os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        result = sandbox.run(python("import os; print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))"),
                             workdir, limits=SMALL)
    finally:
        os.close(leaked)
    assert result.ok, result.stderr
    assert json.loads(result.stdout)[:3] == [0, 1, 2] and len(json.loads(result.stdout)) == 4  # + listdir's own


def test_warm_numba_cache_is_used_read_only(workdir):
    cache = ENVIRONMENT.numba_cache  # warmed when the environment was built
    before = sorted((path.name, path.stat().st_mtime_ns) for path in cache.rglob("*"))
    librosa = python("import librosa, numpy; librosa.util.localmax(numpy.zeros(4))")  # numba-compiled in librosa
    result = sandbox.run(librosa, workdir, env={"NUMBA_DEBUG_CACHE": "1"}, limits=SMALL)
    assert result.ok, result.stderr
    assert "[cache] data loaded from '/tmp/numba-cache/" in result.stdout  # from the warm cache, not compiled
    assert "data saved" not in result.stdout
    assert sorted((path.name, path.stat().st_mtime_ns) for path in cache.rglob("*")) == before


# --------------------------------------------------------------------------- kernel state shared between runs

def add_key(description: str) -> str:
    """Python code that stores a key under ``description`` in its user's keyring and prints what add_key said."""
    return textwrap.dedent(f"""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        number = {{"x86_64": 248, "aarch64": 217}}[os.uname().machine]
        key = libc.syscall(ctypes.c_long(number), b"user", {description.encode()!r}, b"secret", ctypes.c_long(6),
                           ctypes.c_long(-4))  # KEY_SPEC_USER_KEYRING
        print("add_key:", os.strerror(ctypes.get_errno()) if key < 0 else "stored")
    """)


def test_keyrings_are_refused_so_no_key_reaches_a_later_run(workdir):
    """Every run is uid 65534: a key in its user keyring would be readable by the next submission's runs."""
    description = f"grader-probe-{uuid.uuid4().hex}"
    stored = sandbox.run(["python", "-c", add_key(description)], workdir, limits=SMALL)
    later = sandbox.run(["cat", "/proc/keys"], workdir, limits=SMALL)
    assert stored.stdout == "add_key: Operation not permitted\n", stored
    assert later.ok and description not in later.stdout


def test_the_unsandboxed_mode_has_the_filter_too(monkeypatch, workdir):
    monkeypatch.setattr(sandbox, "BWRAP", None)
    description = f"grader-probe-{uuid.uuid4().hex}"
    stored = sandbox.run(["python", "-c", add_key(description)], workdir, limits=SMALL, allow_unsandboxed=True)
    assert stored.stdout == "add_key: Operation not permitted\n", stored
    assert description not in Path("/proc/keys").read_text()


def test_the_filter_leaves_processes_threads_and_pools_alone_but_refuses_new_namespaces(workdir):
    result = sandbox.run(python("""
        import ctypes, multiprocessing, os, subprocess, threading
        with multiprocessing.Pool(2) as pool:  # fork, semaphores in /dev/shm, pipes
            print(pool.map(abs, [-1, -2, -3]))
        thread = threading.Thread(target=print, args=("thread",))  # glibc tries clone3, then clone
        thread.start()
        thread.join()
        print(subprocess.run(["sh", "-c", "echo sub | cat"], capture_output=True, text=True).stdout.strip())
        print(os.waitpid(os.posix_spawn("/bin/true", ["true"], {}), 0)[1])
        libc = ctypes.CDLL(None, use_errno=True)
        for name, flags in (("user", 0x10000000), ("mount", 0x20000), ("network", 0x40000000)):
            print(name, libc.unshare(flags), os.strerror(ctypes.get_errno()))
    """), workdir, limits=SMALL)
    assert result.ok, result
    assert result.stdout.splitlines() == ["[1, 2, 3]", "thread", "sub", "0", "user -1 Operation not permitted",
                                          "mount -1 Operation not permitted", "network -1 Operation not permitted"]


CREDENTIALS = python("""
    import resource
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    print({key: status[key].split() for key in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd",
                                                "CapAmb", "NoNewPrivs")})
    print([resource.getrlimit(r) for r in (resource.RLIMIT_CPU, resource.RLIMIT_FSIZE, resource.RLIMIT_NOFILE)])
""")


@pytest.mark.skipif(not AS_ROOT, reason="the drop from root to the sandbox's uid needs root")
@pytest.mark.parametrize("first_program", ["sandbox-init", "setpriv and prlimit"])
def test_student_code_runs_without_privileges_and_with_its_rlimits(monkeypatch, workdir, first_program):
    """Whichever first program runs inside (the built one, or util-linux's where no compiler is)."""
    if first_program == "sandbox-init":
        assert this_host().init is not None, "the sandbox's first program could not be built (is cc there?)"
    else:
        without_init = dataclasses.replace(this_host(), init=None)
        monkeypatch.setattr(launch, "this_host", lambda require_sandbox_tools=True: without_init)
    limits = SMALL.with_overrides({"cpu_seconds": 7, "file_size_bytes": 5 * 2**20, "open_files": 77})
    result = sandbox.run(CREDENTIALS, workdir, limits=limits)
    assert result.ok, result.stderr
    status_line, rlimits_line = result.stdout.splitlines()
    status = ast.literal_eval(status_line)
    uid, gid = str(sandbox.SANDBOX_UID), str(sandbox.SANDBOX_GID)
    assert status["Uid"] == [uid] * 4 and status["Gid"] == [gid] * 4 and status["Groups"] == []
    assert all(int(status[key][0], 16) == 0 for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))
    assert status["NoNewPrivs"] == ["1"]
    assert ast.literal_eval(rlimits_line) == [(7, 8), (5 * 2**20, 5 * 2**20), (77, 77)]


@pytest.mark.skipif(not AS_ROOT, reason="cgroups are made by a root grader")
def test_each_run_has_fresh_cgroups_and_the_grader_keeps_its_own(workdir):
    """The launching thread joins the run's groups only for the start; nothing of one run
    (memory peak, processes, CPU time) carries into the next, and no group is left behind."""
    own_groups = Path("/proc/thread-self/cgroup").read_text()
    hog = sandbox.run(python("import os; x = bytearray(300 * 2**20); os.fork() or os.wait()"), workdir, limits=SMALL)
    assert hog.ok, hog.stderr
    assert hog.peak_memory_bytes > 300 * 2**20 and hog.cpu_seconds > 0
    small = sandbox.run(["sh", "-c", "cat /proc/self/cgroup"], workdir, limits=SMALL)
    assert small.ok and small.peak_memory_bytes < 100 * 2**20 and small.cpu_seconds < hog.cpu_seconds
    assert {line.split(":", 2)[2] for line in small.stdout.splitlines() if ":pids:" in line or ":memory:" in line} \
        == {"/"}  # the run's own groups are the root of its cgroup namespace
    assert Path("/proc/thread-self/cgroup").read_text() == own_groups
    for parent in Cgroups._own_groups(Path("/proc/self/cgroup").read_text()).values():
        assert not list(parent.glob(f"grader-sandbox-{os.getpid()}-*"))


# --------------------------------------------------------------------------- mounts and the grader's own modules

def test_mounts_show_instructor_folders_read_only_where_the_rubric_puts_them(tmp_path, workdir):
    data = tmp_path / "fsdd"
    data.mkdir()
    (data / "0_jackson_0.wav").write_text("clip")
    notes = tmp_path / "notes.txt"
    notes.write_text("notes")
    for path in (data, data / "0_jackson_0.wav", notes):
        path.chmod(0o755 if path.is_dir() else 0o644)
    mounts = {"Data/fsdd": data, "/content/drive/MyDrive/hw3/data": data, "/datasets/fsdd": data,
              "Data/notes.txt": notes}
    result = sandbox.run(python("""
        import os
        for path in ("Data/fsdd/0_jackson_0.wav", "/content/drive/MyDrive/hw3/data/0_jackson_0.wav",
                     "/submission/drive/MyDrive/hw3/data/0_jackson_0.wav", "/datasets/fsdd/0_jackson_0.wav",
                     "/content/Data/notes.txt"):
            print(open(path).read(), end=" ")
        for folder in ("Data/fsdd", "/datasets/fsdd"):
            try:
                open(os.path.join(folder, "new.txt"), "w")
                print("WROTE", folder)
            except OSError:
                print("refused", end=" ")
        open("Data/mine.txt", "w").write("a folder made for a mount is the student's to write in")
        print(os.environ["PYTHONPATH"], sorted(os.listdir(os.environ["PYTHONPATH"])))
    """), workdir, limits=SMALL, mounts=mounts)
    assert result.ok, result.stderr
    site = sorted(entry.name for entry in sandbox.SITE_FOLDER.iterdir()) if sandbox.SITE_FOLDER.is_dir() else []
    assert result.stdout == f"clip clip clip clip notes refused refused /opt/grader-site {site}\n"
    assert not (data / "new.txt").exists() and (workdir / "Data" / "mine.txt").is_file()


def test_a_mount_point_must_be_a_place_of_the_submission_or_a_new_folder(tmp_path, workdir):
    for inside in ("Data/fsdd", "/content/sample_data", "/kaggle/input/fsdd", "/submission/x"):
        assert sandbox.mount_point_problem(inside) is None, inside
    for inside in ("../escape", "Data/../../x", "", "/content", "/usr/share/x", "/tmp/data", "/etc/x", "/inputs/mels",
                   str(ENVIRONMENT.prefix / "data"), "/"):
        assert sandbox.mount_point_problem(inside), inside
    (workdir / "Data").write_text("a file where the mount needs a folder")
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    result = sandbox.run(["true"], workdir, limits=SMALL, mounts={"Data/fsdd": data})
    assert result.verdict is Verdict.SANDBOX_UNAVAILABLE and "'Data'" in result.message
    with pytest.raises(ValueError, match="'..'"):
        sandbox.run(["true"], workdir, limits=SMALL, mounts={"../x": tmp_path})


def test_output_file_refuses_links_and_special_files(workdir):
    (workdir / "real.wav").write_bytes(b"RIFF")
    (workdir / "link.wav").symlink_to("/etc/passwd")
    (workdir / "folder").symlink_to("/etc")
    os.mkfifo(workdir / "fifo.wav")
    assert sandbox.output_file(workdir, "real.wav") == workdir.resolve() / "real.wav"
    for name in ("link.wav", "folder/passwd", "fifo.wav", f"../{workdir.name}/real.wav", "missing.wav"):
        with pytest.raises(FileNotFoundError):
            sandbox.output_file(workdir, name)


# --------------------------------------------------------------------------- without bubblewrap, without root

def test_without_bubblewrap_runs_are_refused_unless_allowed(monkeypatch, workdir):
    monkeypatch.setattr(sandbox, "BWRAP", None)
    refused = sandbox.run(["true"], workdir, limits=SMALL)
    assert refused.verdict is Verdict.SANDBOX_UNAVAILABLE and sandbox.UNSAFE_FLAG in refused.message
    assert sandbox.isolation_problem() is not None

    allowed = sandbox.run(python("print('ran')"), workdir, limits=SMALL, allow_unsandboxed=True)
    assert allowed.ok and allowed.stdout == "ran\n"
    assert not allowed.sandboxed and allowed.message.startswith("UNSANDBOXED")
    hog = sandbox.run(python("import numpy as np; x = np.ones(2**30)"), workdir, allow_unsandboxed=True,
                      limits=SMALL.with_overrides({"memory_bytes": 256 * 2**20}))
    assert hog.verdict is Verdict.OUT_OF_MEMORY  # resource limits still hold


@pytest.mark.skipif(not AS_ROOT, reason="the root path without cgroups needs root")
def test_as_root_without_cgroups_rlimits_still_hold(monkeypatch, workdir):
    """A root grader on a machine without writable cgroup v1 controllers (cgroup v2 only, say)."""
    monkeypatch.setattr(Cgroups, "create", classmethod(lambda cls, limits: None))
    forks = python("""
        import os, time
        for n in range(100):
            try:
                if os.fork() == 0:
                    time.sleep(5)
                    os._exit(0)
            except OSError:
                print("refused after", n)
                break
    """)
    limits = SMALL.with_overrides({"processes": 16, "memory_bytes": 256 * 2**20})
    bomb = sandbox.run(forks, workdir, limits=limits)
    assert "RLIMIT_NPROC" in bomb.isolation and bomb.stdout.startswith("refused after")
    hog = sandbox.run(python("import numpy as np; x = np.ones(2**30)"), workdir, limits=limits)
    assert hog.verdict is Verdict.OUT_OF_MEMORY


def test_isolation_is_available_here():
    assert sandbox.isolation_problem() is None


NON_ROOT_CHECKS = textwrap.dedent("""
    import json, sys
    from grader import sandbox
    from grader.limits import RunLimits
    workdir, port, project_file, add_key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    small = RunLimits(wall_seconds=20, memory_bytes=256 * 2**20, processes=16)
    def py(code):
        return ["python", "-c", code]
    runs = {
        "ok": sandbox.run(py("import os; print(os.getuid())"), workdir, limits=small),
        "fork_bomb": sandbox.run(py(
            "import os\\nn = 0\\nwhile n < 100:\\n    try:\\n        os.fork() or __import__('time').sleep(5)\\n"
            "        n += 1\\n    except OSError:\\n        print('refused after', n); break"), workdir, limits=small),
        "memory_hog": sandbox.run(py("import numpy as np; x = np.ones(2**30)"), workdir, limits=small),
        "network": sandbox.run(py(
            "import socket\\ntry:\\n    socket.create_connection(('127.0.0.1', %d), timeout=2); print('connected')\\n"
            "except OSError: print('refused')" % port), workdir, limits=small),
        "escape": sandbox.run(py("open(%r)" % project_file), workdir, limits=small),
        "keyring": sandbox.run(py(add_key), workdir, limits=small),
    }
    print(json.dumps({name: r.model_dump(mode="json") for name, r in runs.items()}))
""")


def reachable_by_other_users(path: Path) -> bool:
    """Whether a user other than the owner can walk down to ``path`` (every folder on the way has o+x)."""
    return all(folder.stat().st_mode & 0o001 for folder in (path, *path.parents))


@pytest.mark.skipif(not AS_ROOT or shutil.which("setpriv") is None, reason="needs root to drop privileges with setpriv")
@pytest.mark.skipif(not reachable_by_other_users(PROJECT_ROOT),
                    reason="the project lies in a folder other users cannot enter (e.g. under `mktemp -d`), so the "
                    "unprivileged grader could not import it")
def test_a_user_without_root_gets_the_same_sandbox():
    """The grader itself runs as uid 65534: no cgroups, bubblewrap through a user namespace."""
    workdir = Path(tempfile.mkdtemp(prefix="sandbox-nonroot-"))
    os.chown(workdir, 65534, 65534)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        completed = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
             sys.executable, "-c", NON_ROOT_CHECKS, str(workdir), str(listener.getsockname()[1]),
             str(PROJECT_ROOT / "pyproject.toml"), add_key(f"grader-probe-{uuid.uuid4().hex}")],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
            env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    finally:
        listener.close()
        shutil.rmtree(workdir)
    assert completed.returncode == 0, completed.stderr
    runs = json.loads(completed.stdout)
    assert all("user namespace" in run["isolation"] for run in runs.values())
    assert runs["ok"]["verdict"] == "ok" and runs["ok"]["stdout"] == "1000\n"
    assert runs["fork_bomb"]["stdout"].startswith("refused after")  # RLIMIT_NPROC binds in its own namespace
    assert int(runs["fork_bomb"]["stdout"].split()[-1]) < 16
    assert runs["memory_hog"]["verdict"] == "out_of_memory"
    assert runs["network"]["stdout"] == "refused\n"
    assert runs["escape"]["verdict"] == "exit_code" and "FileNotFoundError" in runs["escape"]["stderr"]
    assert runs["keyring"]["stdout"] == "add_key: Operation not permitted\n"
