# Builds examples/task_execution with cgo (SQLite) and runs it as a
# non-root user. Build from the repository root:
#   docker build -t chapkit-task-execution .
#   docker run -p 8000:8000 -v chapkit-data:/data chapkit-task-execution
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/task_execution ./examples/task_execution

FROM debian:bookworm-slim
# The seeded tasks use ls, date and python3; shell tasks run with /bin/sh.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /data chapkit \
    && mkdir -p /data && chown chapkit /data
COPY --from=build /out/task_execution /usr/local/bin/task_execution
USER chapkit
WORKDIR /data
EXPOSE 8000
# SIGTERM (docker stop) drains: running jobs get up to 30 s, so give the
# container at least that: docker stop -t 40.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/task_execution", "-addr", ":8000", "-db", "/data/tasks.db"]
