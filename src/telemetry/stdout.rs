//! Log lines to stdout, gathered off the request path and written a few milliseconds at a time.
//!
//! A logging thread appends its line to a shared buffer and goes on. A writer thread of its own
//! waits [`GATHER`] after the first line of a quiet spell, then writes everything gathered in
//! one system call. At two thousand requests a second that is one wake-up of the writer per
//! ten lines or more, where a channel to a writer thread (`tracing-appender`) wakes it for every
//! line: a context switch on each request's path (BENCHMARKS.md, "Where an idle request's time
//! goes").
//!
//! Nothing is dropped: while [`MOST_GATHERED`] bytes wait (stdout stalled), logging threads wait
//! for the writer rather than lose lines that searches and alerts rely on. Dropping the
//! [`Flusher`] writes what is left and stops the writer.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer lets lines gather after the first one.
const GATHER: Duration = Duration::from_millis(5);
/// How many bytes may wait before logging threads wait too.
const MOST_GATHERED: usize = 1024 * 1024;

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    /// The writer is waiting for a first line (and must be woken for it).
    idle: bool,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: a first line, or stopping.
    gathered: Condvar,
    /// Wakes logging threads that wait for room.
    written: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A logging thread that panicked mid-append leaves whole lines behind at worst.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where the log layers write: hands out [`Line`]s.
#[derive(Clone)]
pub struct GatheredStdout {
    shared: Arc<Shared>,
}

/// Stops the writer when dropped, after it wrote every line.
pub struct Flusher {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out` (stdout, or a buffer in tests).
pub fn gathered<W: Write + Send + 'static>(out: W) -> (GatheredStdout, Flusher) {
    let shared = Arc::new(Shared::default());
    let writer = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_gathered(&shared, out))
            .expect("the log writer thread starts")
    };
    (
        GatheredStdout {
            shared: shared.clone(),
        },
        Flusher {
            shared,
            writer: Some(writer),
        },
    )
}

fn write_gathered<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.lines.is_empty() && !state.stopping {
            state.idle = true;
            state = shared
                .gathered
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.idle = false;
        let stopping = state.stopping;
        if !stopping {
            drop(state);
            std::thread::sleep(GATHER);
            state = shared.lock();
        }
        std::mem::swap(&mut state.lines, &mut spare);
        drop(state);
        shared.written.notify_all();
        // Nowhere to report a failed write to stdout: the lines are lost either way.
        let _ = out.write_all(&spare).and_then(|()| out.flush());
        spare.clear();
        if stopping && shared.lock().lines.is_empty() {
            return;
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.gathered.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// One log line's writer.
pub struct Line<'a> {
    shared: &'a Shared,
}

impl<'a> MakeWriter<'a> for GatheredStdout {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            shared: &self.shared,
        }
    }
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut state = self.shared.lock();
        while state.lines.len() >= MOST_GATHERED && !state.stopping {
            state = self
                .shared
                .written
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.lines.extend_from_slice(bytes);
        if std::mem::take(&mut state.idle) {
            drop(state);
            self.shared.gathered.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes and write calls the test can read.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Recorded {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut recorded = self.0.lock().unwrap();
            recorded.0.extend_from_slice(bytes);
            recorded.1 += 1;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_in_few_writes_and_the_rest_at_drop() {
        let out = Recorded::default();
        let (stdout, flusher) = gathered(out.clone());
        let lines: Vec<String> = (0..1000).map(|n| format!("line {n}\n")).collect();
        for line in &lines {
            stdout.make_writer().write_all(line.as_bytes()).unwrap();
        }
        drop(flusher);
        let (written, writes) = out.0.lock().unwrap().clone();
        assert_eq!(String::from_utf8(written).unwrap(), lines.concat());
        assert!(writes < 100, "{writes} writes for 1000 lines");
    }

    #[test]
    fn lines_from_many_threads_stay_whole_and_none_is_lost_past_the_bound() {
        let out = Recorded::default();
        let (stdout, flusher) = gathered(out.clone());
        // Each thread writes more than the bound, so that writers wait for room.
        let line = format!("{}\n", "x".repeat(1023));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..(2 * MOST_GATHERED / line.len()) {
                        stdout.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(flusher);
        let written = out.0.lock().unwrap().0.clone();
        let written = String::from_utf8(written).unwrap();
        assert_eq!(
            written.len(),
            4 * 2 * MOST_GATHERED / line.len() * line.len()
        );
        assert!(
            written
                .lines()
                .all(|l| l.len() == 1023 && l.bytes().all(|b| b == b'x'))
        );
    }
}
