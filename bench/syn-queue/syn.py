# SYNs from an address that never answers, to a listener that never accepts: how many
# half-open connections does the kernel keep, and what happens to the rest? Run by run.sh, in a
# network namespace of its own. Usage: syn.py BACKLOG COUNT
import socket, struct, subprocess, sys, time, random

backlog, count = int(sys.argv[1]), int(sys.argv[2])
dst, src, port = "10.9.0.1", "10.9.0.2", 7000

def checksum(data):
    if len(data) % 2: data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff

def syn(sport):
    tcp = struct.pack("!HHIIBBHHH", sport, port, random.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = struct.pack("!4s4sBBH", socket.inet_aton(src), socket.inet_aton(dst), 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), sport, 0, 64, socket.IPPROTO_TCP, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp

listener = socket.socket()
listener.bind((dst, port))
listener.listen(backlog)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
subprocess.run(["nstat", "-n"])  # reset the counters' baseline
for i in range(count):
    raw.sendto(syn(20000 + i), (dst, 0))
time.sleep(0.5)
synrecv = len([l for l in subprocess.run(["ss", "-tnH", "state", "syn-recv"], capture_output=True, text=True).stdout.splitlines() if l.strip()])
stats = subprocess.run(["nstat", "-z"], capture_output=True, text=True).stdout
keep = ["TcpExtSyncookiesSent", "TcpExtTCPReqQFullDoCookies", "TcpExtTCPReqQFullDrop", "TcpExtListenDrops", "TcpExtListenOverflows"]
picked = {l.split()[0]: int(l.split()[1]) for l in stats.splitlines() if l.split() and l.split()[0] in keep}
cookies = open("/proc/sys/net/ipv4/tcp_syncookies").read().strip()
maxsyn = open("/proc/sys/net/ipv4/tcp_max_syn_backlog").read().strip()
print(f"syncookies={cookies} tcp_max_syn_backlog={maxsyn} backlog={backlog} SYNs={count}: SYN-RECV kept {synrecv}; {picked}")
