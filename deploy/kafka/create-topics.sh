#!/usr/bin/env bash
# Create driftline's topics, idempotently (--if-not-exists), with explicit partition counts
# and retention. Used by the `topics` service of deploy/compose.yaml; works the same against
# any cluster from a machine with Kafka's command-line tools:
#
#   BOOTSTRAP=broker-1:9093 PARTITIONS=12 REPLICATION=3 \
#   COMMAND_CONFIG=/etc/kafka/admin.properties ./create-topics.sh
#
# Why here rather than by the workers (which create what is missing, with default settings):
# retention, compaction and replication are decided once, by whoever runs the cluster, and a
# topic that springs into existence on first use gets the broker's default partition count.
# PARTITIONS must equal the workers' --partitions: it is the number of state shards (the
# internal `<app id>-shards` topic and the state changelog), so it bounds how many workers do
# useful work (deploy/README.md, "Partition planning"). The workers refuse to start when the
# shard topic's count differs from their --partitions.
set -euo pipefail

BOOTSTRAP="${BOOTSTRAP:-localhost:9092}"
PARTITIONS="${PARTITIONS:-6}"
REPLICATION="${REPLICATION:-3}"
# The workers' --app-id: consumer group id and prefix of the internal topics.
APP_ID="${APP_ID:-driftline}"
# Client properties for TLS/SASL clusters (security.protocol, sasl.jaas.config, ...).
COMMAND_CONFIG="${COMMAND_CONFIG:-}"
KAFKA_TOPICS="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"

# With replicas, require two in sync for an acknowledged write (producers use acks=all).
if [ "${REPLICATION}" -ge 3 ]; then MIN_ISR=2; else MIN_ISR=1; fi

DAY_MS=86400000

create() {
    local topic="$1"
    shift
    local extra=()
    if [ -n "${COMMAND_CONFIG}" ]; then extra=(--command-config "${COMMAND_CONFIG}"); fi
    "${KAFKA_TOPICS}" --bootstrap-server "${BOOTSTRAP}" "${extra[@]}" \
        --create --if-not-exists --topic "${topic}" \
        --partitions "${PARTITIONS}" --replication-factor "${REPLICATION}" \
        --config "min.insync.replicas=${MIN_ISR}" "$@"
    echo "topic ${topic}: ok"
}

# Inputs: time-based retention long enough to replay a week after an outage or to re-run
# detection from scratch (the offsets of a new consumer group start at the earliest record).
for topic in driftline.predictions driftline.features driftline.labels; do
    create "${topic}" --config cleanup.policy=delete --config "retention.ms=$((7 * DAY_MS))"
done

# Alerts: small and valuable, kept for a month so subscribers can catch up after downtime.
create driftline.alerts --config cleanup.policy=delete --config "retention.ms=$((30 * DAY_MS))"

# Dead letters: the original bytes plus error headers. Oversized events land here too, so the
# per-message limit is above the inputs' (1 MiB broker default): the largest input still fits
# with its headers.
create driftline.deadletter --config cleanup.policy=delete \
    --config "retention.ms=$((14 * DAY_MS))" --config max.message.bytes=2097152

# Internal: batches of raw events routed to their shard (by model). Kept as long as the inputs:
# input offsets are committed once a batch is here, so this is what a stopped worker resumes.
create "${APP_ID}-shards" --config cleanup.policy=delete --config "retention.ms=$((7 * DAY_MS))"

# State changelog (Faust's name: <app id>-<table>-changelog; one record per model checkpoint):
# compacted, never deleted by age, or a restarted worker would restore incomplete state.
create "${APP_ID}-driftline-state-changelog" --config cleanup.policy=compact \
    --config min.compaction.lag.ms=60000
