#!/usr/bin/env python3
"""For each accepted socket with peer port PORT in a haproxy_syscall_recorder file: bytes read, the first
EPOLLRDHUP, any recv() that returned 0, and the last epoll reports. An early EOF shows as a socket that
haproxy closed (or whose EOF it forwarded) with no recv() == 0 and no short read after the RDHUP/HUP report.
Usage: haproxy_early_eof.py /tmp/dl/h/hl.PID PORT..."""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from haproxy_syscall_log import *
B = load(sys.argv[1])
for port in map(int, sys.argv[2:]):
    for ia in [i for i,r in enumerate(B) if r[2]==6 and r[4]==port]:
        fa = B[ia][1]; t0 = B[ia][0]
        life_ = life(B, ia, fa)
        rd = [r for r in life_ if r[2]==3 and r[4] & 0x2000]
        zero = [r for r in life_ if r[2]==1 and r[5]==0]
        short = [r for r in life_ if r[2]==1 and 0 < r[5] < r[4]]
        tot = sum(r[5] for r in life_ if r[2]==1 and r[5]>0)
        # other fd shut by this haproxy right after: first shutdown(SHUT_WR) of any fd after first RDHUP
        print(f"port {port} fd{fa} recv_total={tot} first_RDHUP={'%.3f'%((rd[0][0]-t0)/1e6) if rd else None} recv0={[round((r[0]-t0)/1e6,3) for r in zero]} short_reads={len(short)} last_recv={(life_[[k for k,r in enumerate(life_) if r[2]==1][-1]][0]-t0)/1e6:.3f}")
        evs = [r for r in life_ if r[2]==3]
        print("   last epoll events:", [(round((r[0]-t0)/1e6,3), ev(r[4])) for r in evs[-4:]])
