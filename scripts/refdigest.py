#!/usr/bin/env python3
"""Reference digests for hashd's tests, from implementations that are not
hashd's: Python's hashlib (OpenSSL) and zlib, the blake3 package (the BLAKE3
team's Rust code) and crcmod (a table-driven CRC in C).

Usage: refdigest.py ALGOS DATA LENGTHS
  ALGOS    comma-separated hashd names (md5,sha256,crc32c,...)
  DATA     the inputs, concatenated
  LENGTHS  one decimal length per line: the inputs, in order
Prints one line per input: the hex digests, in ALGOS order, space-separated.
CRCs are printed big-endian, as hashd gives them.
"""
import hashlib
import sys
import zlib

import blake3
import crcmod
import crcmod.predefined

_crc32c = crcmod.predefined.mkCrcFun("crc-32c")
# CRC-64/NVME: poly 0xad93d23594c93659, init and xorout all ones, reflected.
# crcmod's initCrc is the initial register XORed with xorOut, hence 0.
_crc64nvme = crcmod.mkCrcFun(
    0x1AD93D23594C93659, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF
)

FUNCS = {
    "md5": lambda b: hashlib.md5(b).hexdigest(),
    "sha1": lambda b: hashlib.sha1(b).hexdigest(),
    "sha224": lambda b: hashlib.sha224(b).hexdigest(),
    "sha256": lambda b: hashlib.sha256(b).hexdigest(),
    "sha384": lambda b: hashlib.sha384(b).hexdigest(),
    "sha512": lambda b: hashlib.sha512(b).hexdigest(),
    "sha3-256": lambda b: hashlib.sha3_256(b).hexdigest(),
    "sha3-512": lambda b: hashlib.sha3_512(b).hexdigest(),
    "blake3": lambda b: blake3.blake3(b).hexdigest(),
    "crc32": lambda b: "%08x" % zlib.crc32(b),
    "crc32c": lambda b: "%08x" % _crc32c(b),
    "crc64nvme": lambda b: "%016x" % _crc64nvme(b),
}


def main():
    algos = sys.argv[1].split(",")
    funcs = [FUNCS[a] for a in algos]
    with open(sys.argv[2], "rb") as data, open(sys.argv[3]) as lengths:
        out = sys.stdout
        for line in lengths:
            chunk = data.read(int(line))
            out.write(" ".join(f(chunk) for f in funcs) + "\n")


if __name__ == "__main__":
    main()
