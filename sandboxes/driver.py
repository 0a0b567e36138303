"""The interpreter side of a local sandbox session. Runs INSIDE the sandbox as ``python -I -S driver.py``.

Protocol: the host writes requests on one pipe and reads replies on another (their fds are argv[1:3]), each a 4-byte big-endian length and
a JSON object. The code's own stdout/stderr are the process's fds 1 and 2, which the host drains (and
caps) itself, so output from child processes is captured too. A request is ``{"code": str, "cpu_s":
float, "nonce": str, "max_chars": int}``; the reply is ``{"nonce": the request's nonce, "value": repr of the
last expression or null, "exception": "Type: message" or null, "traceback": str or null, "oom": bool,
"stdio": bool (fds 1 and 2 still lead to the host), "cut": chars dropped from the fields above}``, each text
field cut to ``max_chars``. State persists between requests like a notebook cell.

The cell runs in this process, so it can reach everything here, the reply descriptor included: nothing in
this file is trusted by the host. The host binds each reply to its call with the nonce, caps and validates
it, and restarts the sandbox on any deviation (see local.py, "The reply channel").

Standard library only: this file must run under a bare ``python -I -S``.
"""

import ast
import errno
import json
import os
import resource
import struct
import sys
import traceback

# The host passes the two pipe descriptors as arguments (they keep their numbers through bwrap).
REQUESTS, REPLIES = (3, 4)
if len(sys.argv) > 2 and sys.argv[1] != "--replay":
    REQUESTS, REPLIES = int(sys.argv[1]), int(sys.argv[2])


def read_exact(fd, n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def send(obj):
    data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    os.write(REPLIES, struct.pack(">I", len(data)) + data)


def run_cell(code, namespace):
    tree = ast.parse(code, "<cell>", "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<cell>", "exec"), namespace)
    if last is not None:
        value = eval(compile(last, "<cell>", "eval"), namespace)
        if value is not None:
            return repr(value)
    return None


def short_traceback(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<cell>"]
    lines = traceback.format_list(frames[-5:]) if frames else []
    return "".join(lines) + "".join(traceback.format_exception_only(type(exc), exc))


def reap_children():
    """Collect exited children of the cell's processes (the host kills leftovers after each call)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def stdio_identity():
    """What fds 1 and 2 are (device, inode) and whether Python's streams still write to them."""
    try:
        fds = tuple((st.st_dev, st.st_ino) for st in (os.fstat(1), os.fstat(2)))
    except OSError:  # closed
        return None
    streams = (sys.stdout, sys.stderr)
    try:
        if any(s.closed or s.fileno() != n for n, s in zip((1, 2), streams)):
            return None
    except Exception:  # replaced by an object without a descriptor (or a broken one)
        return None
    return fds, tuple(id(s) for s in streams)


def cut(text, max_chars, counter):
    """At most `max_chars` of `text`, as valid UTF-8 (a lone surrogate in a repr becomes its escape)."""
    if text is None:
        return None
    if len(text) > max_chars:
        counter[0] += len(text) - max_chars
        text = text[:max_chars]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def main():
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    me = os.getpid()
    stdio = stdio_identity()
    while True:
        try:
            (size,) = struct.unpack(">I", read_exact(REQUESTS, 4))
            request = json.loads(read_exact(REQUESTS, size))
        except EOFError:
            return
        cpu_s = request.get("cpu_s")
        if cpu_s:  # RLIMIT_CPU counts the whole process lifetime: allow this cell its own budget
            used = resource.getrusage(resource.RUSAGE_SELF)
            spent = used.ru_utime + used.ru_stime
            hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
            soft = int(spent + cpu_s) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
        reap_children()
        reply = {"value": None, "exception": None, "traceback": None, "oom": False}
        try:
            reply["value"] = run_cell(request["code"], namespace)
        except SystemExit as e:
            reply["exception"] = f"SystemExit: {e.code}"
        except MemoryError:
            reply.update(exception="MemoryError: the memory limit was reached", oom=True)
        except OSError as e:
            reply["exception"] = f"{type(e).__name__}: {e}"
            reply["traceback"] = short_traceback(e)
            reply["oom"] = e.errno == errno.ENOMEM  # e.g. mmap beyond the address-space limit
        except BaseException as e:  # the user's error is data for the model, never the driver's end
            reply["exception"] = f"{type(e).__name__}: {e}"
            reply["traceback"] = short_traceback(e)
        if os.getpid() != me:  # a process the cell forked finished the cell: it must not answer the host
            os._exit(0)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        reap_children()
        dropped = [0]
        max_chars = int(request.get("max_chars") or 64000)
        for key in ("value", "exception", "traceback"):
            reply[key] = cut(reply[key], max_chars, dropped)
        reply.update(nonce=request.get("nonce"), stdio=stdio is not None and stdio_identity() == stdio, cut=dropped[0])
        send(reply)


def replay(payload):
    """One-shot mode (Docker tier): re-run the earlier cells silently, run the new one, print the reply last."""
    request = json.loads(payload)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    real_stdout, real_stderr = sys.stdout, sys.stderr
    with open(os.devnull, "w") as devnull:
        sys.stdout = sys.stderr = devnull
        for cell in request["history"]:
            try:
                run_cell(cell, namespace)
            except BaseException:
                pass
        sys.stdout, sys.stderr = real_stdout, real_stderr
    reply = {"value": None, "exception": None, "traceback": None, "oom": False}
    try:
        reply["value"] = run_cell(request["code"], namespace)
    except MemoryError:
        reply.update(exception="MemoryError: the memory limit was reached", oom=True)
    except BaseException as e:
        reply["exception"] = f"{type(e).__name__}: {e}"
        reply["traceback"] = short_traceback(e)
    dropped = [0]
    max_chars = int(request.get("max_chars") or 64000)
    for key in ("value", "exception", "traceback"):
        reply[key] = cut(reply[key], max_chars, dropped)
    reply.update(nonce=request.get("nonce"), stdio=True, cut=dropped[0])
    sys.stdout.write("\n" + json.dumps(reply) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--replay":
        replay(sys.argv[2])
    else:
        main()
