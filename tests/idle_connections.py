"""idle_connections.py PORT COUNT HOLD_SECONDS: opens COUNT TCP connections
to 127.0.0.1:PORT that never send a byte, holds them HOLD_SECONDS, closes
them. Prints "opened N" (N may be less than COUNT if connects fail) and
"closed". Every connect has a 2 s timeout."""
import socket
import sys
import time


def main():
    port, count, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError as e:
            print("connect failed:", e)
            s.close()
            break
        sockets.append(s)
    print("opened", len(sockets), flush=True)
    time.sleep(hold)
    for s in sockets:
        s.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
