//! The service binary, run as a child process: what a test that must see its output, its exit
//! status or its memory runs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::DEADLINE;

/// The service binary, run as a child process with its stdout collected.
pub struct ServiceProcess {
    child: Child,
    pub address: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServiceProcess {
    pub fn spawn(vars: &[(String, String)]) -> ServiceProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_events-service"))
            .env_clear()
            .envs(vars.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let sink = lines.clone();
        // Drain stdout continuously: a full pipe would stall the service's logging.
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut process = ServiceProcess {
            child,
            address: String::new(),
            lines,
            reader: Some(reader),
        };
        let listening = process.wait_for_line(|l| l.contains("listening on http://"));
        // The line may be text or a JSON object: the address ends where URL characters do.
        let address = listening.rsplit("listening on ").next().unwrap_or_default();
        process.address = address
            .split(|c: char| !(c.is_ascii_alphanumeric() || ":/.[]".contains(c)))
            .next()
            .unwrap_or_default()
            .to_owned();
        process
    }

    /// Waits for a log line matching `matches` and returns it.
    pub fn wait_for_line(&mut self, matches: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| matches(l)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the service exited ({status}) first; its output:\n{}",
                    self.output()
                );
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no such line within {DEADLINE:?}; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The most memory the process has had resident so far (Linux's VmHWM), in MiB.
    pub fn peak_resident_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process has a status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("the status has VmHWM");
        kib / 1024.0
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, returning its status and how long it took.
    pub fn wait_for_exit(&mut self, deadline: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited on") {
                let took = started.elapsed();
                // Every line the process wrote is collected once its stdout closes.
                if let Some(reader) = self.reader.take() {
                    reader.join().expect("the stdout reader does not panic");
                }
                return (status, took);
            }
            if started.elapsed() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the service did not exit within {deadline:?}; output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
