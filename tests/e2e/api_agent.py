"""The host side of tests/e2e/test_api.py, run in the background of the nested
host's shell while a VMM holds its tty.

The VMM's console is the only way the test reaches the nested host once the
VMM runs, so the guest asks for API calls instead: it connects (busybox nc,
through --net user: 10.0.2.2 is the nested host's 127.0.0.1) to this agent
and sends one line; the agent makes the call with curl on the API socket.

  call METHOD PATH   answers "API <status> <body>" and closes
  later METHOD PATH  answers "ok" and closes, then makes the call (for
                     shutdown, poweroff, reboot: the guest may be gone before
                     an answer could reach it) and prints
                     "__AGENT_DONE_<status>__" on its stdout, the nested
                     host's tty, where the test reads it
  pause-for SECONDS  answers "ok" and closes, then pauses the VM, checks it,
                     prints "__AGENT_PAUSED <pause> <state> <pause again>__",
                     waits SECONDS, prints "__AGENT_RESUMING__", resumes
                     it and prints "__AGENT_RESUMED <resume> <state>__"

usage: api_agent.py SOCKET PORT
"""

import json
import socket
import subprocess
import sys
import threading
import time


def curl(sock, method, path):
    """(status, body) of one request, status "000" when curl failed."""
    res = subprocess.run(["curl", "-s", "-S", "--max-time", "30", "--unix-socket", sock,
                          "-X", method, "-w", "\n%{http_code}", f"http://localhost{path}"],
                         capture_output=True, text=True)
    body, _, status = res.stdout.rpartition("\n")
    if res.returncode != 0:
        body = f"curl exited {res.returncode}: {res.stderr.strip()}"
    return status.strip() or "000", body.strip()


def state(sock):
    status, body = curl(sock, "GET", "/v1/vm")
    try:
        return json.loads(body)["state"] if status == "200" else f"http{status}"
    except (ValueError, KeyError):
        return "unparsable"


def say(text):
    """To the tty: newlines around it, as the tty is in raw mode under the VMM."""
    sys.stdout.write(f"\r\n{text}\r\n")
    sys.stdout.flush()


def pause_for(sock, seconds):
    time.sleep(1)  # the guest's shell gets its prompt back first
    paused, _ = curl(sock, "PUT", "/v1/vm/pause")
    seen = state(sock)
    again, _ = curl(sock, "PUT", "/v1/vm/pause")
    say(f"__AGENT_PAUSED {paused} {seen} {again}__")
    time.sleep(seconds)
    say("__AGENT_RESUMING__")  # before: the guest's output may come before the call returns
    resumed, _ = curl(sock, "PUT", "/v1/vm/resume")
    say(f"__AGENT_RESUMED {resumed} {state(sock)}__")


def later(sock, method, path):
    time.sleep(1)
    status, body = curl(sock, method, path)
    say(f"__AGENT_DONE_{status}__ {body}")


def serve(conn, sock):
    with conn:
        conn.settimeout(20)
        line = conn.makefile("r").readline().split()
        if len(line) == 3 and line[0] == "call":
            status, body = curl(sock, line[1], line[2])
            conn.sendall(f"API {status} {body}\n".encode())
            return
        if len(line) == 3 and line[0] == "later":
            conn.sendall(b"ok\n")
            job = threading.Thread(target=later, args=(sock, line[1], line[2]))
        elif len(line) == 2 and line[0] == "pause-for":
            conn.sendall(b"ok\n")
            job = threading.Thread(target=pause_for, args=(sock, float(line[1])))
        else:
            conn.sendall(f"bad request {line!r}\n".encode())
            return
    job.start()


def main():
    sock, port = sys.argv[1], int(sys.argv[2])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        try:
            serve(conn, sock)
        except (OSError, ValueError) as e:
            say(f"__AGENT_ERROR {e}__")


if __name__ == "__main__":
    main()
