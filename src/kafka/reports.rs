//! A producer whose delivery reports are served on the async runtime.
//!
//! rdkafka's `FutureProducer` serves them on a polling thread of its own: every acknowledgement
//! wakes that thread, which then wakes the request's task on a worker, two hand-offs on every
//! request's path. Here librdkafka writes a byte to a socket when its report queue turns
//! non-empty (`rd_kafka_queue_io_event_enable`, once per period it goes unserved), a task on the
//! runtime reads it and serves the queue, and each report completes its request's future on the
//! worker that task runs on: at concurrency 1 that is a third of the context switches per
//! request gone (BENCHMARKS.md, "Where an idle request's time goes").
//!
//! Under load that task waits its turn behind every connection ready to run, while the requests
//! waiting for their reports hold their slots of `HTTP_MAX_CONCURRENT_REQUESTS`: at twice the
//! saturating rate a third as many requests were stored as with a polling thread. So every
//! [`ReportingProducer::send`] also serves whatever reports have come in.
//!
//! The same queue carries librdkafka's statistics and log events, served the same way. A wake-up
//! that went astray would hold reports until the next one; the task serves the queue at least
//! every [`BACKSTOP`] whatever happens, as `FutureProducer`'s thread polls.

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::bindings as rdsys;
use rdkafka::client::Client;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use tokio::sync::oneshot;

use super::publisher::Delivery;
use super::stats::StatsContext;

/// The longest reports wait when no wake-up reaches the serving task.
const BACKSTOP: Duration = Duration::from_millis(100);

/// Events served in one go at most, so that one producer cannot hold a worker.
const MOST_PER_WAKEUP: usize = 1024;

/// What a record's delivery report says: where it was stored, or why not.
pub type Report = Result<Delivery, KafkaError>;

/// A record's report, once librdkafka has one; `Err` when the producer went away without one.
pub type PendingReport = oneshot::Receiver<Report>;

/// A record handed to [`ReportingProducer::send`], with the channel its report goes to.
pub type Record<'a> = BaseRecord<'a, [u8], [u8], Box<oneshot::Sender<Report>>>;

impl ProducerContext for StatsContext {
    type DeliveryOpaque = Box<oneshot::Sender<Report>>;

    fn delivery(&self, result: &DeliveryResult<'_>, report_to: Self::DeliveryOpaque) {
        let report = match result {
            Ok(stored) => Ok(Delivery {
                partition: stored.partition(),
                offset: stored.offset(),
            }),
            Err((error, _)) => Err(error.clone()),
        };
        // The request may have given up waiting; nobody is left to tell.
        let _ = report_to.send(report);
    }
}

/// An idempotent producer (the settings are `client::producer`'s) whose reports are served on
/// the runtime it was made on.
pub struct ReportingProducer {
    shared: Arc<Shared>,
}

/// What the producer and its serving task share. Fields drop in order: the queue handle must
/// be gone before the producer is destroyed (librdkafka's rule for every queue handle).
struct Shared {
    queue: ReportQueue,
    producer: BaseProducer<StatsContext>,
}

impl ReportingProducer {
    /// Creates the producer and starts serving its reports on the current tokio runtime.
    pub fn new(config: &ClientConfig, context: StatsContext) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("a producer serves its delivery reports on a tokio runtime")?;
        let producer: BaseProducer<StatsContext> = config.create_with_context(context).context(
            "librdkafka rejected the producer configuration (check the RDKAFKA_* variables)",
        )?;
        let (wakeups, signal) = UnixStream::pair().context("a socket pair for wake-ups")?;
        wakeups.set_nonblocking(true)?;
        signal.set_nonblocking(true)?;
        let queue = ReportQueue::signalling(&producer, signal);
        let shared = Arc::new(Shared { queue, producer });
        let wakeups = tokio::net::UnixStream::from_std(wakeups)?;
        runtime.spawn(serve(Arc::downgrade(&shared), wakeups));
        Ok(Self { shared })
    }

    /// Hands a record to librdkafka; its report arrives on the returned channel. A full queue
    /// (or any other refusal) comes back at once.
    pub fn send<'a>(
        &self,
        record: BaseRecord<'a, [u8], [u8]>,
    ) -> Result<PendingReport, KafkaError> {
        let (report_to, report) = oneshot::channel();
        let record: Record<'a> = BaseRecord {
            topic: record.topic,
            partition: record.partition,
            payload: record.payload,
            key: record.key,
            timestamp: record.timestamp,
            headers: record.headers,
            delivery_opaque: Box::new(report_to),
        };
        let sent = self.shared.producer.send(record);
        // Under load the serving task waits its turn behind every connection ready to run,
        // and the requests waiting for reports hold their slots meanwhile: whoever sends also
        // serves what has come in.
        self.shared.serve();
        match sent {
            Ok(()) => Ok(report),
            Err((error, _)) => Err(error),
        }
    }

    pub fn client(&self) -> &Client<StatsContext> {
        self.shared.producer.client()
    }

    /// Records handed over and not yet reported.
    pub fn in_flight_count(&self) -> i32 {
        self.shared.producer.in_flight_count()
    }

    /// Waits until every record is reported or the timeout passes. Blocks the calling thread.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.shared.producer.flush(timeout)
    }
}

/// Serves the queue whenever librdkafka signals it, until the producer is dropped (which closes
/// the signalling end).
async fn serve(shared: Weak<Shared>, wakeups: tokio::net::UnixStream) {
    let mut signals = [0u8; 64];
    loop {
        // The signals first: one written while the queue is served starts the next round.
        loop {
            match wakeups.try_read(&mut signals) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        let Some(producer) = shared.upgrade() else {
            return;
        };
        let drained = producer.serve();
        drop(producer);
        if !drained {
            // More than a round's worth: the other tasks of this worker go first.
            tokio::task::yield_now().await;
            continue;
        }
        if let Ok(Err(_)) = tokio::time::timeout(BACKSTOP, wakeups.readable()).await {
            return;
        }
    }
}

impl Shared {
    /// Serves at most [`MOST_PER_WAKEUP`] events; whether that emptied the queue.
    fn serve(&self) -> bool {
        for _ in 0..MOST_PER_WAKEUP {
            if self.queue.is_empty() {
                return true;
            }
            self.producer.poll(Duration::ZERO);
        }
        self.queue.is_empty()
    }
}

/// The producer's report queue (librdkafka's main queue), set to signal a socket.
struct ReportQueue {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// The end librdkafka writes to; closed after the signalling is turned off.
    _signal: UnixStream,
}

// librdkafka's queues are locked internally; the handle is only read through its API.
unsafe impl Send for ReportQueue {}
unsafe impl Sync for ReportQueue {}

impl ReportQueue {
    fn signalling(producer: &BaseProducer<StatsContext>, signal: UnixStream) -> Self {
        static SIGNAL: u8 = 1;
        // SAFETY: the client is alive; get_main returns a new reference to its main queue,
        // released in Drop, before the client itself is (field order of `Shared`). The payload
        // is copied by librdkafka; the fd stays open as long as this handle.
        let queue = unsafe { rdsys::rd_kafka_queue_get_main(producer.client().native_ptr()) };
        let queue = NonNull::new(queue).expect("a producer always has a main queue");
        unsafe {
            rdsys::rd_kafka_queue_io_event_enable(
                queue.as_ptr(),
                signal.as_raw_fd(),
                (&raw const SIGNAL).cast(),
                1,
            );
        }
        Self {
            queue,
            _signal: signal,
        }
    }

    fn is_empty(&self) -> bool {
        // SAFETY: the handle is alive as long as self.
        unsafe { rdsys::rd_kafka_queue_length(self.queue.as_ptr()) == 0 }
    }
}

impl Drop for ReportQueue {
    fn drop(&mut self) {
        // SAFETY: turning the signalling off (fd -1) before the socket closes, then releasing
        // the reference taken in `signalling`.
        unsafe {
            rdsys::rd_kafka_queue_io_event_enable(self.queue.as_ptr(), -1, std::ptr::null(), 0);
            rdsys::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::RDKafkaErrorCode;

    use super::*;
    use crate::telemetry::Metrics;

    #[tokio::test]
    async fn every_record_gets_its_own_report_and_a_refusal_comes_back_at_once() {
        // Nothing listens on port 9: librdkafka times the records out and reports each.
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("message.timeout.ms", "300")
            .set("queue.buffering.max.messages", "3");
        let producer =
            ReportingProducer::new(&config, StatsContext::named("test", &Metrics::new())).unwrap();
        let reports: Vec<PendingReport> = (0..3)
            .map(|_| {
                producer
                    .send(BaseRecord::to("t").payload(&b"x"[..]))
                    .unwrap()
            })
            .collect();
        let full = producer.send(BaseRecord::to("t").payload(&b"x"[..]));
        assert!(matches!(
            full,
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull))
        ));
        for report in reports {
            let report = tokio::time::timeout(Duration::from_secs(10), report)
                .await
                .expect("a report")
                .expect("the producer is alive");
            assert!(
                matches!(report, Err(ref e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut)),
                "{report:?}"
            );
        }
        assert_eq!(producer.in_flight_count(), 0);
    }

    #[test]
    fn a_producer_needs_a_runtime_to_serve_its_reports_on() {
        let made = ReportingProducer::new(
            &ClientConfig::new(),
            StatsContext::named("test", &Metrics::new()),
        );
        let error = made.err().expect("refused outside a runtime");
        assert!(error.to_string().contains("tokio runtime"), "{error:#}");
    }
}
