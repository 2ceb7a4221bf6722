#!/usr/bin/env python3
"""test_run_suite.py — tools/run_suite.py against a real doctest binary (tests/probe) whose third
case breaks in each of the ways a faulty GPU kernel can: a sticky CUDA error that taints every
later case, a segfault, a hang, a death without a report, a crash at exit. Each time the runner
must name that case, still run the two cases after it in a fresh process, report the one case
that merely fails as failed, and exit 1; with the time spent before the end it exits 124, and
a SIGTERM to it (timeout(1)) ends the test process too.

usage: test_run_suite.py PROBE_BINARY   (ctest runs it as the `run_suite` test)
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "..", "tools", "run_suite.py")


def run(probe, mode, *flags):
    env = dict(os.environ, PROBE_MODE=mode)
    p = subprocess.run([sys.executable, RUNNER, "--sanitizer", "off", *flags, probe], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    return p.returncode, [line for line in p.stdout.splitlines() if line.startswith("run_suite: ")]


def tagged(pid, tag):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"PROBE_TAG={tag}".encode() in f.read().split(b"\0")
    except OSError:
        return False


def main():
    probe = sys.argv[1]
    failures = []

    def expect(mode, flags, rc, summary, culprit):
        got_rc, lines = run(probe, mode, *flags)
        ok = got_rc == rc and any(summary in line for line in lines)
        b = "run_suite: failed: probe b: fails, [with] a comma, and *stars*"
        if rc == 1:
            ok = ok and b in lines
        if culprit:
            ok = ok and any(line.startswith("run_suite: " + culprit) and
                            line.endswith(": probe c: the faulty kernel") for line in lines)
        print(f"{'ok  ' if ok else 'FAIL'} mode={mode or 'plain'}: exit {got_rc}")
        if not ok:
            failures.append(mode)
            print("\n".join("    " + line for line in lines))

    expect("", [], 1, "5 test cases in 1 run(s): 4 passed, 1 failed, 0 crashed/hung/sticky, 0 not run", "")
    three = "5 test cases in 2 run(s): 3 passed, 1 failed, 1 crashed/hung/sticky, 0 not run"
    expect("sticky", [], 1, three, "sticky CUDA error: ")
    expect("segv", [], 1, three, "crashed: SIGSEGV")
    expect("hang", ["--stall", "3"], 1, three, "died (no output for 3 s")
    expect("kill", [], 1, three, "died (exit status -9")
    expect("teardown", [], 1, "4 passed, 1 failed, 0 crashed/hung/sticky, 0 not run", "")
    _, lines = run(probe, "teardown")
    if "run_suite: the process died by signal 11 after its summary" not in lines:
        failures.append("teardown message")
        print("FAIL teardown message:", lines)
    expect("hang", ["--stall", "100", "--budget", "4"], 124,
           "5 test cases in 1 run(s): 1 passed, 1 failed, 0 crashed/hung/sticky, 3 not run", "")
    # timeout(1) ends the runner with SIGTERM: the test process, in a session of its own, must
    # end with it.
    tag = f"probe-{os.getpid()}"
    env = dict(os.environ, PROBE_MODE="hang", PROBE_TAG=tag)
    runner = subprocess.Popen([sys.executable, RUNNER, "--sanitizer", "off", probe], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    runner.terminate()
    rc = runner.wait(timeout=30)
    time.sleep(0.5)
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and tagged(pid, tag)]
    print(f"{'ok  ' if rc == 124 and not left else 'FAIL'} SIGTERM: exit {rc}, "
          f"{len(left)} probe process(es) left")
    if rc != 124 or left:
        failures.append("sigterm")
    if failures:
        print(f"run_suite: {len(failures)} of the probe's checks failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
