# One shell command through the guest agent for check-private-tor.sh: qga.py SOCKET COMMAND
import socket, json, base64, time, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rw')
def cmd(c, **a):
    f.write(json.dumps({"execute": c, "arguments": a}) + "\n"); f.flush()
    return json.loads(f.readline())
cmd("guest-sync", id=42)
pid = cmd("guest-exec", path="/bin/sh", arg=["-c", sys.argv[2]], **{"capture-output": True})["return"]["pid"]
while True:
    r = cmd("guest-exec-status", pid=pid)["return"]
    if r["exited"]: break
    time.sleep(0.1)
print(r.get("exitcode"), base64.b64decode(r.get("out-data","")).decode(), base64.b64decode(r.get("err-data","")).decode())
