#!/usr/bin/env python3
# test/redis/cut_proxy.py: a TCP proxy in front of a Redis server that loses
# the answer to one call of a worker, as a server killed right after running
# it would.
#
#   cut_proxy.py LISTEN_PORT REDIS_PORT QUEUE claim|complete DONE_FILE
#
# It passes every connection through, until a worker's call (its name,
# qml-worker@..., is among the arguments) of the kind asked for gets an
# answer: that answer is dropped and the connection closed, once. Redis ran
# the call; the worker never hears of it. DONE_FILE is written then.
#   claim     a call naming QUEUE too (only a claim names both) answered
#             with jobs
#   complete  a call not naming QUEUE whose arguments and answer are a
#             completion's (store_redis_lua.c complete)
# hiredis sends a command and waits for its answer, so the next bytes from
# the server after a command are its answer.
import socket
import sys
import threading

listen_port, redis_port = int(sys.argv[1]), int(sys.argv[2])
queue, mode, done_file = sys.argv[3].encode(), sys.argv[4], sys.argv[5]
cut_lock = threading.Lock()
cut_done = False


def strings(resp):
    """the bulk strings of a RESP command (hiredis sends the array form)"""
    parts = resp.split(b"\r\n")
    return [parts[i + 1] for i, p in enumerate(parts[:-1]) if p.startswith(b"$")]


def wanted(command, answer):
    if b"qml-worker@" not in command or not answer.startswith(b"*") or \
            answer.startswith(b"*0\r\n"):
        return False
    if mode == "claim":
        return queue in command
    # a completion: worker, n, then n x (id, result): an id (16 digits)
    # after n, and one number per job in the answer (a failure: two)
    args = strings(command)
    w = next(i for i, a in enumerate(args) if a.startswith(b"qml-worker@"))
    if queue in command or len(args) < w + 3 or len(args[w + 2]) != 16:
        return False
    return int(answer[1:answer.index(b"\r\n")]) == int(args[w + 1])


def close(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def pipe(client):
    global cut_done
    server = socket.create_connection(("127.0.0.1", redis_port))
    last = [b""]			# the client's last command

    def from_client():
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                last[0] = data
                server.sendall(data)
        except OSError:
            pass
        close(server, client)

    threading.Thread(target=from_client, daemon=True).start()
    try:
        while True:
            data = server.recv(65536)
            if not data:
                break
            with cut_lock:
                cut = not cut_done and wanted(last[0], data)
                cut_done = cut_done or cut
            if cut:
                with open(done_file, "w") as f:
                    f.write("cut\n")
                break
            last[0] = b""
            client.sendall(data)
    except OSError:
        pass
    close(server, client)
    server.close()
    client.close()


def main():
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", listen_port))
    lsock.listen(64)
    while True:
        client, _ = lsock.accept()
        threading.Thread(target=pipe, args=(client,), daemon=True).start()


main()
