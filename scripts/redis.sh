#!/usr/bin/env bash
# scripts/redis.sh: throwaway Redis servers for tests and benchmarks, each in
# its own directory on its own port, never the system's service.
#
#   scripts/redis.sh start PORT DIR [redis-server options...]
#       one server, appendonly on (fsync every second) unless the options
#       say otherwise; prints its URL
#   scripts/redis.sh cluster DIR PORT1 PORT2 PORT3
#       a 3-master Redis Cluster on this host (no replicas); prints its URL
#       (sourced: redis_cluster_replicated adds replicas to each master)
#   scripts/redis.sh stop PORT...
#       shuts the servers on those ports down without saving
#
# Sourced (`. scripts/redis.sh`), it only defines the functions, so a test
# can start servers and stop them in its EXIT trap.
set -u

redis_wait() {	# PORT: until it answers PING (10 s at most)
	local i
	for i in $(seq 1 100); do
		# NOAUTH: up, with a password
		redis-cli -p "$1" ping 2>/dev/null | grep -Eq 'PONG|NOAUTH' && return 0
		sleep 0.1
	done
	echo "redis-server on port $1 did not start" >&2
	return 1
}

redis_start() {	# PORT DIR [options...]
	local port=$1 dir=$2
	shift 2
	mkdir -p "$dir"
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
		--appendonly yes --appendfsync everysec --save '' \
		--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
		"$@" >/dev/null || return 1
	redis_wait "$port"
}

redis_stop() {	# PORT...
	local p
	for p in "$@"; do
		redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
	done
	for p in "$@"; do
		local i
		for i in $(seq 1 50); do
			redis-cli -p "$p" ping >/dev/null 2>&1 || break
			sleep 0.1
		done
	done
}

redis_cluster() {	# DIR PORT1 PORT2 PORT3: three masters, no replicas
	redis_cluster_replicated "$1" 0 5000 "${@:2}"
}

# DIR REPLICAS NODE_TIMEOUT_MS PORT...: masters and REPLICAS replicas of each
# (ports / (REPLICAS + 1) masters: redis-cli --cluster create picks which
# node replicates which; CLUSTER NODES tells), up when every node sees
# cluster_state:ok and every replica's link to its master is up
redis_cluster_replicated() {
	local dir=$1 replicas=$2 timeout=$3 p nodes=() i
	shift 3
	for p in "$@"; do
		rm -rf "${dir:?}/$p"	# a node must start empty to join
		redis_start "$p" "$dir/$p" --cluster-enabled yes \
			--cluster-config-file nodes.conf --cluster-node-timeout "$timeout" || return 1
		nodes+=("127.0.0.1:$p")
	done
	redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$replicas" \
		--cluster-yes >"$dir/create.log" 2>&1 || { cat "$dir/create.log" >&2; return 1; }
	for p in "$@"; do
		for i in $(seq 1 200); do
			redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' &&
				! redis-cli -p "$p" info replication 2>/dev/null | grep -q 'master_link_status:down' &&
				break
			sleep 0.1
		done
	done
	for p in "$@"; do
		redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || {
			echo "the cluster on $* did not come up" >&2
			return 1
		}
	done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	cmd=${1:-}
	shift || true
	case $cmd in
	start)
		redis_start "$@" && echo "redis://127.0.0.1:$1/0" ;;
	cluster)
		redis_cluster "$@" || exit 1
		dir=$1
		shift
		url=redis+cluster://
		for p in "$@"; do url+="127.0.0.1:$p,"; done
		echo "${url%,}" ;;
	stop)
		redis_stop "$@" ;;
	*)
		sed -n '2,15p' "$0" >&2
		exit 2 ;;
	esac
fi
