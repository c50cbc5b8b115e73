#!/usr/bin/env bash
# Usage: kafka/tool.sh <java-main-class> [args...]
# Runs a class from the provisioned Kafka jars; logs go to stderr, the tool's output to stdout.
# KAFKA_TOOL_OPTS adds JVM options. Handy classes (Kafka 4.x):
#   org.apache.kafka.tools.TopicCommand                 (kafka-topics.sh)
#   org.apache.kafka.tools.ConsoleProducer              (kafka-console-producer.sh)
#   org.apache.kafka.tools.consumer.ConsoleConsumer     (kafka-console-consumer.sh)
#   org.apache.kafka.tools.ProducerPerformance          (kafka-producer-perf-test.sh)
#   org.apache.kafka.tools.ConsumerPerformance          (kafka-consumer-perf-test.sh)
#   org.apache.kafka.tools.consumer.group.ConsumerGroupCommand (kafka-consumer-groups.sh)
#   org.apache.kafka.tools.GetOffsetShell               (kafka-get-offsets.sh)
# KAFKA_VERSION=2.7.0 runs Kafka 2.7's tools instead (e.g. against kafka/start.sh --kafka 2.7),
# whose classes are mostly in core: kafka.admin.TopicCommand, kafka.tools.ConsoleProducer,
# kafka.tools.ConsoleConsumer, kafka.admin.ConsumerGroupCommand, kafka.tools.GetOffsetShell,
# kafka.admin.ConfigCommand; org.apache.kafka.tools.ProducerPerformance is there too.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if (($# == 0)) || [[ $1 == -h || $1 == --help ]]; then
  sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
fi
"$KAFKA_SCRIPTS/provision.sh" >&2
# shellcheck disable=SC2086 # KAFKA_TOOL_OPTS holds several options.
exec "${KAFKA_JAVA[@]}" -Xmx512m ${KAFKA_TOOL_OPTS-} "$@"
