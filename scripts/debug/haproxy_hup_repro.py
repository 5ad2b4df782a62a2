#!/usr/bin/env python3
"""Client and server for scripts/debug/haproxy-hup-repro.sh (run inside its network namespace).

One TCP connection client -> haproxy (S) -> haproxy (O) -> server, driven in phases so that haproxy's socket S
ends up with a FIN queued behind a lot of unread data while haproxy is blocked writing to S:

  1. the server sends DOWN bytes and the client does not read: haproxy's send() on S gets EAGAIN, so haproxy
     polls S for EPOLLOUT;
  2. haproxy is stopped (SIGSTOP, as if descheduled), the client sends UP bytes and half-closes, and we wait
     until the client's FIN is acknowledged (so it sits in S's receive queue behind the data); then SIGCONT.
     haproxy's next epoll_wait() reports EPOLLIN|EPOLLRDHUP on S (FD_POLL_HUP is now set for good);
  3. the server does not read, so haproxy fills its buffer from S and stops reading S (S still holds most of
     UP, then the FIN);
  4. the client reads a little, then (5) both ends read everything to EOF and the server sends the rest of
     DOWN and half-closes. The first epoll report for S with EPOLLOUT only (haproxy polls S for writes, not
     for reads, since its last recv() filled its buffer) clears FD_POLL_IN; haproxy's next read attempt on S
     takes FD_POLL_HUP without FD_POLL_IN as end of stream, without calling recv(), and forwards EOF.

--variant hup (the server half-closes first, so haproxy has shut S for writing when the client's FIN
arrives) did not lose data in our runs: haproxy then drops S from epoll, so no report clears FD_POLL_IN.
--no-stop leaves out the SIGSTOP in phase 2.

Prints the byte counts and SHA-256 of both directions as sent and as received. Exit status: 0 both streams
arrived whole, 1 a stream ended early or differs, 2 the set-up did not reach its state (see the message).
Usage: haproxy_hup_repro.py --haproxy-pid PID --frontend PORT --backend PORT [--up N] [--down N]
                            [--client-read N] [--variant rdhup|hup] [--no-stop] [--pause S]
"""
import argparse, hashlib, os, select, signal, socket, sys, time

TCP_FIN_WAIT2, TCP_TIME_WAIT, TCP_CLOSE = 5, 6, 7


def tcp_state(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def send_some(s, data, off, deadline_s=0.0):
    """Non-blocking sends from data[off:] until EAGAIN (or deadline); returns the new offset."""
    end = time.monotonic() + deadline_s
    while off < len(data):
        try:
            off += s.send(data[off:off + 262144])
        except BlockingIOError:
            if time.monotonic() >= end:
                break
            select.select([], [s], [], 0.05)
    return off


def ss_mem(port):
    """Receive queue and receive buffer of haproxy's end of the client connection (ss)."""
    import subprocess
    out = subprocess.run(["ss", "-Htnm", "state", "connected", f"( sport = :{port} )"], capture_output=True,
                         text=True).stdout.split()
    rb = next((f for f in out if f.startswith("skmem:")), "")
    rb = next((x for x in rb.strip("skmem:()").split(",") if x.startswith("rb")), "rb?")
    return f"Recv-Q {out[1] if len(out) > 1 else '?'} B, {rb[:2]} {rb[2:]} B"


def read_avail(s, limit):
    got = bytearray()
    while len(got) < limit:
        try:
            b = s.recv(min(65536, limit - len(got)))
        except BlockingIOError:
            break
        if not b:
            break
        got += b
    return bytes(got)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--haproxy-pid", type=int, required=True)
    ap.add_argument("--frontend", type=int, required=True)
    ap.add_argument("--backend", type=int, required=True)
    ap.add_argument("--up", type=int, default=1 << 20, help="bytes client -> server")
    ap.add_argument("--down", type=int, default=8 << 20, help="bytes server -> client")
    ap.add_argument("--client-read", type=int, default=65536, help="bytes the client reads in phase 4")
    ap.add_argument("--variant", choices=["rdhup", "hup"], default="rdhup",
                    help="rdhup: as above; hup: the server sends only DOWN bytes and half-closes first, so "
                         "haproxy has shut S for writing when the client's FIN arrives (EPOLLHUP)")
    ap.add_argument("--no-stop", action="store_true",
                    help="do not stop haproxy in phase 2 (the FIN then races with haproxy's first reads)")
    ap.add_argument("--pause", type=float, default=0.3, help="settling time between phases (s)")
    a = ap.parse_args()

    up = os.urandom(a.up)
    down = os.urandom(a.down)
    pid = a.haproxy_pid

    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited: the server drains slowly
    lst.bind(("127.0.0.1", a.backend))
    lst.listen(4)
    lst.settimeout(5)

    cli = socket.socket()
    cli.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the client stalls the down direction early
    cli.connect(("127.0.0.1", a.frontend))
    srv, _ = lst.accept()
    lst.close()
    cli.setblocking(False)
    srv.setblocking(False)

    def phase(msg):
        print(f"  [{time.monotonic() - t0:6.3f}s] {msg}", flush=True)

    t0 = time.monotonic()
    # Phase 1: fill the down direction until haproxy's writes to S block.
    doff = 0
    if a.variant == "rdhup":
        doff = send_some(srv, down, 0, deadline_s=a.pause)
        time.sleep(a.pause)
        doff = send_some(srv, down, doff)
        phase(f"1: server sent {doff} B down; client not reading")
    else:
        doff = send_some(srv, down, 0, deadline_s=a.pause)
        srv.shutdown(socket.SHUT_WR)
        if doff < len(down):
            print("set-up failed: --down must fit the buffers in the hup variant", file=sys.stderr)
            return 2
        phase(f"1: server sent all {doff} B down and half-closed")
        got_down_early = read_avail(cli, len(down) + 1)
        time.sleep(a.pause)
        got_down_early += read_avail(cli, len(down) + 1)
        try:
            fin = cli.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            fin = False
        phase(f"1: client read {len(got_down_early)} B down; haproxy forwarded the FIN: {fin}")

    # Phase 2: queue UP bytes + FIN on S while haproxy cannot run.
    if not a.no_stop:
        os.kill(pid, signal.SIGSTOP)
    try:
        uoff = send_some(cli, up, 0, deadline_s=2.0)
        cli.shutdown(socket.SHUT_WR)
        end = time.monotonic() + 2.0
        # FIN_WAIT2 after an active close, CLOSE after LAST_ACK (the hup variant: the client had the FIN first)
        acked = (TCP_FIN_WAIT2, TCP_TIME_WAIT, TCP_CLOSE)
        while tcp_state(cli) not in acked and time.monotonic() < end:
            time.sleep(0.01)
        fin_acked = tcp_state(cli) in acked
    finally:
        if not a.no_stop:
            os.kill(pid, signal.SIGCONT)
    phase(f"2: client sent {uoff} B up + FIN{'' if a.no_stop else ' while haproxy was stopped'}; FIN acknowledged: {fin_acked}; "
          f"haproxy's client socket: {ss_mem(a.frontend)}")
    if uoff < len(up) or not fin_acked:
        print(f"set-up failed: --up {a.up} does not fit haproxy's receive buffer (FIN not queued); use less",
              file=sys.stderr)
        return 2

    # Phase 3: haproxy reads S until its buffer toward the (non-reading) server is full.
    time.sleep(a.pause)
    phase(f"3: haproxy's client socket: {ss_mem(a.frontend)}")
    got_up = bytearray()
    if a.variant == "rdhup":
        # Phase 4: the client reads a little: S becomes writable, haproxy's send-side wakes (EPOLLOUT only).
        got_down = bytearray(read_avail(cli, a.client_read))
        time.sleep(a.pause)
        phase(f"4: client read {len(got_down)} B down; haproxy's client socket: {ss_mem(a.frontend)}")
    else:
        got_down = bytearray(got_down_early)

    # Phase 5: both ends read to EOF, the server sends the rest and half-closes.
    srv_eof = cli_eof = False
    srv_shut = a.variant == "hup"
    end = time.monotonic() + 15
    while not (srv_eof and cli_eof) and time.monotonic() < end:
        w = [srv] if not srv_shut else []
        r = ([srv] if not srv_eof else []) + ([cli] if not cli_eof else [])
        rr, ww, _ = select.select(r, w, [], 0.2)
        if srv in ww:
            doff = send_some(srv, down, doff)
            if doff == len(down):
                srv.shutdown(socket.SHUT_WR)
                srv_shut = True
        for s in rr:
            try:
                b = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError as e:
                phase(f"{'server' if s is srv else 'client'} recv: {e}")
                b = b""
            if s is srv:
                if b:
                    got_up += b
                else:
                    srv_eof = True
                    phase(f"5: server EOF after {len(got_up)} B up")
            else:
                if b:
                    got_down += b
                else:
                    cli_eof = True
                    phase(f"5: client EOF after {len(got_down)} B down")
    if not (srv_eof and cli_eof):
        phase("5: timed out waiting for EOF")

    sha = lambda b: hashlib.sha256(b).hexdigest()[:16]
    ok_up = bytes(got_up) == up
    ok_down = bytes(got_down) == down[:doff] and doff == len(down)
    print(f"up   (client->server): sent {len(up):>9} B sha256 {sha(up)}  received {len(got_up):>9} B "
          f"sha256 {sha(got_up)}  {'OK' if ok_up else 'SHORT' if up.startswith(got_up) else 'DIFFERENT'}")
    print(f"down (server->client): sent {doff:>9} B sha256 {sha(down[:doff])}  received {len(got_down):>9} B "
          f"sha256 {sha(got_down)}  {'OK' if ok_down else 'SHORT' if down.startswith(got_down) else 'DIFFERENT'}")
    return 0 if ok_up and ok_down else 1


if __name__ == "__main__":
    sys.exit(main())
