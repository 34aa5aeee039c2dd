#!/bin/sh
# test/chaos/handler.sh: the chaos run's job, run by `qml worker --exec`.
# Records each execution outside qml.jobs, one line at its start and one
# at its end (appends of one short line are atomic):
#   S job attempt worker start_epoch
#   E job attempt worker end_epoch outcome(ok|retry|fail)
# and decides at random: mostly success, some retries, a few permanent
# failures, a few runs longer than the lease (the heartbeat keeps it).
log=$CHAOS_EXEC_LOG
echo "S $QML_JOB_ID $QML_ATTEMPT $CHAOS_WORKER $(date +%s.%N)" >>"$log"
r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
r=$((r % 1000))
if [ "$r" -lt 10 ]; then sleep "${CHAOS_LONG_RUN:-4}"
elif [ "$r" -lt 300 ]; then sleep 0.0$((r % 5))
fi
if [ "$r" -ge 900 ] && [ "$r" -lt 980 ]; then out=retry; code=1
elif [ "$r" -ge 980 ]; then out=fail; code=65
else out=ok; code=0
fi
echo "E $QML_JOB_ID $QML_ATTEMPT $CHAOS_WORKER $(date +%s.%N) $out" >>"$log"
[ $code = 1 ] && echo "chaos: retry" >&2
exit $code
