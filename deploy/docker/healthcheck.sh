#!/bin/bash
# ist-healthcheck PORT: the images' HEALTHCHECK. Exits 0 when healthy.
#
# IST_HEALTHCHECK (environment) picks the check:
#   grpc (default)  calls grpc.health.v1.Health/Check over plaintext HTTP/2
#                   (curl --http2-prior-knowledge) and passes only on SERVING.
#                   The health check is exempt from the bearer token, so this
#                   works with --token_file; it cannot work when the port
#                   serves TLS (the coordinator with --tls_cert).
#   tcp             passes when something accepts a TCP connection on PORT.
#                   Use it for a coordinator that serves TLS.
#   none            always passes.
#
# The worker serves its health port (--health_listen) in plaintext even when
# it talks TLS to the coordinator, so grpc always fits the worker; it reports
# NOT_SERVING (unhealthy here) while it is not registered with a coordinator.
set -uo pipefail
port=${1:?usage: ist-healthcheck PORT}
mode=${IST_HEALTHCHECK:-grpc}

case "$mode" in
  none)
    exit 0
    ;;
  tcp)
    # bash's /dev/tcp: no extra package needed.
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    exec 3>&-
    exit 0
    ;;
  grpc)
    # An empty HealthCheckRequest (service ""): the 5-byte gRPC frame header
    # with length 0. The SERVING reply is the frame 00 00000002 08 01.
    reply=$(printf '\0\0\0\0\0' |
      curl --silent --show-error --max-time 4 --http2-prior-knowledge \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        --data-binary @- "http://127.0.0.1:$port/grpc.health.v1.Health/Check" |
      od -An -tx1 | tr -d ' \n') || exit 1
    if [ "$reply" = "00000000020801" ]; then
      exit 0
    fi
    echo "ist-healthcheck: port $port: not SERVING (reply '${reply}')" >&2
    exit 1
    ;;
  *)
    echo "ist-healthcheck: IST_HEALTHCHECK must be grpc, tcp or none, got '$mode'" >&2
    exit 2
    ;;
esac
