#!/bin/sh
# What bounds a listener's SYN queue, measured (docs/kernel-limits.md, "The SYN queue"): in a
# network namespace of its own (unshare -rn: root there, nothing reachable outside), 400 SYNs
# from 10.9.0.2, whose SYN-ACKs iptables drops, so every handshake stays half-open. For each
# tcp_syncookies, tcp_max_syn_backlog and backlog: the SYN-RECV sockets kept (ss) and what the
# kernel did with the rest (nstat). Needs python3, iptables, ss and nstat (iproute2).
#
#   unshare -rn sh bench/syn-queue/run.sh
set -e
here=$(dirname "$0")
ip link set lo up
ip addr add 10.9.0.1/24 dev lo
iptables -A OUTPUT -p tcp -d 10.9.0.2 --tcp-flags SYN,ACK SYN,ACK -j DROP
for cookies in 1 0; do
  for maxsyn in 2048 64; do
    sysctl -qw net.ipv4.tcp_syncookies=$cookies net.ipv4.tcp_max_syn_backlog=$maxsyn
    for backlog in 8 128; do python3 "$here/syn.py" $backlog 400; sleep 0.2; done
  done
done
