#!/usr/bin/env python3
"""Drive a command through a real pseudo-terminal, like a person at a keyboard.

Input (JSON on stdin): {"cmd": [...], "cwd": "...", "steps": [[regex, text_to_type], ...], "timeout": s}
For each step: wait until `regex` appears in the output received since the previous step, then type
`text_to_type` (a trailing newline is Enter). A step may name a third item, a file created once its
pattern appeared (so a test can change something the program watches at the right moment). After the
last step, read until the process exits.
Output (JSON on stdout): {"transcript": "...", "exit": code, "error": null | "..."}.
"""
import json
import os
import pty
import re
import select
import sys
import time


def main() -> None:
    spec = json.load(sys.stdin)
    deadline = time.monotonic() + float(spec.get("timeout", 60))
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(spec.get("cwd", "."))
        env = dict(os.environ, TERM="xterm", NO_COLOR="1")
        os.execvpe(spec["cmd"][0], spec["cmd"], env)
    transcript = ""
    pending = ""
    error = None

    def read_some(wait: float) -> bool:
        nonlocal transcript, pending
        r, _, _ = select.select([fd], [], [], wait)
        if not r:
            return True
        try:
            data = os.read(fd, 4096)
        except OSError:
            return False  # EIO: the child closed the terminal
        if not data:
            return False
        text = data.decode("utf-8", "replace")
        transcript += text
        pending += text
        return True

    for step in spec["steps"]:
        pattern, text = step[0], step[1]
        rx = re.compile(pattern)
        while not rx.search(pending):
            if time.monotonic() > deadline:
                error = f"timed out waiting for {pattern!r}"
                break
            if not read_some(0.2):
                error = f"process ended while waiting for {pattern!r}"
                break
        if error:
            break
        pending = ""
        if len(step) > 2:
            open(step[2], "w").close()
        os.write(fd, text.encode())
    while time.monotonic() < deadline and read_some(0.2):
        pass
    code = None
    for _ in range(100):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            error = error or "timed out waiting for exit"
        time.sleep(0.1)
    json.dump({"transcript": transcript, "exit": code, "error": error}, sys.stdout)


if __name__ == "__main__":
    main()
