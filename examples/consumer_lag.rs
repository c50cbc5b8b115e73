//! Waits until a consumer group has caught up, and says how long that took.
//!
//! ```text
//! cargo run --release --example consumer_lag -- --brokers B --group G --topics t1,t2,t3 \
//!     [--timeout-secs 60] [--interval-ms 100] [--since-epoch-ms MS | --start-file PATH]
//! ```
//!
//! Every `--interval-ms` it reads the group's committed offsets and the partitions' high
//! watermarks; the lag of a partition is `high - committed` (`high - low` while the group has
//! committed nothing there). When the sum over every partition of every topic is 0 it prints one
//! JSON line on stdout, `{"caught_up_secs": S, "max_lag": N, "polls": P}`, and exits 0. The clock
//! starts at `--since-epoch-ms` (Unix time in milliseconds, e.g. when a burst of events ended) or
//! else when this program starts. On timeout it prints the same line with `"caught_up_secs": null`
//! and the last lag, and exits 1.
//!
//! With `--start-file PATH` it starts polling at once but only counts from when PATH appears: it
//! then reads Unix milliseconds from the file and proceeds as with `--since-epoch-ms`. Started
//! before a burst, it so sees the lag during the burst (`max_lag`), while the time and the timeout
//! count from the burst's end. Write the file atomically (write elsewhere, then rename).
//!
//! The lag is what the group has *committed*: a consumer that auto-commits every
//! `auto.commit.interval.ms` (librdkafka's default is 5 s) shows processed records as lag until
//! its next commit, so measure with a short interval on the consumers.
//!
//! It never joins the group: it has the group's `group.id` only so that `committed_offsets`
//! asks that group's coordinator, and it never subscribes or commits, so the group's members are
//! not rebalanced.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

struct Args {
    brokers: String,
    group: String,
    topics: Vec<String>,
    timeout: Duration,
    interval: Duration,
    since_epoch_ms: Option<u128>,
    start_file: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut brokers = None;
    let mut group = None;
    let mut topics = None;
    let mut timeout = Duration::from_secs(60);
    let mut interval = Duration::from_millis(100);
    let mut since_epoch_ms = None;
    let mut start_file = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => brokers = Some(value()?),
            "--group" => group = Some(value()?),
            "--topics" => {
                topics = Some(
                    value()?
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(String::from)
                        .collect::<Vec<_>>(),
                )
            }
            "--timeout-secs" => timeout = Duration::from_secs_f64(value()?.parse()?),
            "--interval-ms" => interval = Duration::from_millis(value()?.parse()?),
            "--since-epoch-ms" => since_epoch_ms = Some(value()?.parse()?),
            "--start-file" => start_file = Some(value()?.into()),
            "-h" | "--help" => {
                eprintln!(
                    "usage: consumer_lag --brokers B --group G --topics t1,t2 \
                     [--timeout-secs 60] [--interval-ms 100] [--since-epoch-ms MS | --start-file PATH]"
                );
                std::process::exit(2);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let topics = topics.context("--topics is required")?;
    if topics.is_empty() {
        bail!("--topics names no topic");
    }
    if since_epoch_ms.is_some() && start_file.is_some() {
        bail!("--since-epoch-ms and --start-file exclude each other");
    }
    Ok(Args {
        brokers: brokers.context("--brokers is required")?,
        group: group.context("--group is required")?,
        topics,
        timeout,
        interval,
        since_epoch_ms,
        start_file,
    })
}

/// Every (topic, partition) of the topics, from the cluster's metadata.
fn partitions(consumer: &BaseConsumer, topics: &[String]) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("metadata of {topic}"))?;
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .with_context(|| format!("no metadata for {topic}"))?;
        if let Some(err) = t.error() {
            bail!("topic {topic}: {err:?}");
        }
        if t.partitions().is_empty() {
            bail!("topic {topic} has no partitions");
        }
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    Ok(tpl)
}

/// The group's total lag now, and per topic (for the progress lines).
fn lag(consumer: &BaseConsumer, tpl: &TopicPartitionList) -> Result<(i64, BTreeMap<String, i64>)> {
    let committed = consumer
        .committed_offsets(tpl.clone(), Duration::from_secs(5))
        .context("committed offsets")?;
    let mut total = 0;
    let mut per_topic = BTreeMap::new();
    for elem in committed.elements() {
        let (topic, partition) = (elem.topic(), elem.partition());
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(5))
            .with_context(|| format!("watermarks of {topic}/{partition}"))?;
        let done = match elem.offset() {
            Offset::Offset(o) => o,
            // Nothing committed yet: everything still in the log is pending.
            _ => low,
        };
        let l = (high - done).max(0);
        total += l;
        *per_topic.entry(topic.to_string()).or_insert(0) += l;
    }
    Ok((total, per_topic))
}

fn epoch_ms() -> Result<u128> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())
}

/// Where the clock starts: our `Instant` for it, and the time already gone before we saw it.
fn clock_start(since_epoch_ms: u128) -> Result<(Instant, Duration)> {
    let gone = Duration::from_millis(epoch_ms()?.saturating_sub(since_epoch_ms) as u64);
    Ok((Instant::now(), gone))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    // None while waiting for --start-file: lag is tracked but nothing ends the run yet.
    let mut clock = match (args.since_epoch_ms, &args.start_file) {
        (Some(ms), _) => Some(clock_start(ms)?),
        (None, Some(_)) => None,
        (None, None) => Some((Instant::now(), Duration::ZERO)),
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .context("creating the consumer")?;
    let tpl = partitions(&consumer, &args.topics)?;

    let mut max_lag = 0i64;
    let mut polls = 0u64;
    let mut last_report = Instant::now();
    let begun = Instant::now();
    loop {
        if clock.is_none() {
            let path = args.start_file.as_ref().expect("start file");
            if let Ok(text) = std::fs::read_to_string(path) {
                let ms = text.trim().parse().with_context(|| {
                    format!("{}: not Unix milliseconds: {text:?}", path.display())
                })?;
                clock = Some(clock_start(ms)?);
            }
        }
        let (total, per_topic) = lag(&consumer, &tpl)?;
        polls += 1;
        max_lag = max_lag.max(total);
        if let Some((started, gone)) = clock {
            let elapsed = gone + started.elapsed();
            if total == 0 {
                println!(
                    "{{\"caught_up_secs\": {:.3}, \"max_lag\": {max_lag}, \"polls\": {polls}}}",
                    elapsed.as_secs_f64()
                );
                return Ok(());
            }
            if started.elapsed() >= args.timeout {
                println!(
                    "{{\"caught_up_secs\": null, \"max_lag\": {max_lag}, \"polls\": {polls}, \"last_lag\": {total}}}"
                );
                eprintln!(
                    "consumer_lag: group {} still lags {total} after {:?}",
                    args.group, args.timeout
                );
                std::process::exit(1);
            }
        } else if begun.elapsed() >= Duration::from_secs(3600) {
            bail!("the start file never appeared within an hour");
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!("consumer_lag: lag {total} {per_topic:?}");
            last_report = Instant::now();
        }
        std::thread::sleep(args.interval);
    }
}
