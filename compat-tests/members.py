"""What the ensemble scripts (mixed.py, observer-master.py) ask of a member by its client
port on 127.0.0.1: a four-letter word's answer, its mode, and waiting until members serve."""
import socket
import time


def four(port, word):
    """The answer to a four-letter word ('' when the member does not answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(word.encode())
            out = b""
            while chunk := s.recv(4096):
                out += chunk
        return out.decode()
    except OSError:
        return ""


def mode(port):
    """`srvr`'s Mode: leader, follower, observer, standalone, read-only; None if down."""
    for ln in four(port, "srvr").splitlines():
        if ln.startswith("Mode: "):
            return ln[6:]
    return None


def wait_serving(client_ports, timeout=90, one_leader=False):
    """Until every member serves in an ensemble (at most one leader; exactly one with
    `one_leader`)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        modes = [mode(p) for p in client_ports]
        leaders = modes.count("leader")
        if all(m in ("leader", "follower", "observer") for m in modes) and \
                (leaders == 1 if one_leader else leaders <= 1):
            return True
        time.sleep(0.2)
    return False
