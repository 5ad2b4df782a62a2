// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The BPF object: one program per hook, each in its own file, compiled as one translation unit. Debian 12's
 * libbpf 1.1 cannot link a kfunc extern (bpf_rdonly_cast) that more than one object declares, and every
 * program reads kernel structures through it.
 */
#define SMD_WEAK_KFUNCS /* backpressure.bpf.h */
#include "sockops.bpf.c"
#include "sk_msg.bpf.c"
#include "release.bpf.c"
#include "queued.bpf.c"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
