#!/bin/sh
# Runs `hashd sum -a ALGO` as the coreutils program this file is invoked as
# (a link named md5sum, sha224sum, ...; ALGO is that name without "sum"), so
# that coreutils' own tests run against hashd unchanged. The one difference
# they see rewritten is the program name: hashd's diagnostics start with
# "hashd: " and point to 'hashd sum --help'.
#
# HASHD_BIN is the hashd binary. The tests hash small files: hashd runs
# without a daemon (--no-daemon), in this process.
prog=${0##*/}
algo=${prog%sum}
err=$(mktemp) || exit 2
"${HASHD_BIN:?}" sum --no-daemon -a "$algo" "$@" 2>"$err"
status=$?
sed -e "s/^hashd: /$prog: /" -e "s/'hashd sum --help'/'$prog --help'/" "$err" >&2
rm -f "$err"
exit $status
