#!/bin/sh
# The image's entrypoint. `rafka broker` (the default command, or any arguments that start with
# '-', which are the broker's) gets zero-configuration defaults for one broker and is exec'd, so
# the broker is PID 1 and `docker stop`'s SIGTERM reaches it for a clean shutdown. Any other
# command runs as given (`docker run rafka:latest rafka topic list ...`, or testcontainers'
# starter, which ends in /etc/kafka/docker/run: apache/kafka's start script, here this one).
#
# Two listeners, each advertised for the clients that use it: PLAINTEXT on 19092 as this
# container's hostname (clients on the same Docker network; `--hostname` or a compose service
# name sets it), PLAINTEXT_HOST on 9092 as localhost (clients on the host, through
# `-p 9092:9092`). Anything set by KAFKA_<KEY> (apache/kafka's convention) or RAFKA_<KEY> wins.
set -eu

if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- rafka broker "$@"
fi
if [ "$1" != rafka ] || [ "${2:-}" != broker ]; then
  exec "$@"
fi

unset_both() { # true when neither convention sets this key
  eval "[ -z \"\${KAFKA_$1+x}\" ] && [ -z \"\${RAFKA_$1+x}\" ]"
}

if unset_both LISTENERS; then
  export RAFKA_LISTENERS="PLAINTEXT://:19092,PLAINTEXT_HOST://:9092"
  if unset_both ADVERTISED_LISTENERS; then
    export RAFKA_ADVERTISED_LISTENERS="PLAINTEXT://$(hostname):19092,PLAINTEXT_HOST://localhost:9092"
  fi
  if unset_both LISTENER_SECURITY_PROTOCOL_MAP; then
    export RAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT,CONTROLLER:PLAINTEXT"
  fi
fi
if unset_both LOG_DIRS; then
  export RAFKA_LOG_DIRS=/var/lib/rafka/data
fi

exec "$@"
