#!/usr/bin/env python3
"""Generates a C program that times MD5's 64 steps on G interleaved groups of
lanes, state in registers, message words from an L1-resident buffer: the
compute-only ceiling of a lane kernel shape (no loading or transposing of the
message). Usage: gen.py G ymm|zmm [rot|mov] [kmem|kreg] > x.c

- rot: the round function is computed in place into `d`, after `d + w + K`
  (the next step's accumulator) has been copied out by a three-operand add;
  5 registers per group, no moves. (A hand-written kernel on this scheme was
  tried and measured slower than hashcore's intrinsics kernel end to end; see
  the README, Performance.)
- mov: copy `c` to a temp, round function into the temp (one eliminated move
  more per step); 4 registers per group plus temps.
- kmem: K as an embedded-broadcast memory operand in every group's add;
  kreg: K broadcast once per step into a register shared by all groups.
"""
import sys

G = int(sys.argv[1])
W = sys.argv[2] if len(sys.argv) > 2 else "ymm"
SCHEME = sys.argv[3] if len(sys.argv) > 3 else "rot"
KMODE = sys.argv[4] if len(sys.argv) > 4 else "kmem"
SZ = 64 if W == "zmm" else 32
BC = f"%{{1to{SZ // 4}%}}"
R = [7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4 + [6, 10, 15, 21] * 4
WORD = [i for i in range(16)] + [(5 * i + 1) % 16 for i in range(16, 32)] \
    + [(3 * i + 5) % 16 for i in range(32, 48)] + [(7 * i) % 16 for i in range(48, 64)]
X, Y, Z = 0xF0, 0xCC, 0xAA  # vpternlogd operands: dst, src2, src3


def tables(dst, b, c, d):
    """Truth tables of F, G, H, I for operands given as (dst, src2, src3) masks."""
    m = 0xFF
    return [((b & c) | (~b & d)) & m, ((b & d) | (c & ~d)) & m,
            (b ^ c ^ d) & m, (c ^ (b | (~d & m))) & m]


def reg(r):
    return f"%%{W}{r}"


def kop(i):
    return reg(31) if KMODE == "kreg" else f"{4 * i}(%1){BC}"


lines = []
if SCHEME == "rot":
    assert 5 * G + (KMODE == "kreg") <= 32
    tt = tables(X, Y, Z, X)  # dst = d, src2 = b, src3 = c
    roles = [[5 * g + k for k in range(4)] for g in range(G)]  # a, b, c, d
    free = [5 * g + 4 for g in range(G)]
    if KMODE == "kreg":
        lines.append(f"vpbroadcastd 0(%1), {reg(31)}")
    for g in range(G):
        a = roles[g][0]
        lines.append(f"vpaddd {(g * 16 + WORD[0]) * SZ}(%0), {reg(a)}, {reg(a)}")
        lines.append(f"vpaddd {kop(0)}, {reg(a)}, {reg(a)}")
    for i in range(64):
        if KMODE == "kreg" and i < 63:
            lines.append(f"vpbroadcastd {4 * (i + 1)}(%1), {reg(31)}")
        for g in range(G):
            a, b, c, d = roles[g]
            n = free[g]
            nxt = WORD[(i + 1) % 64]
            lines.append(f"vpaddd {(g * 16 + nxt) * SZ}(%0), {reg(d)}, {reg(n)}")
            lines.append(f"vpaddd {kop((i + 1) % 64)}, {reg(n)}, {reg(n)}")
            lines.append(f"vpternlogd ${tt[i // 16]:#x}, {reg(c)}, {reg(b)}, {reg(d)}")
            lines.append(f"vpaddd {reg(d)}, {reg(a)}, {reg(a)}")
            lines.append(f"vprold ${R[i]}, {reg(a)}, {reg(a)}")
            lines.append(f"vpaddd {reg(b)}, {reg(a)}, {reg(a)}")
            roles[g] = [n, a, b, c]
            free[g] = d
        # The loop wraps around: the last step's lookahead already started step 0.
else:
    # dst = copy of c, src2 = d, src3 = b: index = c<<2 | d<<1 | b
    def tab(fn):
        out = 0
        for idx in range(8):
            cc, dd, bb = (idx >> 2) & 1, (idx >> 1) & 1, idx & 1
            out |= fn(bb, cc, dd) << idx
        return out
    tt = [tab(lambda b, c, d: (b & c) | ((1 - b) & d)), tab(lambda b, c, d: (b & d) | (c & (1 - d))),
          tab(lambda b, c, d: b ^ c ^ d), tab(lambda b, c, d: c ^ (b | (1 - d)))]
    assert 4 * G + 4 <= 32
    for i in range(64):
        for g in range(G):
            r = [4 * g + ((k - i) % 4) for k in range(4)]
            a, b, c, d = r
            f = 4 * G + (g % 4)
            if i == 0:
                lines.append(f"vpaddd {(g * 16 + WORD[0]) * SZ}(%0), {reg(a)}, {reg(a)}")
                lines.append(f"vpaddd {kop(0)}, {reg(a)}, {reg(a)}")
            lines.append(f"vmovdqa64 {reg(c)}, {reg(f)}")
            lines.append(f"vpternlogd ${tt[i // 16]:#x}, {reg(b)}, {reg(d)}, {reg(f)}")
            lines.append(f"vpaddd {reg(f)}, {reg(a)}, {reg(a)}")
            lines.append(f"vprold ${R[i]}, {reg(a)}, {reg(a)}")
            lines.append(f"vpaddd {reg(b)}, {reg(a)}, {reg(a)}")
            if i < 63:
                lines.append(f"vpaddd {(g * 16 + WORD[i + 1]) * SZ}(%0), {reg(d)}, {reg(d)}")
                lines.append(f"vpaddd {kop(i + 1)}, {reg(d)}, {reg(d)}")
    if KMODE == "kreg":
        sys.exit("kreg is only implemented for rot")

body = "\\n\\t".join(lines)
lanes = G * SZ // 4
print(f"""#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) {{ struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }}
static unsigned K[64] __attribute__((aligned(64)));
static unsigned char w[{G} * 16 * {SZ}] __attribute__((aligned(64)));
int main(int argc, char **argv) {{
  double ghz = argc > 1 ? atof(argv[1]) : 0;
  unsigned long n = 1000000;
  double best = 1e9;
  for (int rep = 0; rep < 5; rep++) {{
    double t = now();
    for (unsigned long i = 0; i < n; i++)
      __asm__ volatile("{body}" :: "r"(w), "r"(K) : "memory");
    double s = (now() - t) / n;
    if (s < best) best = s;
  }}
  double bytes = {lanes} * 64.0;
  printf("{W} G=%d (%d lanes) {SCHEME} {KMODE}: %.1f GB/s", {G}, {lanes}, bytes / best / 1e9);
  if (ghz > 0) printf(", %.0f cycles per block, %.2f B/cycle", best * ghz * 1e9, bytes / (best * ghz * 1e9));
  printf("\\n");
  return 0;
}}""")
