# expect (dockerfile_check.js): uses the tag latest
# expect (dockerfilelint): Base Image Latest Tag
# A Dockerfile with the defects the checks must catch.
FROM debian:latest AS build
RUN apt-get update && apt-get install curl
ADD https://example.com/tool.tar.gz /tmp/
FROM debian:12-slim AS coordinator
COPY --from=builder /out/x /usr/local/bin/x
USER root
ENTRYPOINT ["/usr/local/bin/x"]
