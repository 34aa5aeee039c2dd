"""A qml worker in Python with psycopg 3: docs/workers.md explains it."""
import os, signal, socket, time
import psycopg
from psycopg.types.json import Jsonb

WORKER = f"py@{socket.gethostname()}:{os.getpid()}"   # the lease holder's name
QUEUES = os.environ.get("QUEUES", "default").split(",")
stopping = False                                      # set by SIGTERM / SIGINT

class Stop(Exception): pass                           # give the job back

def sleep(db, job_id, args):                          # a long job: beats, stops
    if not isinstance(args.get("seconds"), int): raise ValueError("seconds must be an integer")
    for _ in range(args["seconds"]):
        if stopping: raise Stop()
        db.execute("SELECT qml.heartbeat(ARRAY[%s]::int8[], %s, '1 minute')", (job_id, WORKER))
        time.sleep(1)
    return {"slept": args["seconds"]}

HANDLERS = {"echo": lambda db, job_id, args: args, "sleep": sleep}

def stop(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, stop); signal.signal(signal.SIGINT, stop)

with psycopg.connect(os.environ.get("DATABASE_URL", ""), autocommit=True) as db:
    while not stopping:
        job = db.execute("SELECT id, method, arguments FROM qml.fetch(%s, %s,"
                         " lease => '1 minute', wait => '2 seconds')", (WORKER, QUEUES)).fetchone()
        if job is None: continue
        job_id, method, args = job
        try:
            if stopping: raise Stop()                 # claimed as the signal came
            if method not in HANDLERS: raise LookupError(f"no handler for {method}")
            result = HANDLERS[method](db, job_id, args)
            db.execute("SELECT qml.complete(%s, %s, %s)", (job_id, WORKER, Jsonb(result)))
        except Stop:
            db.execute("SELECT qml.release(%s, %s)", (job_id, WORKER))
        except Exception as e:                        # retried with backoff
            db.execute("SELECT qml.fail(%s, %s, %s)", (job_id, WORKER, str(e)))
