"""What systemd's .socket unit does for a service, for tests: hold listening sockets and start the
service with them (sd_listen_fds(3): fd 3.., LISTEN_FDS, LISTEN_PID = the service's own pid,
LISTEN_FDNAMES), as often as asked. The sockets stay open, and connections wait in their backlog,
while the service is stopped and started again.

  socket_holder.py --unix PATH[,MODE] | --tcp HOST:PORT ... --name NAME -- COMMAND...

The service is started at once. SIGHUP restarts it as `systemctl restart` would: SIGTERM, wait for it to
exit, start it again with the same sockets. SIGTERM stops it and ends the holder. Events on stdout, one
JSON object per line: {"event": "started", "pid": N}, {"event": "exited", "pid": N, "status": S}.
"""
import fcntl
import json
import os
import signal
import socket
import sys
import time


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main():
    args = sys.argv[1:]
    split = args.index("--")
    options, command = args[:split], args[split + 1:]
    sockets = []
    name = "unknown"
    i = 0
    while i < len(options):
        opt, value = options[i], options[i + 1]
        i += 2
        if opt == "--unix":
            path, _, mode = value.partition(",")
            if os.path.exists(path):
                os.unlink(path)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            os.chmod(path, int(mode, 8) if mode else 0o666)
        elif opt == "--tcp":
            host, _, port = value.rpartition(":")
            host = host.strip("[]")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((host, int(port)))
        elif opt == "--name":
            name = value
            continue
        else:
            raise SystemExit("unknown option " + opt)
        s.listen(4096)
        sockets.append(s)
    emit(event="listening")

    def start():
        pid = os.fork()
        if pid == 0:
            # Out of the way first (a socket may sit on 3 already), then into place, inheritable.
            high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100) for s in sockets]
            for n, fd in enumerate(high):
                os.dup2(fd, 3 + n, inheritable=True)
            env = dict(os.environ)
            env["LISTEN_FDS"] = str(len(sockets))
            env["LISTEN_PID"] = str(os.getpid())
            env["LISTEN_FDNAMES"] = ":".join([name] * len(sockets))
            os.execvpe(command[0], command, env)
        emit(event="started", pid=pid)
        return pid

    def stop(pid):
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        emit(event="exited", pid=pid, status=status)

    state = {"child": start(), "restart": False, "quit": False}
    signal.signal(signal.SIGHUP, lambda *_: state.update(restart=True))
    signal.signal(signal.SIGTERM, lambda *_: state.update(quit=True))
    while not state["quit"]:
        time.sleep(0.02)
        if state["restart"] and not state["quit"]:
            state["restart"] = False
            stop(state["child"])
            state["child"] = start()
    stop(state["child"])

if __name__ == "__main__":
    main()
