#!/usr/bin/env python3
"""Reads haproxy_syscall_recorder files. Usage: haproxy_syscall_log.py FILE accept|connect PORT [NTH] [TAIL]"""
import struct, sys, mmap
OPS = {1:'recv',2:'send',3:'epoll',4:'shutdown',5:'close',6:'accept',7:'connect',8:'setsockopt'}
def load(path):
    data = open(path,'rb').read()
    recs = []
    for off in range(0, len(data), 32):
        ns, fd, op, err, arg, ret = struct.unpack_from('<QiHHqq', data, off)
        if ns == 0: break
        recs.append((ns, fd, op, err, arg, ret))
    return recs
def ev(e):
    names = [(1,'IN'),(4,'OUT'),(8,'ERR'),(0x10,'HUP'),(0x2000,'RDHUP')]
    return '|'.join(n for b,n in names if e & b)
def life(recs, start_idx, fd):
    out = []
    for r in recs[start_idx:]:
        if r[1] != fd: continue
        out.append(r)
        if r[2] == 5: break
    return out
def fmt(r, t0):
    ns, fd, op, err, arg, ret = r
    s = f"{(ns-t0)/1e6:10.3f} fd{fd} {OPS[op]}"
    if op == 3: s += " " + ev(arg)
    else: s += f" arg={arg} ret={ret}" + (f" errno={err}" if err else "")
    return s
if __name__ == '__main__':
    path, kind, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    nth = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    recs = load(path)
    idx = [i for i, r in enumerate(recs) if (r[2] == 6 and r[4] == port and kind == 'accept') or (r[2] == 7 and r[4] == port and kind == 'connect')]
    print("matches", len(idx))
    i = idx[nth]; fd = recs[i][1]; t0 = recs[i][0]
    l = life(recs, i, fd)
    tot = 0
    for r in l:
        if r[2] == 1 and r[5] > 0: tot += r[5]
    print("fd", fd, "records", len(l), "recv total", tot)
    tail = int(sys.argv[5]) if len(sys.argv) > 5 else 40
    for r in l[-tail:]: print(fmt(r, t0))
