# QMP from the command line for check-private-tor.sh: qmp.py SOCKET [shot:FILE.png] [key:down,ret,...]
import socket, json, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rw')
f.readline()
def cmd(c, **a):
    f.write(json.dumps({"execute": c, "arguments": a} if a else {"execute": c}) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r: return r
cmd("qmp_capabilities")
for arg in sys.argv[2:]:
    if arg.startswith("shot:"):
        print(cmd("screendump", filename=arg[5:], format="png"))
    elif arg.startswith("key:"):
        for k in arg[4:].split(","):
            print(cmd("send-key", keys=[{"type": "qcode", "data": x} for x in k.split("+")]))
