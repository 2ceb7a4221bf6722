#!/usr/bin/env python3
"""run_suite.py — runs a doctest suite so that one broken test case cannot hide the others.

On a GPU, a kernel that writes out of bounds leaves the CUDA context unusable ("sticky" errors
such as cudaErrorIllegalAddress): every later CUDA call in that process fails, so every later
test case fails too, and a segfault or a hang ends the process outright. This runner lists the
suite's cases, runs them in one process, and when a case crashes, hangs, dies, or reports a
sticky CUDA error, records that case as the culprit and starts a fresh process at the next
case (doctest's --first), until every case has run or the time is spent. With time left, each
culprit is run once more alone under compute-sanitizer's memcheck, when that tool is found,
to name the kernel and the address.

usage: run_suite.py [--budget S] [--stall S] [--restarts N] [--sanitizer auto|off]
                    [--sanitizer-limit S] BINARY [DOCTEST_FILTER_ARGS...]

--budget defaults to $STEP_LIMIT - 5 (gpu-check.sh sets STEP_LIMIT) or 600. The test output
is passed through; the last lines are "run_suite:" lines: one count line, then one line per
case that failed, crashed or did not run. Exit status: 0 every case ran and passed, 1 some
failed, crashed or the suite could not be listed, 124 the budget ran out before every case ran.
Standard library only: it runs on the GPU machine's Python as on Debian's.
"""
import argparse
import os
import pty
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

DURATION = re.compile(r"^\d+\.\d{6} s: (.*)$")
CRASHED = re.compile(r"CRASHED: ")
# Errors after which the CUDA context is lost for the rest of the process (the CUDA runtime
# API's sticky errors), and the library statuses that report one.
STICKY = re.compile(
    r"cudaError(IllegalAddress|LaunchFailure|IllegalInstruction|MisalignedAddress|"
    r"InvalidAddressSpace|InvalidPc|HardwareStackError|Assert|LaunchTimeout|ECCUncorrectable)"
    r"|CUBLAS_STATUS_EXECUTION_FAILED|CUDNN_STATUS_EXECUTION_FAILED")
FAILED = re.compile(r"\bERROR: ")
DONE = re.compile(r"^\[doctest\] Status: ")


CHILD = []  # the process group running now, for the SIGTERM handler


def on_term(signum, _frame):
    """timeout(1) ends this runner: end the test process too (it runs in a session of its own)."""
    for pid in CHILD:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    say(f"stopped by signal {signum}")
    sys.exit(124)


def say(msg):
    print(f"run_suite: {msg}", flush=True)


def list_cases(binary, filters, limit):
    """The cases passing the filters, in the order doctest runs them."""
    try:
        lines, rc, why = run_once([binary, *filters, "--list-test-cases", "--no-colors=true"],
                                  time.monotonic() + limit, limit, echo=False)
    except OSError as e:
        return None, str(e)
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    if len(rules) < 2:  # a complete listing stands even if the process then died at exit
        return None, f"{why or f'exit status {rc}'}: " + " | ".join(lines[-5:])
    return lines[rules[0] + 1:rules[1]], ""


def die_with_parent():
    """In the child before exec: SIGKILL it when this runner dies, even by SIGKILL (a timeout's
    -k), so that no test process keeps the GPU busy after its step. Linux only; elsewhere a
    no-op (SIGTERM is still forwarded by the handler below)."""
    try:
        import ctypes
        import signal as sig
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def run_once(cmd, deadline, stall, stop=lambda lines: False, echo=True):
    """Runs cmd, echoing its output, until it ends, the deadline, `stall` seconds of silence, or
    stop(lines) after a case's closing line; returns (lines, returncode or None, why stopped).
    The output goes through a pseudo-terminal, so that the C++ streams flush every line and
    a process that hangs or is killed has shown everything up to that point."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                start_new_session=True, preexec_fn=die_with_parent)
    finally:
        os.close(slave)
    CHILD[:] = [proc.pid]
    lines_q = queue.Queue()

    def pump():
        pending = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *done, pending = pending.split(b"\n")
            for raw in done:
                lines_q.put(raw.decode("utf-8", "replace").rstrip("\r"))
        if pending:
            lines_q.put(pending.decode("utf-8", "replace").rstrip("\r"))
        lines_q.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    lines, last, why = [], time.monotonic(), ""
    while True:
        now = time.monotonic()
        wait = min(deadline - now, last + stall - now)
        if wait <= 0:
            why = "budget spent" if deadline <= now else f"no output for {stall:g} s"
            break
        try:
            line = lines_q.get(timeout=wait)
        except queue.Empty:
            continue
        if line is None:
            break
        if echo:
            print(line, flush=True)
        lines.append(line)
        last = time.monotonic()
        if DURATION.match(line) and stop(lines):
            why = "culprit"  # what follows in this process is tainted
            break
    if why:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        rc = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    reader.join(timeout=5)
    os.close(master)
    return lines, rc, why


def parse(lines, cases, first):
    """Per case run (by position from `first`): (index, failed, culprit reason or '')."""
    results, idx, failed, reason = [], first, False, ""
    for line in lines:
        if idx >= len(cases):
            break
        if not reason and CRASHED.search(line):
            reason = "crashed: " + line.split("CRASHED: ", 1)[1].strip()
        elif not reason and STICKY.search(line):
            reason = "sticky CUDA error: " + line.strip()[:200]
        if FAILED.search(line):
            failed = True
        m = DURATION.match(line)
        if m:
            name = m.group(1)
            if name != cases[idx] and name in cases[idx:]:
                idx = cases.index(name, idx)
            results.append((idx, failed or bool(reason), reason))
            if reason:
                return results, True
            idx, failed = idx + 1, False
    return results, False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float,
                    default=max(10.0, float(os.environ.get("STEP_LIMIT", "605")) - 5))
    ap.add_argument("--stall", type=float, default=90.0,
                    help="seconds without output after which a case counts as hung")
    ap.add_argument("--restarts", type=int, default=8)
    ap.add_argument("--sanitizer", choices=["auto", "off"], default="auto")
    ap.add_argument("--sanitizer-limit", type=float, default=60.0)
    ap.add_argument("binary")
    ap.add_argument("filters", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + a.budget

    cases, err = list_cases(a.binary, a.filters, max(1.0, min(60.0, a.budget)))
    if cases is None:
        say(f"could not list the test cases of {a.binary}: {err}")
        return 1
    status = {}  # index -> "passed" | "failed" | culprit reason
    first, runs, teardown = 0, 0, ""
    while first < len(cases) and runs <= a.restarts and time.monotonic() < deadline - 1:
        if runs:
            say(f"restarting at case {first + 1} of {len(cases)}: {cases[first]}")
        runs += 1
        cmd = [a.binary, *a.filters, "--duration=true", "--no-colors=true", f"--first={first + 1}"]
        lines, rc, why = run_once(cmd, deadline, a.stall,
                                  lambda ls, f=first: parse(ls, cases, f)[1])
        results, stopped = parse(lines, cases, first)
        for idx, failed, reason in results:
            status[idx] = reason or ("failed" if failed else "passed")
        nxt = results[-1][0] + 1 if results else first
        if stopped:
            first = nxt
        elif why or rc is None or not any(DONE.match(line) for line in lines):
            # Killed (hang, budget) or died without doctest's own report: the case in progress.
            if nxt < len(cases) and why != "budget spent":
                status[nxt] = f"died ({why or f'exit status {rc}'}, no report)"
                nxt += 1
            if nxt >= len(cases) and why != "budget spent":
                teardown = f"the process died after its last case (exit status {rc})"
            first = nxt
            if why == "budget spent":
                break
        else:
            first = len(cases)  # finished normally
            if rc is not None and rc < 0:
                teardown = f"the process died by signal {-rc} after its summary"

    culprits = [i for i, s in sorted(status.items()) if s not in ("passed", "failed")]
    sanitizer = shutil.which("compute-sanitizer") or next(
        (p for p in ("/usr/local/cuda/bin/compute-sanitizer",) if os.access(p, os.X_OK)), None)
    if a.sanitizer == "auto" and culprits and not sanitizer:
        say("compute-sanitizer not found: culprits not rerun under memcheck")
    for i in culprits[:2] if a.sanitizer == "auto" and sanitizer else []:
        left = deadline - time.monotonic()
        if left < 20:
            say("no time left to rerun culprits under compute-sanitizer")
            break
        say(f"case {i + 1} alone under compute-sanitizer memcheck: {cases[i]}")
        run_once([sanitizer, "--tool", "memcheck", "--print-limit", "20", a.binary, *a.filters,
                  "--no-colors=true", f"--first={i + 1}", f"--last={i + 1}"],
                 time.monotonic() + min(a.sanitizer_limit, left - 5), a.stall)

    counts = {k: 0 for k in ("passed", "failed", "culprit", "not run")}
    for i in range(len(cases)):
        s = status.get(i, "not run")
        counts[s if s in counts else "culprit"] += 1
    say(f"{len(cases)} test cases in {runs} run(s): {counts['passed']} passed, "
        f"{counts['failed']} failed, {counts['culprit']} crashed/hung/sticky, "
        f"{counts['not run']} not run")
    for i in range(len(cases)):
        s = status.get(i, "not run")
        if s != "passed":
            say(f"{s}: {cases[i]}")
    if teardown:
        say(teardown)
    if counts["not run"]:
        return 124
    return 0 if counts["passed"] == len(cases) and not teardown else 1


if __name__ == "__main__":
    sys.exit(main())
